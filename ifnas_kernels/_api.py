"""Public face of the fused aggregation op: `weighted_sum` and the `WeightedSum` module.

The mixing of a supernet node (DESIGN.md section 4): `x_j = sum_k g_k * o_k(x_i)` with gate
values `g_k` (products of sigmoids), computed by one kernel that reads each input once, with a
backward that reads the gradient and each input once. Drop-in for DARTS-style
`sum(w * op(x) for ...)`.
"""

import logging
from collections.abc import Sequence

import torch
from torch import nn
from torch.autograd import forward_ad

from ifnas_kernels._op import weighted_sum_op
from ifnas_kernels._ref import weighted_sum_ref

_logger = logging.getLogger(__name__)

_SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_DTYPE_NAMES = "float32, float16, bfloat16 or float64"


def weighted_sum(tensors: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Return `sum_k weights[k] * tensors[k]` in one pass over memory, forward and backward.

    Accumulates in float32 (float64 for float64 inputs). Differentiable in every input and in
    `weights`; the weight gradient has the weights' dtype. Deterministic: repeated calls give
    bitwise-equal results, backward included.

    Args:
        tensors: K >= 1 tensors of one shape `(*S)`, dtype (float32, float16, bfloat16, float64)
            and device, any strides. Nothing is broadcast.
        weights: `(K,)` floating tensor on the same device (any floating dtype).

    Returns:
        `(*S)` tensor in the inputs' dtype and the memory format of `tensors[0]`.

    Raises:
        TypeError: `tensors` is not a sequence of tensors, mixes dtypes, or has a non-floating
            dtype; `weights` is not a floating tensor.
        ValueError: `tensors` is empty, mixes shapes or devices; `weights` is not 1-D with K
            elements, or is on another device.

    Autocast: inputs of one dtype are used as they are (no cast, like `torch.add`). Inputs of
    different floating dtypes, which autocast regions produce (a bfloat16 conv output beside a
    float32 skip input), are promoted to the widest of them there instead of raising. `weights`
    is never cast, so its gradient stays in its dtype.

    Transforms: the fused op has a reverse-mode formula only. Under forward-mode AD
    (`torch.autograd.forward_ad.dual_level`, `torch.func.jvp`) and the `torch.func` transforms
    (`vmap`, `grad`, `jacrev`, ...) the sum is computed by the pure-torch reference instead, which
    every transform understands; the registered op `torch.ops.ifnas.weighted_sum` itself would
    drop forward-mode tangents.
    """
    tensors = _checked_tensors(tensors)
    _check_weights(weights, tensors)
    if _under_transform():
        return weighted_sum_ref(tensors, weights)
    return weighted_sum_op(tensors, weights)


def _under_transform() -> bool:
    """Whether a dual level (forward-mode AD) or a torch.func transform is active."""
    return forward_ad._current_level >= 0 or torch._C._functorch.maybe_current_level() is not None


class WeightedSum(nn.Module):
    """`weighted_sum` as a module: `WeightedSum()(tensors, weights)`."""

    def forward(self, tensors: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        return weighted_sum(tensors, weights)


def _checked_tensors(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor) or not isinstance(tensors, Sequence):
        raise TypeError(
            f"tensors must be a sequence (list or tuple) of tensors, got {type(tensors).__name__}"
        )
    if len(tensors) == 0:
        raise ValueError("tensors must hold at least one tensor, got an empty sequence")

    first = tensors[0]
    if not isinstance(first, torch.Tensor):
        raise TypeError(f"tensors[0] must be a torch.Tensor, got {type(first).__name__}")
    if first.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"tensors must be {_DTYPE_NAMES}; tensors[0] is {first.dtype}")

    mixed_dtypes = False
    for k in range(1, len(tensors)):
        t = tensors[k]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors[{k}] must be a torch.Tensor, got {type(t).__name__}")
        if t.device != first.device:
            raise ValueError(f"tensors[{k}] is on {t.device} but tensors[0] is on {first.device}")
        if t.shape != first.shape:
            raise ValueError(
                f"tensors[{k}] has shape {tuple(t.shape)} but tensors[0] has shape "
                f"{tuple(first.shape)}; weighted_sum does not broadcast"
            )
        if t.dtype != first.dtype:
            if t.dtype not in _SUPPORTED_DTYPES:
                raise TypeError(f"tensors must be {_DTYPE_NAMES}; tensors[{k}] is {t.dtype}")
            mixed_dtypes = True

    tensors = list(tensors)
    if mixed_dtypes:
        tensors = _promoted_under_autocast(tensors)
    return tensors


def _promoted_under_autocast(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    device_type = tensors[0].device.type
    if not torch.is_autocast_enabled(device_type):
        k, t = next((k, t) for k, t in enumerate(tensors) if t.dtype != tensors[0].dtype)
        raise TypeError(
            f"tensors[{k}] is {t.dtype} but tensors[0] is {tensors[0].dtype}; weighted_sum "
            "takes one dtype (mixed dtypes are promoted only inside an autocast region)"
        )
    widest = tensors[0].dtype
    for t in tensors[1:]:
        widest = torch.promote_types(widest, t.dtype)
    return [t.to(widest) for t in tensors]


def _check_weights(weights: torch.Tensor, tensors: list[torch.Tensor]) -> None:
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights must be a torch.Tensor, got {type(weights).__name__}")
    if weights.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"weights must be {_DTYPE_NAMES}, got {weights.dtype}")
    if weights.dim() != 1 or weights.shape[0] != len(tensors):
        raise ValueError(
            f"weights must be a 1-D tensor of {len(tensors)} elements (one per tensor), "
            f"got shape {tuple(weights.shape)}"
        )
    if weights.device != tensors[0].device:
        raise ValueError(f"weights is on {weights.device} but tensors are on {tensors[0].device}")
