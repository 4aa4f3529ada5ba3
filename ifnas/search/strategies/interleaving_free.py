"""IF-NAS and its "w/o IF" ablation: one algorithm, with and without IF sampling.

`ifnas` is the paper's algorithm: cycles of a warm-up step and one step per sub-supernet
`S_lam` (section 3.4), eq. 3 (section 3.5), pruning to the budget. With
`search.interleaved_edges = k > 0` it becomes the ablation of Table 5
(`ifnas.search.interleaved`).

`wo_if` is exactly the same algorithm, same regularizer, same pruning, same step lengths,
except that every step runs every live edge and lets every gate learn (Table 4, "w/o IF").

Both also search the cell spaces (section 4.5), with IF sampling inside each cell
(`ifnas.search.cell_search`).
"""

from ifnas.search.interleaved import InterleavedEdgesLoop
from ifnas.search.strategies.base import Strategy, one_level_loop


class IFNAS(Strategy):
    name = "ifnas"
    spaces = ("lchain", "darts_cell", "goldnas_cell")

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        if cfg.search.interleaved_edges:
            return InterleavedEdgesLoop(
                supernet, cfg.search, train_loader, device, writer, seed=cfg.seed
            )
        return one_level_loop(supernet, cfg, train_loader, device, writer)


class WithoutIF(Strategy):
    name = "wo_if"
    spaces = ("lchain", "darts_cell", "goldnas_cell")

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        return one_level_loop(supernet, cfg, train_loader, device, writer, False)
