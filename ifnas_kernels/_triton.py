"""Triton kernels of the fused aggregation op (GPU; CPU tensors under `TRITON_INTERPRET=1`).

One launch handles all K inputs: their addresses go into an int64 tensor on the tensors' device,
and the kernel loads the address of input k and casts it to a pointer of the element type. So
one compiled kernel per dtype serves any K, without specializing on K or a cap on it; the price
is a host-to-device copy of 8 bytes per input per call.

Forward (one program per tile of BLOCK elements):
    out[tile] = sum_k weights[k] * inputs[k][tile], accumulated in float32 (float64 for float64).
Backward, in one launch plus a reduction:
    input_grads[k][tile] = weights[k] * grad[tile]        (grad tile read once, kept in registers)
    partials[k, tile] = sum(grad[tile] * inputs[k][tile])
    weights_grad[k] = sum over tiles of partials[k, :]    (fixed order: deterministic, no atomics)

Operands are laid out as in `_layout.py` (and the C++ kernels): flat arrays in the order of the
tensor being written.

TODO(alignment): the kernels cannot see that the loaded input addresses are 16-byte aligned, so
loads are not vectorized; passing that fact as a constexpr would help the bandwidth on GPUs.
"""

import contextlib
import logging
import os

import torch
import triton
import triton.language as tl

from ifnas_kernels._layout import acc_dtype, dense, in_layout_of

_logger = logging.getLogger(__name__)

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

# Elements per program. The interpreter costs about a millisecond per program, whatever its
# size, so it gets larger tiles.
BLOCK = 4096 if INTERPRETING else 1024
REDUCE_BLOCK = 1024
NUM_WARPS = 4


@triton.jit
def _forward_kernel(Addresses, Weights, Out, numel, num_inputs, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offsets = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    acc = tl.zeros([BLOCK], dtype=Weights.dtype.element_ty)
    for k in range(num_inputs):
        # Address of input k, as a pointer to the element type.
        x_ptr = tl.load(Addresses + k).to(tl.pointer_type(Out.dtype.element_ty))
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
        acc += tl.load(Weights + k) * x.to(acc.dtype)
    tl.store(Out + offsets, acc.to(Out.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(
    Grad,
    InputAddresses,
    GradAddresses,
    Weights,
    Partials,
    numel,
    num_inputs,
    BLOCK: tl.constexpr,
    INPUT_GRADS: tl.constexpr,
    WEIGHT_GRAD: tl.constexpr,
):
    pid = tl.program_id(0)
    num_programs = tl.num_programs(0)
    offsets = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    g = tl.load(Grad + offsets, mask=mask, other=0.0).to(Weights.dtype.element_ty)
    for k in range(num_inputs):
        if INPUT_GRADS:
            w = tl.load(Weights + k)
            gx_ptr = tl.load(GradAddresses + k).to(tl.pointer_type(Grad.dtype.element_ty))
            tl.store(gx_ptr + offsets, (w * g).to(Grad.dtype.element_ty), mask=mask)
        if WEIGHT_GRAD:
            x_ptr = tl.load(InputAddresses + k).to(tl.pointer_type(Grad.dtype.element_ty))
            x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(g.dtype)
            tl.store(Partials + k * num_programs + pid, tl.sum(g * x, axis=0))


@triton.jit
def _reduce_kernel(Partials, WeightsGrad, num_blocks, BLOCK: tl.constexpr):
    # One program per input: a strided vector sum over its row of partials, then one tree.
    k = tl.program_id(0).to(tl.int64)
    acc = tl.zeros([BLOCK], dtype=Partials.dtype.element_ty)
    for start in range(0, num_blocks, BLOCK):
        index = start + tl.arange(0, BLOCK)
        acc += tl.load(Partials + k * num_blocks + index, mask=index < num_blocks, other=0.0)
    tl.store(WeightsGrad + k, tl.sum(acc, axis=0))


def _addresses(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.tensor([t.data_ptr() for t in tensors], dtype=torch.int64, device=device)


def _device_guard(device: torch.device):
    # Triton launches on the current CUDA device; make it the tensors' device.
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def forward(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """`sum_k weights[k] * tensors[k]` in the layout of `empty_like(tensors[0])`."""
    out = torch.empty_like(tensors[0])
    numel = out.numel()
    if numel == 0:
        return out

    inputs = [in_layout_of(x, out) for x in tensors]
    w = weights.to(acc_dtype(out.dtype)).contiguous()
    with _device_guard(out.device):
        _forward_kernel[(triton.cdiv(numel, BLOCK),)](
            _addresses(inputs, out.device),
            w,
            out,
            numel,
            len(inputs),
            BLOCK=BLOCK,
            num_warps=NUM_WARPS,
        )
    return out


def backward(
    grad: torch.Tensor, tensors: list[torch.Tensor], weights: torch.Tensor, input_grads: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Input gradients (layout of `empty_like(grad)`, or `[]`) and the weight gradient (in the
    weights' dtype, or an empty tensor when `tensors` is empty)."""
    g = dense(grad)
    num_inputs = weights.shape[0]
    weight_grad = len(tensors) > 0
    w = weights.to(acc_dtype(g.dtype)).contiguous()
    grads = [torch.empty_like(g) for _ in range(num_inputs)] if input_grads else []
    if not weight_grad:
        weights_grad = weights.new_empty(0)
    elif g.numel() == 0:
        weights_grad = torch.zeros_like(weights)
    if g.numel() == 0:
        return grads, weights_grad

    inputs = [in_layout_of(x, g) for x in tensors]
    num_blocks = triton.cdiv(g.numel(), BLOCK)
    partials = torch.empty(
        (num_inputs, num_blocks) if weight_grad else (1,), dtype=w.dtype, device=g.device
    )
    # Unused pointer lists still need a valid tensor argument.
    input_addresses = _addresses(inputs, g.device) if weight_grad else partials
    grad_addresses = _addresses(grads, g.device) if input_grads else partials

    with _device_guard(g.device):
        _backward_kernel[(num_blocks,)](
            g,
            input_addresses,
            grad_addresses,
            w,
            partials,
            g.numel(),
            num_inputs,
            BLOCK=BLOCK,
            INPUT_GRADS=input_grads,
            WEIGHT_GRAD=weight_grad,
            num_warps=NUM_WARPS,
        )
        if weight_grad:
            sums = torch.empty(num_inputs, dtype=w.dtype, device=g.device)
            _reduce_kernel[(num_inputs,)](partials, sums, num_blocks, BLOCK=REDUCE_BLOCK)
            weights_grad = sums.to(weights.dtype)
    return grads, weights_grad
