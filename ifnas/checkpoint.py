"""Checkpoints: atomic writes, RNG states, and strict, explained loading of model weights."""

import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ifnas._io import atomic_write

_logger = logging.getLogger(__name__)


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write `payload` with `torch.save`, atomically: a crash mid-write keeps the last one."""
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state() -> dict:
    """The state of every random number generator a run draws from."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a `DataParallel` or `DistributedDataParallel` wrapper."""
    return (
        model.module
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel)
        else model
    )


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into `model` all or nothing, from a plain, DataParallel or DDP model alike.

    Raises `ValueError` listing every missing key, unexpected key and shape difference when the
    checkpoint does not match the model (another genotype, other widths); nothing is loaded
    then.
    """
    model = unwrap(model)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        lines = []
        for title, items in (
            ("missing from the checkpoint", missing),
            ("not in the model", unexpected),
            ("different shape", shapes),
        ):
            if items:
                shown = items[:20] + (
                    [f"... and {len(items) - 20} more"] if len(items) > 20 else []
                )
                lines.append(f"{title} ({len(items)}):\n  " + "\n  ".join(shown))
        raise ValueError(
            "checkpoint does not match the model; nothing was loaded.\n" + "\n".join(lines)
        )
    model.load_state_dict(state)
