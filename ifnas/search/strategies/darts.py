"""DARTS in the L-chain space: softmax mixing, first-order bi-level search (Liu et al., 2019).

Each edge `(i, j)` mixes its ops with a softmax over `{sep_conv_3x3, skip_connect, none}`:

    x_j = sum_i sum_{o != none} softmax(alpha[i, j, :], none[i, j])_o * o(x_i),

`none` contributing zero. DARTS has no edge weights: `beta` stays at its initial value and
out of the architecture parameters. The search is DARTS' first-order bi-level optimization
(its eq. 3 and 4 with xi = 0): each iteration first steps the architecture with Adam on a batch
of a held-out part of the training set (`search.darts_split`, split with a fixed seed; the
validation set that reports accuracy is never touched), then the weights with SGD on a batch of
the rest. The schedule has the same lengths as the other strategies: weights alone for
`weight_warmup_epochs`, then both (`alpha` and `none` learn together, so `alpha_delay_epochs`
does not apply). Nothing is pruned during the search.

Derivation removes the weakest `(edge, op)` pairs until the budget holds
(`ifnas.search.to_budget`); the strength of a pair is its softmax weight, so an edge's strength
is DARTS' "largest non-none weight" and the edge goes with its last op. `keep_one` keeps the
strongest pair of every node of the full supernet, with no budget (the paper's Table 3).
"""

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ifnas.config import ConfigError
from ifnas.data import make_loader
from ifnas.distributed import average_gradients
from ifnas.nn.supernet import Activation, Supernet
from ifnas.sampling import SeededItems, start_epoch
from ifnas.search.loop import SearchLoop
from ifnas.search.strategies.base import Strategy
from ifnas.search.to_budget import derive_within_budget
from ifnas.space.lchain import OPS

_logger = logging.getLogger(__name__)

ARCH_SPLIT_SEED = 0  # the weight/architecture split of the training set never changes
MASKED_LOGIT = -1e9  # logit of a pruned op or edge: exp() underflows to exactly 0


class DartsSupernet(Supernet):
    """The L-chain supernet with DARTS' softmax mixing (see the module docstring).

    `none_logits[key]` (rows, L) sits beside each group's `alpha` (rows, L, 2). Pruned ops get
    weight 0 and the softmax renormalizes over what is left.
    """

    learns_beta = False

    def __init__(
        self,
        space,
        macro,
        alpha_init: float = 0.0,
        mixing: str = "fused",
        recompute_full: bool = False,
    ):
        super().__init__(
            space,
            macro,
            beta_init=0.0,
            alpha_init=alpha_init,
            mixing=mixing,
            recompute_full=recompute_full,
        )
        self.none_logits = nn.ParameterDict(
            {
                key: nn.Parameter(torch.full_like(g.beta, alpha_init))
                for key, g in self.gates.items()
            }
        )

    def arch_parameters(self):
        for key, gates in self.gates.items():
            if self.learns_beta:
                yield gates.beta
            yield gates.alpha
            yield self.none_logits[key]

    def weight_parameters(self):
        arch = {id(p) for p in self.gates.parameters()}
        arch |= {id(p) for p in self.none_logits.parameters()}
        return (p for p in self.parameters() if id(p) not in arch)

    def stage_none(self, stage: int) -> torch.Tensor:
        """`none` logits (rows, L) of a stage, detached unless `alpha` learns."""
        act = self.activation
        parts = []
        for lam in range(self.space.L):
            p = self.none_logits[f"s{stage}_g{lam}"]
            parts.append(p if act.learns(lam) and act.learn_alpha else p.detach())
        return torch.cat(parts)

    def op_weights(self, stage: int) -> torch.Tensor:
        """Softmax weights (rows, L, 2) of `sep_conv_3x3` and `skip_connect` on every edge."""
        _, alpha = self.stage_logits(stage)
        _, alpha_mask = self.stage_masks(stage)
        alpha = torch.where(alpha_mask.bool(), alpha, MASKED_LOGIT)
        logits = torch.cat([alpha, self.stage_none(stage)[..., None]], dim=-1)
        return torch.softmax(logits, dim=-1)[..., :-1]

    def edge_weights(self, stage: int) -> torch.Tensor:
        """Weight (rows, L) of every edge: 1 in DARTS."""
        return torch.ones_like(self.stage_masks(stage)[0])

    def stage_gates(self, stage: int) -> torch.Tensor:
        return (self.edge_weights(stage)[..., None] * self.op_weights(stage)).reshape(-1)

    @torch.no_grad()
    def gate(self, stage: int, i: int, j: int, op: str | None = None) -> float:
        """Edge weight, or the op's softmax weight; 0 if pruned (the derivation's strength)."""
        gates, r, l = self._locate(stage, i, j)
        row = self._slot[(stage, j)][1]
        if op is None:
            return float(self.edge_weights(stage)[row, l] * gates.beta_mask[r, l])
        o = OPS.index(op)
        return float(self.op_weights(stage)[row, l, o] * gates.alpha_mask[r, l, o])


def split_for_architecture(dataset: Dataset, fraction: float) -> tuple[Subset, Subset]:
    """The training set as (weights part, architecture part), `fraction` in the latter."""
    n = len(dataset)
    n_arch = int(round(fraction * n))
    if not 0 < n_arch < n:
        raise ConfigError(
            f"search.darts_split={fraction} leaves an empty part of the {n} training images"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(ARCH_SPLIT_SEED)).tolist()
    return Subset(dataset, order[n_arch:]), Subset(dataset, order[:n_arch])


def loader_like(loader: DataLoader, dataset: Dataset) -> DataLoader:
    """A training loader over `dataset` with `loader`'s batch size, seed, workers and ranks."""
    sampler = loader.sampler
    return make_loader(
        dataset,
        loader.batch_size,
        True,
        sampler.seed,
        loader.num_workers,
        sampler.num_replicas,
        sampler.rank,
    )


class DartsLoop(SearchLoop):
    """First-order bi-level search (see the module docstring); `stops_at_budget` is False.

    Args:
        arch_loader: batches of the architecture part of the training set.
        (the others as `SearchLoop`'s; `train_loader` holds the weights part)
    """

    def __init__(self, supernet, cfg, train_loader, arch_loader, device, writer=None):
        super().__init__(supernet, cfg, train_loader, device, writer, interleaving_free=False)
        self.arch_loader = arch_loader
        self.arch_optimizer = torch.optim.Adam(
            supernet.arch_parameters(),
            lr=cfg.darts_arch_lr,
            betas=(0.5, 0.999),
            weight_decay=cfg.darts_arch_weight_decay,
        )
        self.stops_at_budget = False  # derivation meets the budget, not the search
        self.arch_batches_per_epoch = len(arch_loader)
        self._arch_position = None
        self._arch_batches = None

    def step(self, x, y, activation=None):
        """One bi-level iteration: an architecture step on the next batch of the architecture
        part (once the warm-up is over), then a weight step on `(x, y)` with every gate
        frozen. `activation` is ignored: every live edge runs in both steps."""
        net = self.supernet
        learning = self.global_iter >= self.schedule.arch_start
        if learning:
            xa, ya = self._arch_batch()
            xa, ya = self.precision.inputs(xa), ya.to(self.device, non_blocking=True)
            net.activate(Activation(None, learn_beta=net.learns_beta, learn_alpha=True))
            with self.precision.autocast():
                arch_logits = net(xa)
            arch_ce = F.cross_entropy(arch_logits.float(), ya)
            self.arch_optimizer.zero_grad(set_to_none=True)
            self.precision.backward(arch_ce)
            average_gradients(net)
            self.precision.step(self.arch_optimizer)
            if self.writer is not None:
                self.writer.add_scalar("search/arch_ce", arch_ce.item(), self.global_iter)

        activation = Activation(None)
        net.activate(activation)
        x, y = self.precision.inputs(x), y.to(self.device, non_blocking=True)
        with self.precision.autocast():
            logits = net(x)
        ce = F.cross_entropy(logits.float(), y)
        self.weight_optimizer.zero_grad(set_to_none=True)
        self.precision.backward(ce)
        average_gradients(net)
        self.precision.step(self.weight_optimizer)
        self.precision.update()
        self.lr_scheduler.step()
        metrics = {
            "ce": ce.item(),
            "reg": 0.0,
            "top1": (logits.argmax(1) == y).float().mean().item(),
        }
        return metrics, activation

    def _arch_batch(self):
        """The architecture batch of the current iteration: batch `epoch_iter` (modulo the
        part's length) of the epoch's order, so that a run resumed anywhere reads the same."""
        per_epoch = self.arch_batches_per_epoch
        if self._arch_position != (self.epoch, self.epoch_iter):
            start_epoch(self.arch_loader, self.epoch, self.epoch_iter % per_epoch)
            self._arch_batches = iter(self.arch_loader)
        elif self.epoch_iter % per_epoch == 0:
            start_epoch(self.arch_loader, self.epoch)
            self._arch_batches = iter(self.arch_loader)
        self._arch_position = (self.epoch, self.epoch_iter + 1)
        return next(self._arch_batches)


class Darts(Strategy):
    name = "darts"

    def build_supernet(self, cfg, space, macro):
        return DartsSupernet(
            space,
            macro,
            alpha_init=cfg.search.alpha_init,
            mixing=cfg.model.mixing,
            recompute_full=cfg.search.recompute_full,
        )

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        dataset = train_loader.dataset
        if isinstance(dataset, SeededItems):  # make_loader's wrapper: split what it wraps
            dataset = dataset.dataset
        weights_part, arch_part = split_for_architecture(dataset, cfg.search.darts_split)
        return DartsLoop(
            supernet,
            cfg.search,
            loader_like(train_loader, weights_part),
            loader_like(train_loader, arch_part),
            device,
            writer,
        )

    def derive(self, loop, keep):
        return derive_within_budget(loop, keep)
