"""Retraining a derived network from scratch (section 4.1 of the paper, at any scale).

The paper trains each searched architecture as PC-DARTS does on ImageNet: SGD with momentum
0.9 and weight decay 3e-5, batch 1024 on 8 GPUs with learning rate 0.5, label smoothing, an
auxiliary loss and 5 epochs of learning-rate warm-up, 250 epochs in all. Every part of that
recipe is a `RetrainConfig` value; `configs/imagenet-mobile.yaml` sets them.
"""

import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ifnas.checkpoint import due_inside_epoch, unwrap
from ifnas.config import RetrainConfig
from ifnas.distributed import broadcast_buffers, world_size
from ifnas.metrics import evaluate
from ifnas.sampling import start_epoch
from ifnas.train.divergence import check_finite_loss
from ifnas.train.precision import Precision

_logger = logging.getLogger(__name__)


def scaled_lr(cfg: RetrainConfig, global_batch: int) -> float:
    """`cfg.lr`, scaled linearly from the batch it is given for (`cfg.lr_batch`) to
    `global_batch`, the images of one iteration over all processes."""
    if cfg.lr_batch is None:
        return cfg.lr
    return cfg.lr * global_batch / cfg.lr_batch


def warmup_cosine(warmup_iters: int, total_iters: int) -> Callable[[int], float]:
    """Learning-rate factor of iteration `t`: `(t + 1) / warmup_iters` during the warm-up, then
    a cosine from 1 down to 0 at `total_iters`."""

    def factor(t: int) -> float:
        if t < warmup_iters:
            return (t + 1) / warmup_iters
        progress = (t - warmup_iters) / max(total_iters - warmup_iters, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class RetrainLoop:
    """SGD with linear warm-up and cosine decay (per iteration), label smoothing, an optional
    auxiliary loss and mixed precision.

    Args:
        net: the derived network, already on `device`; under torchrun wrapped in
            `DistributedDataParallel`, which averages the gradients (convert a wrapped network
            to channels-last before wrapping it: DDP lays out its buckets at construction).
        cfg: the retrain settings.
        train_loader: training batches (this process's share under torchrun).
        device: where batches go.
        writer: an optional TensorBoard `SummaryWriter`.

    The learning rate is `scaled_lr(cfg, batch_size * processes)`. When `net` has an auxiliary
    head, it returns `(logits, aux_logits)` in training and the loss is
    `CE(logits) + cfg.auxiliary_weight * CE(aux_logits)`, both with label smoothing.
    """

    def __init__(
        self,
        net: nn.Module,
        cfg: RetrainConfig,
        train_loader: DataLoader,
        device: torch.device,
        writer=None,
    ):
        self.net = net
        self.cfg = cfg
        self.train_loader = train_loader
        self.device = device
        self.writer = writer
        self.precision = Precision(cfg.amp, cfg.channels_last, device)
        if net is unwrap(net):
            self.precision.model(net)
        self.iters_per_epoch = len(train_loader)
        self.global_batch = train_loader.batch_size * world_size()
        self.lr = scaled_lr(cfg, self.global_batch)
        self.optimizer = torch.optim.SGD(
            net.parameters(),
            lr=self.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            warmup_cosine(
                cfg.warmup_epochs * self.iters_per_epoch, cfg.epochs * self.iters_per_epoch
            ),
        )
        self.epoch = 0
        self.epoch_iter = 0
        self.global_iter = 0
        self._totals = {"loss": 0.0, "correct": 0.0, "seen": 0.0}

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    def train_epoch(
        self,
        on_iter: Callable[[dict], None] | None = None,
        save: Callable[[], None] | None = None,
        save_every: int = 0,
    ) -> dict:
        """Train one epoch (the rest of it, when resumed inside it); returns its mean loss and
        top-1. `save()` is called as in `SearchLoop.train_epoch`."""
        self.net.train()
        start_epoch(self.train_loader, self.epoch, self.epoch_iter)
        totals = self._totals
        smoothing = self.cfg.label_smoothing
        for x, y in self.train_loader:
            x, y = self.precision.inputs(x), y.to(self.device, non_blocking=True)
            with self.precision.autocast():
                out = self.net(x)
            logits, aux = out if isinstance(out, tuple) else (out, None)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
            if aux is not None:
                aux_loss = F.cross_entropy(aux.float(), y, label_smoothing=smoothing)
                loss = loss + self.cfg.auxiliary_weight * aux_loss

            self.optimizer.zero_grad(set_to_none=True)
            self.precision.backward(loss)
            self.precision.step(self.optimizer)
            self.precision.update()
            self.lr_scheduler.step()

            value = loss.item()
            check_finite_loss(
                value,
                lambda: (
                    f"retrain epoch {self.epoch + 1}, iteration {self.global_iter + 1}",
                    f"retrain.lr (now {self.cfg.lr:g})",
                ),
            )
            totals["loss"] += value * y.numel()
            totals["correct"] += (logits.argmax(1) == y).sum().item()
            totals["seen"] += y.numel()
            if self.writer is not None:
                self.writer.add_scalar("retrain/loss", value, self.global_iter)
                self.writer.add_scalar(
                    "retrain/lr", self.lr_scheduler.get_last_lr()[0], self.global_iter
                )
            self.global_iter += 1
            self.epoch_iter += 1
            if on_iter is not None:
                on_iter({"loss": value})
            per_epoch = self.iters_per_epoch
            if save and due_inside_epoch(save_every, self.global_iter, self.epoch_iter, per_epoch):
                save()
        self.epoch += 1
        self.epoch_iter = 0
        self._totals = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        seen = max(totals["seen"], 1)
        return {"loss": totals["loss"] / seen, "top1": totals["correct"] / seen}

    def evaluate(self, loader: DataLoader) -> float:
        """Top-1 over `loader`. Under torchrun the BN statistics of rank 0 are copied to every
        process first, so that all evaluate one network and end the epoch identical."""
        net = unwrap(self.net)
        broadcast_buffers(net)
        return evaluate(net, loader, self.device)

    def log_epoch(self, train: dict, val_top1: float) -> None:
        _logger.info(
            "retrain epoch %d: train loss %.4f top1 %.4f, val top1 %.4f",
            self.epoch,
            train["loss"],
            train["top1"],
            val_top1,
        )
        if self.writer is not None:
            self.writer.add_scalar("retrain/train_top1", train["top1"], self.epoch)
            self.writer.add_scalar("retrain/val_top1", val_top1, self.epoch)

    def state_dict(self) -> dict:
        """Weights, optimizer, schedule, the precision's scaler and the position in the epoch."""
        return {
            "net": unwrap(self.net).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "precision": self.precision.state_dict(),
            "epoch": self.epoch,
            "epoch_iter": self.epoch_iter,
            "global_iter": self.global_iter,
            "iters_per_epoch": self.iters_per_epoch,
            "epoch_totals": dict(self._totals),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load `state` all or nothing: when the network (another genotype, other widths), the
        optimizer or the schedule does not fit, raise `ValueError` listing what differs, with
        nothing changed."""
        from ifnas.checkpoint import (
            load_model_state,
            model_state_differences,
            optimizer_state_differences,
            refuse_mismatch,
            scheduler_state_differences,
        )

        problems = model_state_differences(self.net, state["net"])
        problems += optimizer_state_differences(self.optimizer, state["optimizer"])
        problems += scheduler_state_differences(self.lr_scheduler, state["lr_scheduler"])
        saved_iters = state.get("iters_per_epoch", self.iters_per_epoch)
        if saved_iters != self.iters_per_epoch:
            problems.append(
                f"epochs of {saved_iters} iterations in the checkpoint, {self.iters_per_epoch} "
                f"here (another data size, batch size or number of processes)"
            )
        refuse_mismatch(problems, "the retrained network")

        load_model_state(self.net, state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if "precision" in state:
            self.precision.load_state_dict(state["precision"])
        self.epoch = state["epoch"]
        self.epoch_iter = state.get("epoch_iter", 0)
        self.global_iter = state["global_iter"]
        self._totals = dict(state.get("epoch_totals", self._totals))
