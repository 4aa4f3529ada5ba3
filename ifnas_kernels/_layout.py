"""Operand layouts of the fused aggregation op, as the compiled kernels define them.

Every kernel reads its operands as flat arrays in one memory order, the order of the tensor it
writes: for the forward `torch.empty_like(tensors[0])` (the first input's memory format), for
the backward `torch.empty_like(grad)`. An operand already stored in that order is used in place;
any other (sliced, expanded, another memory format) is copied into it first. These helpers mirror
`csrc/common.h` for the Python backends (Triton, reference), so that every backend returns the
strides the fake kernels promise.
"""

import logging

import torch

_logger = logging.getLogger(__name__)


def has_layout_of(x: torch.Tensor, ref: torch.Tensor) -> bool:
    """Whether `x` stores its elements in the order of the dense tensor `ref`."""
    if x.shape != ref.shape:
        return False
    return all(
        size == 1 or a == b for size, a, b in zip(x.shape, x.stride(), ref.stride(), strict=True)
    )


def in_layout_of(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """`x` itself when stored in the order of `ref`, else a copy in that order."""
    return x if has_layout_of(x, ref) else torch.empty_like(ref).copy_(x)


def is_dense(x: torch.Tensor) -> bool:
    """Whether `x` covers a block of memory without gaps or overlaps (any dimension order)."""
    expected = 1
    for size, stride in sorted(zip(x.shape, x.stride(), strict=True), key=lambda d: d[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def dense(x: torch.Tensor) -> torch.Tensor:
    """`x` itself when it has no gaps or overlaps, else a copy in the layout of empty_like(x)."""
    return x if is_dense(x) else torch.empty_like(x).copy_(x)


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 for float64, float32 for everything else."""
    return torch.float64 if dtype == torch.float64 else torch.float32
