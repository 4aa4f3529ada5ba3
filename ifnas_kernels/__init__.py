"""Fused weighted aggregation for supernets: `weighted_sum(tensors, weights)`.

`weighted_sum(tensors, weights) = sum_k weights[k] * tensors[k]`, forward and backward each in
one pass over memory, registered as the torch op `ifnas::weighted_sum` (so `torch.compile` traces
it). Backends: C++ on CPU, CUDA and Triton on GPUs, and a pure-torch reference; `backends()` says
which are built and usable, `IFNAS_BACKEND` or `set_backend` picks one (see `_backends.py`).
"""

from ifnas_kernels._api import WeightedSum, weighted_sum
from ifnas_kernels._backends import (
    BackendInfo,
    backends,
    get_backend,
    set_backend,
    use_backend,
)
from ifnas_kernels._ref import weighted_sum_backward_ref, weighted_sum_ref

__all__ = [
    "BackendInfo",
    "WeightedSum",
    "backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "weighted_sum",
    "weighted_sum_backward_ref",
    "weighted_sum_ref",
]
