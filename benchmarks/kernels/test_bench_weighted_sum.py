"""pytest-benchmark view of bench_weighted_sum.py: one benchmark per provider and mode.

    pytest benchmarks/kernels --benchmark-only [--benchmark-json=out.json]

The problem size comes from IFNAS_BENCH_NUM_INPUTS / IFNAS_BENCH_NUMEL / IFNAS_BENCH_DTYPE
(default K = 16, 2.4M float32) on the GPU when one is visible, else the CPU. Each benchmark's
extra_info holds the bytes it moves, so GB/s can be read off the stored results; the script
adds the copy bandwidth and peak memory.
"""

import os

import pytest
import torch
from bench_weighted_sum import MODES, Case, make_inputs, providers, step

CASE = Case(
    num_inputs=int(os.environ.get("IFNAS_BENCH_NUM_INPUTS", 16)),
    numel=int(os.environ.get("IFNAS_BENCH_NUMEL", 2_400_000)),
    dtype=os.environ.get("IFNAS_BENCH_DTYPE", "float32"),
    device="cuda" if torch.cuda.is_available() else "cpu",
)
PROVIDERS = providers(CASE.device)


@pytest.fixture(scope="module")
def inputs():
    return make_inputs(CASE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_weighted_sum(benchmark, inputs, provider, mode):
    fn = step(PROVIDERS[provider], mode, *inputs)

    def synchronized():
        result = fn()
        if CASE.device == "cuda":
            torch.cuda.synchronize()
        return result

    benchmark.group = f"weighted_sum {mode} K={CASE.num_inputs} n={CASE.numel} {CASE.dtype}"
    benchmark.extra_info["bytes"] = CASE.bytes_moved(mode)
    benchmark.pedantic(synchronized, warmup_rounds=3, rounds=15)
