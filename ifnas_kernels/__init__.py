"""Fused weighted aggregation for supernets: `weighted_sum(tensors, weights)`.

Until the compiled kernels are built this package exposes the pure-torch reference.
"""

from ifnas_kernels._ref import weighted_sum_ref

weighted_sum = weighted_sum_ref

__all__ = ["weighted_sum", "weighted_sum_ref"]
