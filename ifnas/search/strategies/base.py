"""What a search strategy is: how it builds its supernet and its loop, and how it derives.

Every strategy searches the same space with the same budget, schedule lengths and seeds
(section 4.2 of the paper: "the hyper-parameters are kept the same for all the studied
methods"); `ifnas.run` calls these methods and nothing else that depends on the strategy.
"""

import logging

import torch
from torch.utils.data import DataLoader

from ifnas.cell_genotype import CellGenotype
from ifnas.config import Config
from ifnas.genotype import Genotype
from ifnas.nn.cells import CellSupernet
from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Supernet
from ifnas.search.cell_search import CellSearchLoop, derive_cells
from ifnas.search.derive import derive
from ifnas.search.loop import SearchLoop
from ifnas.space.cells import CellSpace
from ifnas.space.lchain import LChainSpace

_logger = logging.getLogger(__name__)


class Strategy:
    """A search strategy. Subclasses set `name` and implement `build_loop`.

    The default supernet is the sigmoid-gated one of IF-NAS (`Supernet`, or `CellSupernet` in
    a cell space), and the default derivation keeps what the search left live
    (`ifnas.search.derive`, `ifnas.search.cell_search.derive_cells`).

    Attributes:
        spaces: the values of `model.space` the strategy searches.
    """

    name: str = ""
    spaces: tuple[str, ...] = ("lchain",)

    def build_supernet(
        self, cfg: Config, space: LChainSpace | CellSpace, macro: MacroConfig
    ) -> Supernet | CellSupernet:
        kind = CellSupernet if isinstance(space, CellSpace) else Supernet
        return kind(
            space,
            macro,
            beta_init=cfg.search.beta_init,
            alpha_init=cfg.search.alpha_init,
            mixing=cfg.model.mixing,
            recompute_full=cfg.search.recompute_full,
        )

    def build_loop(
        self,
        supernet: Supernet,
        cfg: Config,
        train_loader: DataLoader,
        device: torch.device,
        writer=None,
    ) -> SearchLoop:
        """The loop that searches `supernet` on the batches of `train_loader`."""
        raise NotImplementedError(f"strategy {self.name!r} does not define its search loop")

    def derive(self, loop: SearchLoop, keep: str) -> Genotype | CellGenotype:
        """The genotype of the searched supernet (`keep`: `all` or `keep_one`)."""
        if isinstance(loop.supernet, CellSupernet):
            return derive_cells(loop.supernet, keep)
        return derive(loop.supernet, keep)


def one_level_loop(
    supernet, cfg: Config, train_loader, device, writer=None, interleaving_free: bool = True
) -> SearchLoop:
    """The one-level search of IF-NAS (sections 3.4, 3.5) on either kind of supernet."""
    kind = CellSearchLoop if isinstance(supernet, CellSupernet) else SearchLoop
    return kind(supernet, cfg.search, train_loader, device, writer, interleaving_free)
