"""Pure-torch reference of the fused aggregation op.

`weighted_sum_ref(tensors, weights) = sum_k weights[k] * tensors[k]`, accumulated in float32
(float64 for float64 inputs) and returned in the inputs' dtype. Every compiled backend is tested
against this function. `weighted_sum_backward_ref` is its backward, written out the same way, and
`forward`/`backward` are the reference backend of the registered op (the same math, with the
output layouts that the op promises).

Bytes moved (K inputs of N elements): the forward reads each input once and writes K
intermediate sums; the backward reads the gradient K times. The compiled kernels read and write
each tensor once.
"""

import logging
from collections.abc import Sequence

import torch

from ifnas_kernels._layout import acc_dtype

_logger = logging.getLogger(__name__)


def weighted_sum_ref(tensors: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Return `sum_k weights[k] * tensors[k]` computed with plain torch ops.

    Args:
        tensors: K >= 1 tensors of one shape, dtype and device.
        weights: 1-D tensor of K weights on the same device.
    """
    acc = acc_dtype(tensors[0].dtype)
    out = None
    for k, x in enumerate(tensors):
        term = weights[k].to(acc) * x.to(acc)
        out = term if out is None else out + term
    return out.to(tensors[0].dtype)


def weighted_sum_backward_ref(
    grad: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    weights: torch.Tensor,
    input_grads: bool,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradients of `weighted_sum_ref` for the incoming gradient `grad`.

    Returns `[weights[k] * grad for k]` (or `[]` when `input_grads` is false) and
    `[sum(grad * tensors[k]) for k]` in the weights' dtype (or an empty tensor when `tensors` is
    empty, meaning the weight gradient is not wanted).
    """
    acc = acc_dtype(grad.dtype)
    g = grad.to(acc)
    grads = [(weights[k].to(acc) * g).to(grad.dtype) for k in range(weights.shape[0])]
    if tensors:
        weights_grad = torch.stack([(g * x.to(acc)).sum() for x in tensors]).to(weights.dtype)
    else:
        weights_grad = weights.new_empty(0)
    return (grads if input_grads else []), weights_grad


def forward(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Reference backend of the op: the result in the layout of empty_like(tensors[0])."""
    return torch.empty_like(tensors[0]).copy_(weighted_sum_ref(tensors, weights))


def backward(
    grad: torch.Tensor, tensors: list[torch.Tensor], weights: torch.Tensor, input_grads: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Reference backend of the op's backward: input gradients in the layout of empty_like(grad)."""
    grads, weights_grad = weighted_sum_backward_ref(grad, tensors, weights, input_grads)
    return [torch.empty_like(grad).copy_(g) for g in grads], weights_grad
