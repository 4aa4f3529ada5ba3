"""What a search strategy is: how it builds its supernet and its loop, and how it derives.

Every strategy searches the same space with the same budget, schedule lengths and seeds
(section 4.2 of the paper: "the hyper-parameters are kept the same for all the studied
methods"); `ifnas.run` calls these methods and nothing else that depends on the strategy.
"""

import logging

import torch
from torch.utils.data import DataLoader

from ifnas.config import Config
from ifnas.genotype import Genotype
from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Supernet
from ifnas.search.derive import derive
from ifnas.search.loop import SearchLoop
from ifnas.space.lchain import LChainSpace

_logger = logging.getLogger(__name__)


class Strategy:
    """A search strategy. Subclasses set `name` and implement `build_loop`.

    The default supernet is the sigmoid-gated one of IF-NAS (`Supernet`), and the default
    derivation keeps what the search left live (`ifnas.search.derive`).
    """

    name: str = ""

    def build_supernet(self, cfg: Config, space: LChainSpace, macro: MacroConfig) -> Supernet:
        return Supernet(
            space,
            macro,
            beta_init=cfg.search.beta_init,
            alpha_init=cfg.search.alpha_init,
            mixing=cfg.model.mixing,
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

    def derive(self, loop: SearchLoop, keep: str) -> Genotype:
        """The genotype of the searched supernet (`keep`: `all` or `keep_one`)."""
        return derive(loop.supernet, keep)
