"""Retraining a derived network from scratch (section 4.1 of the paper, at any scale)."""

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ifnas.config import RetrainConfig
from ifnas.metrics import evaluate

_logger = logging.getLogger(__name__)


class RetrainLoop:
    """SGD with a cosine schedule (per iteration) and optional label smoothing.

    Args:
        net: the derived network, already on `device`.
        cfg: the retrain settings.
        train_loader: training batches.
        device: where batches go.
        writer: an optional TensorBoard `SummaryWriter`.
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
        self.optimizer = torch.optim.SGD(
            net.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov,
        )
        self.lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(cfg.epochs * len(train_loader), 1)
        )
        self.epoch = 0
        self.global_iter = 0

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    def train_epoch(self, on_iter: Callable[[dict], None] | None = None) -> dict:
        self.net.train()
        self.train_loader.sampler.set_epoch(self.epoch)
        loss_sum = correct = seen = 0.0
        for x, y in self.train_loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            logits = self.net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.lr_scheduler.step()

            loss_sum += loss.item() * y.numel()
            correct += (logits.argmax(1) == y).sum().item()
            seen += y.numel()
            if self.writer is not None:
                self.writer.add_scalar("retrain/loss", loss.item(), self.global_iter)
            self.global_iter += 1
            if on_iter is not None:
                on_iter({"loss": loss.item()})
        self.epoch += 1
        return {"loss": loss_sum / max(seen, 1), "top1": correct / max(seen, 1)}

    def evaluate(self, loader: DataLoader) -> float:
        return evaluate(self.net, loader, self.device)

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
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "epoch": self.epoch,
            "global_iter": self.global_iter,
        }

    def load_state_dict(self, state: dict) -> None:
        from ifnas.checkpoint import load_model_state

        load_model_state(self.net, state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.epoch = state["epoch"]
        self.global_iter = state["global_iter"]
