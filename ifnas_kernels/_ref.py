"""Pure-torch reference of the fused aggregation op.

`weighted_sum_ref(tensors, weights) = sum_k weights[k] * tensors[k]`, accumulated in float32
(float64 for float64 inputs) and returned in the inputs' dtype. Every compiled backend is tested
against this function.
"""

from collections.abc import Sequence

import torch


def weighted_sum_ref(tensors: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Return `sum_k weights[k] * tensors[k]` computed with plain torch ops.

    Args:
        tensors: K >= 1 tensors of one shape, dtype and device.
        weights: 1-D tensor of K weights on the same device.
    """
    acc_dtype = torch.float64 if tensors[0].dtype == torch.float64 else torch.float32
    out = None
    for k, x in enumerate(tensors):
        term = weights[k].to(acc_dtype) * x.to(acc_dtype)
        out = term if out is None else out + term
    return out.to(tensors[0].dtype)
