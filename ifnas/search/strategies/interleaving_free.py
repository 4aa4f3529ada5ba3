"""IF-NAS and its "w/o IF" ablation: one algorithm, with and without IF sampling.

`ifnas` is the paper's algorithm: cycles of a warm-up step and one step per sub-supernet
`S_lam` (section 3.4), eq. 3 (section 3.5), pruning to the budget. With
`search.interleaved_edges = k > 0` it becomes the ablation of Table 5
(`ifnas.search.interleaved`).

`wo_if` is exactly the same algorithm, same regularizer, same pruning, same step lengths,
except that every step runs every live edge and lets every gate learn (Table 4, "w/o IF").
"""

from ifnas.search.interleaved import InterleavedEdgesLoop
from ifnas.search.loop import SearchLoop
from ifnas.search.strategies.base import Strategy


class IFNAS(Strategy):
    name = "ifnas"

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        if cfg.search.interleaved_edges:
            return InterleavedEdgesLoop(
                supernet, cfg.search, train_loader, device, writer, seed=cfg.seed
            )
        return SearchLoop(supernet, cfg.search, train_loader, device, writer)


class WithoutIF(Strategy):
    name = "wo_if"

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        return SearchLoop(
            supernet, cfg.search, train_loader, device, writer, interleaving_free=False
        )
