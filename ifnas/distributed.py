"""Data parallelism through `torch.distributed`: one process per device, launched by `torchrun`.

`torchrun` tells each process its place through the environment (`RANK`, `LOCAL_RANK`,
`WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`). `launched()` joins the process group from there
(NCCL for CUDA tensors, gloo for CPU tensors and for the small objects processes exchange) and
leaves it at the end. Without `torchrun`, or with a single process, nothing is initialized and
every helper below returns at once: one process runs exactly as it does without this module.

How a search stays one search on many processes:

- The weights start identical: every process builds the model from the run's seed, then
  `broadcast_module` copies rank 0's parameters and buffers over them.
- `average_gradients` averages the gradients of every parameter, the gates `beta` and `alpha`
  included, in one all-reduce per iteration, so every process applies the same update and the
  gates stay bit-identical. A parameter that a sub-supernet step left unused on every process
  keeps no gradient (as in a single process: the optimizer skips it); one used on some
  processes only means they ran different networks, and every process raises.
- Pruning reads these identical gates, so every process takes the same decision; at the end
  of each epoch `check_identical` compares gates and masks with rank 0's and raises on every
  process if anything differs, so a divergence fails loudly instead of drifting.
"""

import contextlib
import logging
import os
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

_logger = logging.getLogger(__name__)

T = TypeVar("T")


# ---- where this process stands ---------------------------------------------------------------


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """Index of this process on its node (`LOCAL_RANK`, set by `torchrun`); 0 otherwise."""
    return int(os.environ.get("LOCAL_RANK", 0)) if is_initialized() else 0


def is_main() -> bool:
    """True on rank 0, the one process that logs and writes files."""
    return rank() == 0


def _env_world_size() -> int:
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError as error:
        raise RuntimeError(f"WORLD_SIZE={value!r} in the environment is not an integer") from error


@contextlib.contextmanager
def launched() -> Iterator[None]:
    """Join the process group `torchrun` set up in the environment, and leave it at the end.

    With `WORLD_SIZE` unset or 1 this does nothing. On a machine with CUDA the group pairs
    NCCL (for CUDA tensors) with gloo (for CPU tensors and objects), and each process takes
    `cuda:LOCAL_RANK` as its current device; without CUDA it is gloo alone.
    """
    if _env_world_size() <= 1 or is_initialized():
        yield
        return
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {name} is not set: start the "
                f"processes with torchrun (e.g. torchrun --nproc_per_node=2 -m ifnas ...)"
            )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend)
    _logger.info("process %d of %d joined the group (%s)", rank(), world_size(), backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def device_for(name: str) -> torch.device:
    """The device this process runs on for the config value `device` (`auto`, `cpu`, `cuda`).

    Under `torchrun` with CUDA each process takes `cuda:LOCAL_RANK`; naming one GPU
    (`cuda:1`) is then an error, since every process would take that one.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name} was asked for, but torch sees no CUDA device")
    if device.type == "cuda" and world_size() > 1:
        if device.index is not None:
            raise ValueError(
                f"device: {name} names one GPU, but under torchrun every process takes the "
                f"GPU of its LOCAL_RANK; set device to cuda or auto"
            )
        device = torch.device("cuda", local_rank())
    return device


# ---- objects -----------------------------------------------------------------------------


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast_object(obj: T) -> T:
    """Rank 0's `obj` on every process (pickled; for small things and one-off checkpoints)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list:
    """`obj` of every process, in rank order."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def on_main(fn: Callable[[], T]) -> T:
    """Call `fn` on rank 0 alone and hand its result, or the exception it raised, to every
    process: files only rank 0 can see (the run directory) are read once, and an error there
    stops every process instead of leaving the others waiting."""
    if world_size() == 1:
        return fn()
    outcome: tuple[str, Any] | None = None
    if is_main():
        try:
            outcome = ("ok", fn())
        except Exception as error:  # handed to every process, raised there
            try:
                pickle.dumps(error)
            except Exception:
                error = RuntimeError(f"{type(error).__name__}: {error}")
            outcome = ("error", error)
    kind, value = broadcast_object(outcome)
    if kind == "error":
        raise value
    return value


# ---- tensors -----------------------------------------------------------------------------


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Element-wise sum of `values` over all processes (float64, so counts stay exact)."""
    if world_size() == 1:
        return list(values)
    # A CPU tensor: the group routes it through gloo, also when CUDA tensors take NCCL.
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def mean_over_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """The mean over processes of each value (per-process metrics of equal-sized batches)."""
    keys = list(values)
    sums = sum_over_ranks([float(values[k]) for k in keys])
    return {k: s / world_size() for k, s in zip(keys, sums, strict=True)}


@torch.no_grad()
def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into `module` on every process."""
    if world_size() == 1:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BN running statistics, masks) into `module` on every process."""
    if world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


@torch.no_grad()
def average_gradients(module: nn.Module) -> None:
    """Average the gradients of `module`'s parameters over all processes, in place.

    One flat all-reduce carries every parameter's gradient (zeros where it has none) and a
    flag per parameter saying whether it has one. A parameter no process used keeps `None`, so
    the optimizer skips it exactly as in a single process (no weight decay, no momentum step);
    a parameter used on some processes but not on others raises `RuntimeError` on every
    process: they ran different networks in the same iteration.

    The collective has the same size whatever was used, so a divergence cannot hang it.
    """
    if world_size() == 1:
        return
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        return
    dtype = named[0][1].dtype
    if any(p.dtype != dtype for _, p in named):
        raise TypeError(
            "average_gradients expects parameters of one dtype, got "
            f"{sorted({str(p.dtype) for _, p in named})}"
        )
    sizes = [p.numel() for _, p in named]
    total = sum(sizes)
    device = named[0][1].device
    flat = torch.zeros(total + len(named), dtype=dtype, device=device)
    offset = 0
    for (_, p), n in zip(named, sizes, strict=True):
        if p.grad is not None:
            flat[offset : offset + n].view(p.shape).copy_(p.grad)  # any strides (channels-last)
        offset += n
    used = [float(p.grad is not None) for _, p in named]
    flat[total:].copy_(torch.tensor(used, dtype=dtype))

    dist.all_reduce(flat)

    users = flat[total:].round().long().tolist()
    world = world_size()
    partial = [name for (name, _), u in zip(named, users, strict=True) if 0 < u < world]
    if partial:
        raise RuntimeError(
            f"the processes ran different networks: {len(partial)} parameters got gradients "
            f"on some processes only (e.g. {partial[:5]}); the architecture must be the same "
            f"on every process at every step"
        )
    flat[:total].div_(world)
    offset = 0
    for (_, p), n in zip(named, sizes, strict=True):
        if p.grad is not None:
            p.grad.copy_(flat[offset : offset + n].view(p.shape))
        offset += n


@torch.no_grad()
def check_identical(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise `RuntimeError` on every process unless each tensor equals rank 0's bit for bit.

    The message names the tensors that differ and the processes they differ on.
    """
    if world_size() == 1 or not tensors:
        return
    names = list(tensors)
    local = [tensors[k].detach() for k in names]
    device = local[0].device
    flat = torch.cat([t.reshape(-1).to(torch.float64) for t in local])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    offset = 0
    differs = torch.zeros(len(names), dtype=torch.float64, device=device)
    for k, t in enumerate(local):
        n = t.numel()
        same = torch.equal(flat[offset : offset + n], reference[offset : offset + n])
        differs[k] = float(not same)
        offset += n
    gathered = [torch.zeros_like(differs) for _ in range(world_size())]
    dist.all_gather(gathered, differs)
    table = torch.stack(gathered).bool()  # (ranks, tensors)
    if not table.any():
        return
    ranks = table.any(dim=1).nonzero().flatten().tolist()
    bad = [names[k] for k in table.any(dim=0).nonzero().flatten().tolist()]
    shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    raise RuntimeError(
        f"{what} differs between processes: rank(s) {ranks} disagree with rank 0 on "
        f"{len(bad)} tensor(s): {shown}"
    )


def check_identical_object(obj: Any, what: str) -> None:
    """Raise `RuntimeError` on every process unless `obj` equals rank 0's (compared by `==`)."""
    if world_size() == 1:
        return
    everyone = all_gather_object(obj)
    ranks = [r for r, other in enumerate(everyone) if other != everyone[0]]
    if ranks:
        raise RuntimeError(
            f"{what} differs between processes: rank(s) {ranks} disagree with rank 0"
        )
