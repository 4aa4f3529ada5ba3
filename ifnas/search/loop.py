"""The search loop: one-level SGD on the active sub-supernet, regularizer, pruning, budget stop.

Each iteration runs the `Activation` the schedule gives, computes cross entropy plus the
regularizer of eq. 3 (when some gate learns), steps the weights and the learning gates on the
same batch (the paper's one-level optimization, eq. 2), then prunes gates below the threshold
and recounts the retained architecture's MAdds. The search is done when they fit the budget.

Under torchrun every process runs this loop on its share of each batch; the gradients of the
weights and of the gates are averaged over the processes before each step
(`ifnas.distributed.average_gradients`), so every process holds the same gates and takes the
same pruning decisions.
"""

import functools
import itertools
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ifnas.checkpoint import due_inside_epoch
from ifnas.config import SearchConfig, parse_madds
from ifnas.distributed import average_gradients
from ifnas.metrics import MaddsTable, evaluate, recalibrate_batchnorm
from ifnas.nn.ops import SEP_CONV
from ifnas.nn.supernet import Activation, Supernet
from ifnas.sampling import start_epoch
from ifnas.search.pruning import PruneReport, clear_pruned_state, prune
from ifnas.search.regularizer import discretization_loss
from ifnas.search.schedule import SearchSchedule
from ifnas.train.divergence import check_finite_loss
from ifnas.train.precision import Precision

_logger = logging.getLogger(__name__)


class SearchLoop:
    """Runs the search of `supernet` epoch by epoch; `state_dict` holds all it needs to resume.

    Args:
        supernet: the supernet, already on `device`.
        cfg: the search settings.
        train_loader: batches of the search's training data.
        device: where batches go.
        writer: an optional TensorBoard `SummaryWriter`.
        interleaving_free: `False` runs the "w/o IF" ablation (every live edge, every step).
    """

    def __init__(
        self,
        supernet: Supernet,
        cfg: SearchConfig,
        train_loader: DataLoader,
        device: torch.device,
        writer=None,
        interleaving_free: bool = True,
    ):
        self.supernet = supernet
        self.cfg = cfg
        self.train_loader = train_loader
        self.device = device
        self.writer = writer
        self.budget = parse_madds(cfg.budget_madds)
        self.precision = Precision(cfg.amp, cfg.channels_last, device)
        self.precision.model(supernet)
        iters_per_epoch = len(train_loader)
        self.schedule = SearchSchedule(
            L=supernet.space.L,
            iters_per_epoch=iters_per_epoch,
            weight_warmup_epochs=cfg.weight_warmup_epochs,
            alpha_delay_epochs=cfg.alpha_delay_epochs,
            step_iters=cfg.step_iters,
            interleaving_free=interleaving_free,
        )
        self.weight_optimizer = torch.optim.SGD(
            supernet.weight_parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
        self.arch_optimizer = torch.optim.SGD(
            supernet.arch_parameters(), lr=cfg.arch_lr, momentum=cfg.arch_momentum
        )
        self.lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.weight_optimizer, T_max=cfg.epochs * iters_per_epoch
        )
        self.epoch = 0
        self.epoch_iter = 0  # iterations done in the current epoch (a resumed run skips them)
        self.global_iter = 0
        self._totals = {"ce": 0.0, "reg": 0.0, "top1": 0.0, "count": 0}
        self.madds = self.retained_madds()
        # A budget the full supernet already fits cannot end the search: it runs every epoch.
        self.stops_at_budget = self.madds > self.budget
        if not self.stops_at_budget:
            _logger.warning(
                "the full supernet (%.3fM MAdds) already fits the budget (%.3fM): the "
                "search runs all %d epochs",
                self.madds / 1e6,
                self.budget / 1e6,
                cfg.epochs,
            )
        self.budget_met = False
        self.prune_events: list[dict] = []
        self.mu_scale = 1.0
        self._pruned_in_cycle = False

    @property
    def done(self) -> bool:
        return self.budget_met or self.epoch >= self.cfg.epochs

    @functools.cached_property
    def madds_table(self) -> MaddsTable:
        """MAdds per `sep_conv_3x3` of each stage of the L-chain network (built once)."""
        return MaddsTable(self.supernet.macro, len(self.supernet.space.stages))

    def retained_madds(self) -> int:
        """MAdds of the architecture the live edges and ops form, at the configured size."""
        net = self.supernet
        return self.madds_table.of_sep_counts(
            [
                sum(op == SEP_CONV for pairs in net.live_inputs(s).values() for _, op in pairs)
                for s in range(len(net.space.stages))
            ]
        )

    def train_epoch(
        self,
        on_iter: Callable[[dict], None] | None = None,
        save: Callable[[], None] | None = None,
        save_every: int = 0,
    ) -> dict:
        """Train one epoch, or until the budget is met; returns the epoch's mean metrics.

        A loop resumed inside an epoch goes on from the batch it stopped before. `save()` is
        called whenever `global_iter` reaches a multiple of `save_every` inside the epoch (the
        caller saves at its end anyway), between two iterations, where `state_dict` and the
        RNG states hold exactly what the next iteration needs.
        """
        net = self.supernet
        net.train()
        start_epoch(self.train_loader, self.epoch, self.epoch_iter)
        totals = self._totals
        for x, y in self.train_loader:
            metrics, activation = self.step(x, y)
            check_finite_loss(
                metrics["ce"] + metrics["reg"],
                lambda: (
                    f"search epoch {self.epoch + 1}, iteration {self.global_iter + 1}",
                    f"search.lr (now {self.cfg.lr:g}) or the gates' learning rate "
                    f"(search.arch_lr; search.darts_arch_lr for darts and pcdarts)",
                ),
            )
            for k, v in metrics.items():
                totals[k] += v
            totals["count"] += 1
            self._log_iteration(metrics, activation)
            self.global_iter += 1
            self.epoch_iter += 1
            if on_iter is not None:
                on_iter({**metrics, "step": _step_name(activation), "madds": self.madds})
            if self.budget_met:
                break
            per_epoch = self.schedule.iters_per_epoch
            if save and due_inside_epoch(save_every, self.global_iter, self.epoch_iter, per_epoch):
                save()
        self.epoch += 1
        self.epoch_iter = 0
        count = max(totals.pop("count"), 1)
        self._totals = {"ce": 0.0, "reg": 0.0, "top1": 0.0, "count": 0}
        return {k: v / count for k, v in totals.items()}

    def step(
        self, x: torch.Tensor, y: torch.Tensor, activation: Activation | None = None
    ) -> tuple[dict, Activation]:
        """One search iteration on the batch `(x, y)`: forward, backward, both optimizer steps,
        pruning and the budget check. Returns its metrics and the activation it ran.

        `activation` defaults to the schedule's for the current iteration (the benchmarks pass
        one to time a particular step). The caller advances `global_iter`.
        """
        net = self.supernet
        x, y = self.precision.inputs(x), y.to(self.device, non_blocking=True)
        if activation is None:
            activation = self.activation_for(self.global_iter)
        net.activate(activation)
        learning = activation.learn_beta or activation.learn_alpha

        with self.precision.autocast():
            logits = net(x)
        # The loss and the regularizer in float32, outside autocast: the gates stay float32.
        ce = F.cross_entropy(logits.float(), y)
        loss = ce
        reg = torch.zeros((), device=self.device)
        if learning:
            reg = self.regularizer()
            loss = ce + reg

        self.weight_optimizer.zero_grad(set_to_none=True)
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        average_gradients(net)
        self.precision.step(self.weight_optimizer)
        if learning:
            self.precision.step(self.arch_optimizer)
        self.precision.update()
        self.lr_scheduler.step()

        if learning:
            self._prune()
        if self.schedule.ends_cycle(self.global_iter):
            if not self._pruned_in_cycle:
                self.mu_scale *= self.cfg.mu_growth
            self._pruned_in_cycle = False
        metrics = {
            "ce": ce.item(),
            "reg": reg.item(),
            "top1": (logits.argmax(1) == y).float().mean().item(),
        }
        return metrics, activation

    def activation_for(self, global_iter: int) -> Activation:
        """The `Activation` of an iteration: the schedule's (strategies may add to it)."""
        return self.schedule.activation(global_iter)

    def regularizer(self) -> torch.Tensor:
        """The term added to cross entropy while gates learn: eq. 3, scaled by `mu_scale`."""
        return discretization_loss(
            self.supernet,
            self.mu_scale * self.cfg.mu1,
            self.mu_scale * self.cfg.mu2,
            self.cfg.detach_mean,
        )

    def prune_gates(self) -> PruneReport:
        """Mask the gates below the threshold (section 3.5) and report what went."""
        return prune(self.supernet, self.cfg.prune_threshold)

    def _prune(self) -> None:
        report = self.prune_gates()
        if not report:
            return
        clear_pruned_state(self.arch_optimizer, self.supernet)
        self._pruned_in_cycle = True
        self.madds = self.retained_madds()
        self.prune_events.append(
            {
                "iter": self.global_iter,
                "edges": [list(e) for e in report.edges],
                "ops": [list(o) for o in report.ops],
                "dead_node_edges": [list(e) for e in report.dead_node_edges],
                "madds": self.madds,
            }
        )
        _logger.info(
            "iter %d: pruned %d edges, %d ops, %d edges of dead nodes; retained MAdds "
            "%.3fM (budget %.3fM)",
            self.global_iter,
            len(report.edges),
            len(report.ops),
            len(report.dead_node_edges),
            self.madds / 1e6,
            self.budget / 1e6,
        )
        if self.stops_at_budget and self.madds <= self.budget:
            self.budget_met = True
            _logger.info(
                "budget met at iter %d (epoch %d): %.3fM MAdds <= %.3fM",
                self.global_iter,
                self.epoch,
                self.madds / 1e6,
                self.budget / 1e6,
            )

    def _log_iteration(self, metrics: dict, activation: Activation) -> None:
        if self.writer is None:
            return
        it = self.global_iter
        self.writer.add_scalar("search/loss_ce", metrics["ce"], it)
        self.writer.add_scalar("search/loss_reg", metrics["reg"], it)
        self.writer.add_scalar("search/lr", self.lr_scheduler.get_last_lr()[0], it)
        self.writer.add_scalar("search/mu_scale", self.mu_scale, it)
        self.writer.add_scalar(
            "search/group", -1 if activation.group is None else activation.group, it
        )

    def evaluate(self, loader: DataLoader, calibration: DataLoader) -> float:
        """Top-1 of the supernet with every live edge active, gates as they are.

        The BN statistics are first re-estimated on the first `bn_calibration_batches` batches
        of `calibration` (training images in a fixed order), with every live edge active.
        """
        self.supernet.activate(Activation(group=None))
        batches = itertools.islice(calibration, self.cfg.bn_calibration_batches)
        recalibrate_batchnorm(self.supernet, batches, self.device)
        return evaluate(self.supernet, loader, self.device)

    def log_epoch(self, train: dict, val_top1: float) -> None:
        """Per-epoch scalars and gate histograms for TensorBoard."""
        net, e = self.supernet, self.epoch
        live_edges = sum(
            len({i for i, _ in p})
            for s in range(len(net.space.stages))
            for p in net.live_inputs(s).values()
        )
        live_ops = sum(
            len(p) for s in range(len(net.space.stages)) for p in net.live_inputs(s).values()
        )
        _logger.info(
            "epoch %d: train ce %.4f top1 %.4f, val top1 %.4f, live edges %d, live ops "
            "%d, retained MAdds %.3fM",
            e,
            train["ce"],
            train["top1"],
            val_top1,
            live_edges,
            live_ops,
            self.madds / 1e6,
        )
        if self.writer is None:
            return
        w = self.writer
        w.add_scalar("search/train_top1", train["top1"], e)
        w.add_scalar("search/val_top1", val_top1, e)
        w.add_scalar("search/live_edges", live_edges, e)
        w.add_scalar("search/live_ops", live_ops, e)
        w.add_scalar("search/retained_madds", self.madds, e)
        with torch.no_grad():
            for s in range(len(net.space.stages)):
                beta, alpha = net.stage_logits(s)
                beta_mask, alpha_mask = net.stage_masks(s)
                edge = torch.sigmoid(beta)[beta_mask.bool()]
                op = torch.sigmoid(alpha)[alpha_mask.bool()]
                if edge.numel():
                    w.add_histogram(f"gates/stage{s}_edges", edge, e)
                    w.add_scalar(f"gates/stage{s}_edge_mean", edge.mean().item(), e)
                if op.numel():
                    w.add_histogram(f"gates/stage{s}_ops", op, e)

    def state_dict(self) -> dict:
        """Everything the loop needs to go on from here: the supernet (weights, gates, masks),
        both optimizers, the schedule, the precision's scaler, the position in the epoch and in
        the interleaving-free cycle, the pruning history."""
        return {
            "supernet": self.supernet.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "precision": self.precision.state_dict(),
            "epoch": self.epoch,
            "epoch_iter": self.epoch_iter,
            "global_iter": self.global_iter,
            "iters_per_epoch": self.schedule.iters_per_epoch,
            "position": self.schedule.position(self.global_iter),
            "epoch_totals": dict(self._totals),
            "budget_met": self.budget_met,
            "madds": self.madds,
            "prune_events": self.prune_events,
            "mu_scale": self.mu_scale,
            "pruned_in_cycle": self._pruned_in_cycle,
        }

    def load_state_dict(self, state: dict) -> None:
        """Load `state` all or nothing: when the supernet, an optimizer or the schedule does not
        fit (another space, other widths, another data size), raise `ValueError` listing what
        differs, with nothing changed."""
        from ifnas.checkpoint import (
            load_model_state,
            model_state_differences,
            optimizer_state_differences,
            refuse_mismatch,
            scheduler_state_differences,
        )

        problems = model_state_differences(self.supernet, state["supernet"])
        for name in ("weight_optimizer", "arch_optimizer"):
            problems += optimizer_state_differences(getattr(self, name), state[name], name)
        problems += scheduler_state_differences(self.lr_scheduler, state["lr_scheduler"])
        saved_iters = state.get("iters_per_epoch", self.schedule.iters_per_epoch)
        if saved_iters != self.schedule.iters_per_epoch:
            problems.append(
                f"epochs of {saved_iters} iterations in the checkpoint, "
                f"{self.schedule.iters_per_epoch} here (another data size, batch size or "
                f"number of processes): the schedule would not continue where it stopped"
            )
        refuse_mismatch(problems, "the search")

        load_model_state(self.supernet, state["supernet"])
        self.supernet.invalidate()
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if "precision" in state:
            self.precision.load_state_dict(state["precision"])
        self.epoch = state["epoch"]
        self.epoch_iter = state.get("epoch_iter", 0)
        self._totals = dict(state.get("epoch_totals", self._totals))
        self.global_iter = state["global_iter"]
        self.budget_met = state["budget_met"]
        self.madds = state["madds"]
        self.prune_events = state["prune_events"]
        self.mu_scale = state["mu_scale"]
        self._pruned_in_cycle = state["pruned_in_cycle"]


def _step_name(activation: Activation) -> str:
    if activation.group is not None:
        return f"S{activation.group}"
    return "all" if activation.learn_beta else "warm-up"
