"""Checkpoints: atomic writes, RNG states, and strict, explained loading of model weights."""

import logging
import os
import pickle
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ifnas._io import atomic_write

_logger = logging.getLogger(__name__)


def save_checkpoint(path: str | os.PathLike, payload: dict) -> None:
    """Write `payload` with `torch.save`, atomically: a crash mid-write keeps the last one."""
    atomic_write(path, lambda f: torch.save(payload, f))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or that is not one of ifnas."""


# What `torch.load` raises on a file that is not a whole `torch.save` archive: text or random
# bytes (unpickling), a truncated zip (the stream reader's RuntimeError), an empty file.
_UNREADABLE = (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, zipfile.BadZipFile)


def load_checkpoint(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict:
    """The payload of a checkpoint written by `save_checkpoint`.

    Raises `FileNotFoundError` when there is no file, and `CheckpointError` naming the file
    when it is corrupt or truncated, or is not a dict holding every key of `required`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except _UNREADABLE as error:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated, or not a checkpoint at all (torch.load: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else '-'})"
        ) from error
    missing = [key for key in required if key not in payload] if isinstance(payload, dict) else []
    if not isinstance(payload, dict) or missing:
        found = (
            f"a {type(payload).__name__}"
            if not isinstance(payload, dict)
            else (f"a dict without {missing}")
        )
        raise CheckpointError(f"{path} is not an ifnas checkpoint: it holds {found}")
    return payload


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


def _listed(title: str, items: list[str]) -> str:
    shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
    return f"{title} ({len(items)}):\n  " + "\n  ".join(shown)


def model_state_differences(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """How `state` does not fit `model` (missing keys, unexpected keys, other shapes), as
    paragraphs of a message; empty when it fits. `module.` prefixes (DataParallel, DDP) are
    ignored on both sides."""
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
    return [
        _listed(title, items)
        for title, items in (
            ("missing from the checkpoint", missing),
            ("not in the model", unexpected),
            ("different shape", shapes),
        )
        if items
    ]


def optimizer_state_differences(
    optimizer: torch.optim.Optimizer, state: Mapping, name: str = "optimizer"
) -> list[str]:
    """How `state` does not fit `optimizer` (parameter groups, sizes, shapes of per-parameter
    state such as momentum); empty when it fits. `Optimizer.load_state_dict` checks only the
    counts, and a momentum buffer of another shape would fail at the next step instead."""
    saved = state.get("param_groups")
    if saved is None or "state" not in state:
        return [f"{name}: the checkpoint holds no optimizer state"]
    groups = optimizer.param_groups
    if len(saved) != len(groups):
        return [f"{name}: {len(saved)} parameter groups in the checkpoint, {len(groups)} here"]
    problems = []
    for g, (theirs, own) in enumerate(zip(saved, groups, strict=True)):
        if len(theirs["params"]) != len(own["params"]):
            problems.append(
                f"group {g}: {len(theirs['params'])} parameters in the checkpoint, "
                f"{len(own['params'])} here"
            )
            continue
        for k, (key, param) in enumerate(zip(theirs["params"], own["params"], strict=True)):
            for field, value in state["state"].get(key, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and value.shape != param.shape:
                    problems.append(
                        f"group {g}, parameter {k}: {field} of shape {tuple(value.shape)} in the "
                        f"checkpoint, parameter of shape {tuple(param.shape)} here"
                    )
    return [_listed(f"{name} state that does not fit", problems)] if problems else []


def scheduler_state_differences(scheduler, state: Mapping, name: str = "lr_scheduler") -> list[str]:
    """Keys of `state` that `scheduler` does not have or lacks (a checkpoint of another kind
    of schedule); `LRScheduler.load_state_dict` would take them silently."""
    own, theirs = set(scheduler.state_dict()), set(state)
    if own == theirs:
        return []
    return [
        f"{name}: checkpoint of another schedule (keys only in the checkpoint: "
        f"{sorted(theirs - own)}, only here: {sorted(own - theirs)})"
    ]


def refuse_mismatch(problems: list[str], what: str = "the model") -> None:
    """Raise `ValueError` listing `problems`, when there are any."""
    if problems:
        raise ValueError(
            f"checkpoint does not match {what}; nothing was loaded.\n" + "\n".join(problems)
        )


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load `state` into `model` all or nothing, from a plain, DataParallel or DDP model alike.

    Raises `ValueError` listing every missing key, unexpected key and shape difference when the
    checkpoint does not match the model (another genotype, other widths); nothing is loaded
    then.
    """
    refuse_mismatch(model_state_differences(model, state))
    unwrap(model).load_state_dict({k.removeprefix("module."): v for k, v in state.items()})


def due_inside_epoch(every: int, global_iter: int, epoch_iter: int, iters_per_epoch: int) -> bool:
    """Whether a loop saves after its `global_iter`-th iteration, the `epoch_iter`-th of its
    epoch: every `every` iterations (0: never), except after an epoch's last iteration, which
    the checkpoint at the end of the epoch follows anyway."""
    return bool(every) and global_iter % every == 0 and epoch_iter < iters_per_epoch


def rng_states() -> list[dict]:
    """`rng_state()` of every process, in rank order (a collective under torchrun)."""
    from ifnas.distributed import all_gather_object

    return all_gather_object(rng_state())


def restore_rng_states(saved: list[dict] | dict) -> None:
    """Give this process the RNG state it had when `rng_states()` was saved.

    `saved` holds one state per rank; a run resumes with as many processes as it had. A single
    dict (checkpoints of single-process runs before multi-process ones existed) is taken as is.
    """
    from ifnas.distributed import rank, world_size

    if isinstance(saved, dict):
        set_rng_state(saved)
        return
    if len(saved) != world_size():
        raise ValueError(
            f"the checkpoint holds the RNG states of {len(saved)} processes, this run has "
            f"{world_size()}"
        )
    set_rng_state(saved[rank()])
