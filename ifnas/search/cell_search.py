"""Search in the cell spaces with IF sampling inside each cell (the paper's section 4.5).

The algorithm is the L-chain one (`SearchLoop`: warm-up and sub-supernet steps, one-level SGD,
eq. 3, pruning below the threshold, stop at the budget) on a `CellSupernet`, whose groups are
the intermediate nodes (`ifnas.space.cells`). What differs:

- eq. 3 runs over the live gates of every searched cell (`cell_discretization_loss`);
- pruning keeps every intermediate node alive with its `min_inputs` inputs (`prune_cells`),
  since a cell's output concatenates all of them;
- the retained MAdds come from the cell cost table (`CellCosts`);
- derivation (`derive_cells`): `goldnas_cell` keeps every live pair (`all`); `darts_cell`
  keeps DARTS' cell: the two strongest inputs of each node, edge strength
  `sigmoid(beta) * max_o sigmoid(alpha)`, each with its strongest live op; `keep_one` keeps the
  strongest pair of each node in both.

Random search in a cell space draws the gates at random (as in the L-chain) and derives the
same way; in `goldnas_cell` it first removes random pairs until the budget holds.
"""

import logging

import torch

from ifnas.cell_genotype import CellGenotype
from ifnas.nn.cells import CellCosts, CellSupernet
from ifnas.search.loop import SearchLoop
from ifnas.search.pruning import PruneReport
from ifnas.search.regularizer import log_term
from ifnas.space.lchain import OPS

_logger = logging.getLogger(__name__)


def cell_discretization_loss(
    supernet: CellSupernet, mu1: float, mu2: float, detach_mean: bool = False
) -> torch.Tensor:
    """Eq. 3 over the live edges and ops of every searched cell (means over all of them)."""
    edges, edge_masks, ops, op_masks = [], [], [], []
    for key, gates in supernet.gates.items():
        slot, j = (int(part[1:]) for part in key.split("_"))
        beta, alpha = supernet.node_logits(slot, j)
        edges.append(torch.sigmoid(beta))
        edge_masks.append(gates.beta_mask)
        ops.append(torch.sigmoid(alpha))
        op_masks.append(gates.alpha_mask)
    return mu1 * log_term(edges, edge_masks, detach_mean) + mu2 * log_term(
        ops, op_masks, detach_mean
    )


def _pairs_by_strength(supernet: CellSupernet, below: float | None = None) -> list:
    """Live edges `(slot, i, j)` and ops `(slot, i, j, op)` with their gates, weakest first."""
    found = []
    for slot in range(supernet.space.num_slots()):
        for j, pairs in supernet.live_inputs(slot).items():
            for i in sorted({i for i, _ in pairs}):
                found.append((supernet.gate(slot, i, j), (slot, i, j)))
            for i, op in pairs:
                found.append((supernet.gate(slot, i, j, op), (slot, i, j, op)))
    if below is not None:
        found = [item for item in found if item[0] < below]
    found.sort()
    return found


def _is_live(supernet: CellSupernet, item: tuple) -> bool:
    slot, i, j = item[:3]
    op = item[3] if len(item) == 4 else None
    return any(p[0] == i and (op is None or p[1] == op) for p in supernet.live_inputs(slot)[j])


def _remove(supernet: CellSupernet, item: tuple) -> bool:
    """Mask an edge or op unless it is gone or its node would keep too few inputs."""
    slot, i, j = item[:3]
    op = item[3] if len(item) == 4 else None
    if not _is_live(supernet, item) or not supernet.can_remove(slot, i, j, op):
        return False
    if op is None:
        supernet.mask_edge(slot, i, j)
    else:
        supernet.mask_op(slot, i, j, op)
    return True


def prune_cells(supernet: CellSupernet, threshold: float) -> PruneReport:
    """Mask every live gate below `threshold` that its node can spare (section 3.5)."""
    report = PruneReport()
    for _, item in _pairs_by_strength(supernet, below=threshold):
        if _remove(supernet, item):
            (report.edges if len(item) == 3 else report.ops).append(item)
        elif _is_live(supernet, item):
            report.guarded.append(item)  # its node needs it
    return report


def prune_cells_to_budget(supernet: CellSupernet, budget: int, costs: CellCosts) -> int:
    """Remove the weakest live pairs (by `gate(edge) * gate(op)`) until `budget` holds."""
    strengths = []
    for slot in range(supernet.space.num_slots()):
        for j, pairs in supernet.live_inputs(slot).items():
            for i, op in pairs:
                value = supernet.gate(slot, i, j) * supernet.gate(slot, i, j, op)
                strengths.append((value, (slot, i, j, op)))
    removed = 0
    for _, item in sorted(strengths):
        if costs.of_supernet(supernet) <= budget:
            break
        removed += _remove(supernet, item)
    return removed


@torch.no_grad()
def derive_cells(supernet: CellSupernet, keep: str = "all") -> CellGenotype:
    """The genotype of the live cells (see the module docstring for the rules)."""
    if keep not in ("all", "keep_one"):
        raise ValueError(f"keep must be one of ['all', 'keep_one'], got {keep!r}")
    slots = []
    for slot in range(supernet.space.num_slots()):
        chosen = {}
        for j, pairs in supernet.live_inputs(slot).items():

            def strength(pair, j=j, slot=slot):
                return supernet.gate(slot, pair[0], j) * supernet.gate(slot, pair[0], j, pair[1])

            if keep == "keep_one":
                chosen[j] = (max(pairs, key=lambda p: (strength(p), p[0])),)
            elif supernet.space.kind == "goldnas_cell":
                chosen[j] = pairs
            else:
                best = {}
                for pair in pairs:
                    if pair[0] not in best or strength(pair) > strength(best[pair[0]]):
                        best[pair[0]] = pair
                top = sorted(best.values(), key=lambda p: (strength(p), p[0]), reverse=True)[:2]
                chosen[j] = tuple(sorted(top))
        slots.append(chosen)
    return CellGenotype(space=supernet.space, macro=supernet.macro, slots=tuple(slots))


class CellSearchLoop(SearchLoop):
    """`SearchLoop` on a `CellSupernet` (see the module docstring)."""

    def __init__(self, supernet, cfg, train_loader, device, writer=None, interleaving_free=True):
        self.costs = CellCosts(supernet.space, supernet.macro)
        super().__init__(supernet, cfg, train_loader, device, writer, interleaving_free)

    def retained_madds(self) -> int:
        return self.costs.of_supernet(self.supernet)

    def regularizer(self) -> torch.Tensor:
        return cell_discretization_loss(
            self.supernet,
            self.mu_scale * self.cfg.mu1,
            self.mu_scale * self.cfg.mu2,
            self.cfg.detach_mean,
        )

    def prune_gates(self) -> PruneReport:
        return prune_cells(self.supernet, self.cfg.prune_threshold)

    def log_epoch(self, train: dict, val_top1: float) -> None:
        net = self.supernet
        slots = range(net.space.num_slots())
        live_ops = sum(len(p) for s in slots for p in net.live_inputs(s).values())
        _logger.info(
            "epoch %d: train ce %.4f top1 %.4f, val top1 %.4f, live ops %d of %d, retained "
            "MAdds %.3fM",
            self.epoch,
            train["ce"],
            train["top1"],
            val_top1,
            live_ops,
            len(slots) * len(net.space.edges()) * len(OPS),
            self.madds / 1e6,
        )
        if self.writer is not None:
            self.writer.add_scalar("search/val_top1", val_top1, self.epoch)
            self.writer.add_scalar("search/live_ops", live_ops, self.epoch)
            self.writer.add_scalar("search/retained_madds", self.madds, self.epoch)


class RandomCellLoop(CellSearchLoop):
    """Random search in a cell space: nothing to train (`done` from the start)."""

    def __init__(self, supernet, cfg, train_loader, device, writer=None):
        super().__init__(supernet, cfg, train_loader, device, writer)
        self.stops_at_budget = False

    @property
    def done(self) -> bool:
        return True


def derive_random_cells(loop: RandomCellLoop, keep: str) -> CellGenotype:
    """Random search's derivation in a cell space (see the module docstring)."""
    net = loop.supernet
    if keep == "all" and net.space.kind == "goldnas_cell":
        prune_cells_to_budget(net, loop.budget, loop.costs)
        loop.madds = loop.retained_madds()
    return derive_cells(net, keep)
