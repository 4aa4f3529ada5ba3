"""Random search: random architectures under the same budget, seeded (Table 3, Figure 6).

Every `(edge, op)` pair of the space gets a strength drawn uniformly at random from a generator
seeded with the run's seed (stored as the op gate, `sigmoid(alpha) ~ U(0, 1)`, with the edge
gates all equal). Derivation then works as for DARTS:

- `all`: the weakest pairs are removed until the budget holds (`ifnas.search.to_budget`), i.e.
  pairs are removed in a uniformly random order until the MAdds fit; nodes left without inputs
  die, and no stage loses its last path.
- `keep_one`: every node keeps one uniformly random live input (the paper's "preserve one input
  randomly" of Table 3), with no budget.

Nothing is trained before the retrain: the search has no epochs. In the cell spaces the same
random gates derive as `ifnas.search.cell_search` says.
"""

import torch

from ifnas.nn.cells import CellSupernet
from ifnas.search.cell_search import RandomCellLoop, derive_random_cells
from ifnas.search.loop import SearchLoop
from ifnas.search.strategies.base import Strategy
from ifnas.search.to_budget import derive_within_budget


class RandomLoop(SearchLoop):
    """A search that is done before it starts: the architecture is drawn, not learned."""

    def __init__(self, supernet, cfg, train_loader, device, writer=None):
        super().__init__(supernet, cfg, train_loader, device, writer)
        self.stops_at_budget = False  # derivation meets the budget

    @property
    def done(self) -> bool:
        return True


class RandomSearch(Strategy):
    name = "random"
    spaces = ("lchain", "darts_cell", "goldnas_cell")

    def build_supernet(self, cfg, space, macro):
        supernet = super().build_supernet(cfg, space, macro)
        generator = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            for gates in supernet.gates.values():
                gates.beta.zero_()
                uniform = torch.rand(gates.alpha.shape, generator=generator)
                gates.alpha.copy_(torch.logit(uniform.clamp(1e-6, 1 - 1e-6)))
        return supernet

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        kind = RandomCellLoop if isinstance(supernet, CellSupernet) else RandomLoop
        return kind(supernet, cfg.search, train_loader, device, writer)

    def derive(self, loop, keep):
        if isinstance(loop, RandomCellLoop):
            return derive_random_cells(loop, keep)
        return derive_within_budget(loop, keep)
