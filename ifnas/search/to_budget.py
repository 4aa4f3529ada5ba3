"""Derivation by removing the weakest `(edge, op)` pairs until the budget holds (section 4.2).

DARTS and PC-DARTS do not prune while they search; the paper derives their architectures "by
removing weak edges and operators after searching until they meet the requirements of mobile
setting". We remove live `(edge, op)` pairs one at a time, weakest first, until the retained
architecture's MAdds fit the budget. The strength of a pair is the strategy's own weight of it,
`Supernet.gate(s, i, j) * Supernet.gate(s, i, j, op)`: DARTS' softmax weight of the op (its
edge strength is that of its strongest op, so an edge goes with its last op), PC-DARTS' times
the edge's normalized weight, a random number for random search.

As in pruning, a node left without inputs dies with the edges out of it, and a pair that
carries the last path of its stage to the output is kept.
"""

import logging
from collections.abc import Callable

from ifnas.genotype import Genotype
from ifnas.nn.supernet import Supernet
from ifnas.search.derive import derive
from ifnas.search.pruning import output_reachable_without

_logger = logging.getLogger(__name__)

Pair = tuple[int, int, int, str]


def pair_strengths(supernet: Supernet) -> list[tuple[float, Pair]]:
    """Every live `(stage, i, j, op)` with its strength, weakest first (ties: stage order)."""
    found = []
    for s in range(len(supernet.space.stages)):
        for j, pairs in supernet.live_inputs(s).items():
            for i, op in pairs:
                found.append((supernet.gate(s, i, j) * supernet.gate(s, i, j, op), (s, i, j, op)))
    found.sort()
    return found


def prune_to_budget(
    supernet: Supernet, budget: int, retained_madds: Callable[[], int]
) -> list[Pair]:
    """Mask the weakest live pairs of `supernet` until `retained_madds()` is at most `budget`.

    Args:
        supernet: the searched supernet; its masks are changed in place.
        budget: MAdds the derived architecture may have.
        retained_madds: MAdds of the architecture the live pairs form (`SearchLoop`'s).

    Returns the removed pairs in order (dead-node edges not included). When only pairs that
    carry a stage's last path are left and the budget still does not hold, a warning says so
    and the supernet is left as small as it can be.
    """
    removed: list[Pair] = []
    if retained_madds() <= budget:
        return removed
    for _, pair in pair_strengths(supernet):
        s, i, j, op = pair
        if (i, op) not in supernet.live_inputs(s).get(j, ()):
            continue  # gone with a dead node
        if not output_reachable_without(supernet, pair):
            continue
        supernet.mask_op(s, i, j, op)
        supernet.kill_dead_nodes()
        removed.append(pair)
        if retained_madds() <= budget:
            _logger.info(
                "removed the %d weakest (edge, op) pairs: %.3fM MAdds <= budget %.3fM",
                len(removed),
                retained_madds() / 1e6,
                budget / 1e6,
            )
            return removed
    _logger.warning(
        "the budget %.3fM cannot be met by removing pairs: the last paths of the stages "
        "keep %.3fM MAdds",
        budget / 1e6,
        retained_madds() / 1e6,
    )
    return removed


def derive_within_budget(loop, keep: str) -> Genotype:
    """Derivation of the strategies that do not prune while searching (DARTS, PC-DARTS, random).

    `all` removes the weakest pairs of `loop.supernet` until `loop.budget` holds, updates
    `loop.madds`, and keeps what is left; `keep_one` keeps the strongest pair of every node of
    the supernet as it is, with no budget (the paper's Table 3).
    """
    if keep == "all":
        prune_to_budget(loop.supernet, loop.budget, loop.retained_madds)
        loop.madds = loop.retained_madds()
    return derive(loop.supernet, keep)
