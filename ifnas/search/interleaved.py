"""The interleaving ablation: interleaved edges let into every sub-supernet (Table 5, sec. 4.4).

The paper allows "various numbers (1/2/3) of interleaved connections to be sampled during
search". Our reading, in each stage and in every step on a sub-supernet `S_lam`:

- the candidates are the live edges `(i, j)` with `j` outside `G_lam`, spanning at least two
  nodes, not already active (not node `j`'s backbone edge), that interleave with at least one
  live edge of `S_lam` ending in `G_lam` (`ifnas.space.interleave.interleave`);
- `k` of them are drawn uniformly without replacement (all of them when fewer exist), anew for
  every step, from a generator seeded with the run's seed and the step's index, so that a
  resumed run draws the same edges;
- they run with their gates frozen: in `S_lam` only `G_lam` learns, as in IF-NAS, and the
  added edges learn in their own group's steps. What they change is what the learning gates
  see: the interference the paper measures.

Edges pruned during a step leave the draw at once.
"""

import logging

import torch

from ifnas.nn.supernet import Activation, Supernet
from ifnas.search.loop import SearchLoop
from ifnas.space.interleave import interleave

_logger = logging.getLogger(__name__)

Edge = tuple[int, int]


def interleaving_candidates(supernet: Supernet, stage: int, lam: int) -> list[Edge]:
    """Live edges of `stage` that may be let into `S_lam`, in `(j, i)` order (see above)."""
    L = supernet.space.L
    live = supernet.live_inputs(stage)
    sources = {j: sorted({i for i, _ in pairs}) for j, pairs in live.items()}
    group_edges = [(i, j) for j, inputs in sources.items() if j % L == lam for i in inputs]
    found = []
    for j in sorted(sources):
        if j % L == lam:
            continue
        backbone = max(sources[j])
        for i in sources[j]:
            if i != backbone and any(interleave((i, j), edge) for edge in group_edges):
                found.append((i, j))
    return found


def draw_interleaved_edges(
    supernet: Supernet, lam: int, k: int, generator: torch.Generator
) -> tuple[tuple[int, int, int], ...]:
    """`k` candidates per stage (fewer when fewer exist), as `(stage, i, j)`."""
    drawn = []
    for s in range(len(supernet.space.stages)):
        candidates = interleaving_candidates(supernet, s, lam)
        picks = torch.randperm(len(candidates), generator=generator)[:k].tolist()
        drawn.extend((s, *candidates[p]) for p in sorted(picks))
    return tuple(drawn)


class InterleavedEdgesLoop(SearchLoop):
    """IF-NAS whose sub-supernets each take `cfg.interleaved_edges` interleaved edges per stage.

    Args:
        seed: the run's seed; with the step index it seeds each step's draw.
        (the others as `SearchLoop`'s, with interleaving-free cycles)
    """

    def __init__(self, supernet, cfg, train_loader, device, writer=None, seed: int = 0):
        super().__init__(supernet, cfg, train_loader, device, writer, interleaving_free=True)
        self.k = cfg.interleaved_edges
        self.seed = seed
        self._drawn: tuple[int, tuple] = (-1, ())

    def activation_for(self, global_iter: int) -> Activation:
        activation = super().activation_for(global_iter)
        if activation.group is None or self.k == 0:
            return activation

        step = (global_iter - self.schedule.arch_start) // self.schedule.step_iters
        if self._drawn[0] != step:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            edges = draw_interleaved_edges(self.supernet, activation.group, self.k, generator)
            self._drawn = (step, edges)
            _logger.debug("step %d on S_%d: interleaved edges %s", step, activation.group, edges)

        live = [self.supernet.live_inputs(s) for s in range(len(self.supernet.space.stages))]
        edges = tuple(
            (s, i, j) for s, i, j in self._drawn[1] if any(p[0] == i for p in live[s].get(j, ()))
        )
        return Activation(
            activation.group, activation.learn_beta, activation.learn_alpha, interleaved=edges
        )
