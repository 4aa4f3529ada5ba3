"""How a node sums its weighted inputs: the fused op, or DARTS' naive expression."""

from collections.abc import Sequence

import torch

import ifnas_kernels

MIXINGS = ("fused", "naive")


def fused_mix(tensors: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """`sum_k weights[k] * tensors[k]` in one pass through `ifnas_kernels.weighted_sum`."""
    return ifnas_kernels.weighted_sum(tensors, weights)


def naive_mix(tensors: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """DARTS' `sum(w * op(x))`: one product and one sum per input, each a tensor of its own."""
    out = weights[0] * tensors[0]
    for k in range(1, len(tensors)):
        out = out + weights[k] * tensors[k]
    return out


def unit_mix(tensors: Sequence[torch.Tensor], weights: None = None) -> torch.Tensor:
    """The derived network's plain sum (weight 1 for every input).

    Backward of a plain sum hands the incoming gradient to every input without a copy, which
    beats any weighted kernel when no weight needs a gradient.
    """
    out = tensors[0]
    for t in tensors[1:]:
        out = out + t
    return out


def get_mixing(name: str):
    if name == "fused":
        return fused_mix
    if name == "naive":
        return naive_mix
    raise ValueError(f"mixing must be one of {list(MIXINGS)}, got {name!r}")
