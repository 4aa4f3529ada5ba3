"""Speed and memory of `ifnas_kernels.weighted_sum` against the ways people write it today.

Providers, all timed in one run on the same tensors:

- `naive`: DARTS mixing, `sum(w[k] * x[k] for k)`, with autograd.
- `stack`: `(torch.stack(xs) * w[:, None, ...]).sum(0)`.
- `compile`: `torch.compile` of the naive expression.
- `ours-<backend>`: the op, for every usable backend of this device (cpp; cuda and triton).

Modes: `fwd` (forward, no autograd), `bwd` (the gradients of every input and of the weights for a
dense incoming gradient, through a graph kept from one forward) and `fwd+bwd` (both, the training
step). Bytes moved count each tensor read once and each tensor written once: fwd (K + 1) N
elements, bwd (2K + 1) N (reads the gradient and the K inputs, writes K input gradients), fwd+bwd
their sum, (3K + 2) N. GB/s is compared with a device copy of a buffer larger than the last-level
cache (2 x its bytes), timed in the same rounds as the providers.
Peak memory is what the step allocates beyond the inputs: on GPU from
`torch.cuda.max_memory_allocated`, on CPU from the torch profiler's memory events.

CPU outputs come from glibc's malloc, which by default often returns freed buffers of this size
to the system, so that every step faults them in and zeroes them again (a third of the step here,
for every provider alike). The report records the allocator settings; PyTorch's CPU performance
guide recommends jemalloc or tcmalloc, and glibc can keep its memory with
`GLIBC_TUNABLES=glibc.malloc.trim_threshold=17179869184:glibc.malloc.mmap_threshold=33554432`.

Run as a script (writes JSON and a markdown table):

    python benchmarks/kernels/bench_weighted_sum.py --device cpu --out benchmarks/kernels/results

or through pytest-benchmark: `pytest benchmarks/kernels --benchmark-only`.
"""

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import ifnas_kernels

_logger = logging.getLogger(__name__)

MODES = ("fwd", "bwd", "fwd+bwd")


@dataclass(frozen=True)
class Case:
    """One problem: K inputs of `numel` elements."""

    num_inputs: int = 16
    numel: int = 2_400_000
    dtype: str = "float32"
    device: str = "cpu"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def bytes_moved(self, mode: str) -> int:
        element = torch.empty((), dtype=self.torch_dtype).element_size()
        k, n = self.num_inputs, self.numel
        elements = {"fwd": k + 1, "bwd": 2 * k + 1, "fwd+bwd": 3 * k + 2}[mode]
        return elements * n * element


@dataclass
class Result:
    provider: str
    mode: str
    ms: float  # median over the rounds
    best_ms: float  # fastest round: what the machine gives when nothing else runs on it
    gbps: float
    copy_fraction: float
    speedup_vs_naive: float = float("nan")
    peak_mb: float = float("nan")


@dataclass
class Report:
    case: Case
    machine: dict
    date: str
    copy_gbps: float
    results: list[Result] = field(default_factory=list)


# ------------------------------------------------------------------------------------------
# Providers: each maps (tensors, weights) -> the weighted sum, differentiable.


def naive(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    return sum(weights[k] * x for k, x in enumerate(tensors))


def stacked(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * tensors[0].dim()
    return (torch.stack(tensors) * weights.view(shape)).sum(0)


def ours(backend: str) -> Callable:
    def provider(tensors: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        with ifnas_kernels.use_backend(backend):
            return ifnas_kernels.weighted_sum(tensors, weights)

    return provider


def providers(device: str, compile_backend: str = "inductor") -> dict[str, Callable]:
    """The providers to compare on `device`: baselines, then every usable backend of ours."""
    chosen = {
        "naive": naive,
        "stack": stacked,
        "compile": torch.compile(naive, backend=compile_backend),
    }
    ours_on_device = ("cpp",) if device == "cpu" else ("cuda", "triton")
    report = ifnas_kernels.backends()
    for name in ours_on_device:
        if report[name].usable:
            chosen[f"ours-{name}"] = ours(name)
        else:
            _logger.warning("ours-%s is left out: %s", name, report[name].reason)
    return chosen


# ------------------------------------------------------------------------------------------
# Measuring.


def make_inputs(case: Case, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(case.numel, generator=gen).to(case.torch_dtype).to(case.device)
        for _ in range(case.num_inputs)
    ]
    weights = torch.rand(case.num_inputs, generator=gen).to(case.device)
    grad = torch.randn(case.numel, generator=gen).to(case.torch_dtype).to(case.device)
    return tensors, weights, grad


def step(provider: Callable, mode: str, tensors, weights, grad) -> Callable[[], object]:
    """A closure running one forward (no autograd), one backward, or both."""
    if mode == "fwd":

        def forward():
            with torch.no_grad():
                return provider(tensors, weights)

        return forward

    leaves = [t.detach().requires_grad_() for t in tensors]
    w = weights.detach().requires_grad_()
    if mode == "bwd":
        kept = provider(leaves, w)

        def backward():
            return torch.autograd.grad(kept, [*leaves, w], grad, retain_graph=True)

        return backward

    def forward_backward():
        out = provider(leaves, w)
        return torch.autograd.grad(out, [*leaves, w], grad)

    return forward_backward


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(steps: dict, device: str, warmup: int = 3, reps: int = 15) -> dict:
    """(median, fastest) time in milliseconds of each step (a dict of closures), keyed like
    `steps`.

    CPU: the steps take turns, one call each per round, so that a change in the machine's load
    during the run (other processes share its cores and memory) hits all of them alike.
    CUDA: each step on its own with triton's do_bench (CUDA events, median).
    """
    if device == "cuda":
        import triton.testing

        results = {}
        for key, fn in steps.items():
            median, best = triton.testing.do_bench(
                fn, warmup=25 * warmup, rep=100 * reps, quantiles=[0.5, 0.0]
            )
            results[key] = (float(median), float(best))
        return results
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times = {key: [] for key in steps}
    for _ in range(reps):
        for key, fn in steps.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: (1e3 * statistics.median(v), 1e3 * min(v)) for key, v in times.items()}


def peak_memory_mb(fn: Callable, device: str) -> float:
    """Memory `fn` allocates at its peak beyond what was allocated before, in MB."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 1e6

    # CPU: the profiler records every allocation and free with its size (its event tree's
    # Allocation nodes); their running sum, in time order, peaks at the step's peak.
    from torch._C._profiler import _EventType

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:  # fmt: skip
        fn()
    sizes = []
    pending = list(prof.profiler.kineto_results.experimental_event_tree())
    while pending:
        node = pending.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            sizes.append((node.start_time_ns, node.extra_fields.alloc_size))
        pending.extend(node.children)
    current = peak = 0
    for _, size in sorted(sizes):
        current += size
        peak = max(peak, current)
    return peak / 1e6


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (Linux sysfs), or 64 MiB when it cannot be read."""
    sizes = []
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in base.glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=64 * 1024**2)


def copy_step(device: str, numel: int | None = None) -> tuple[Callable, int]:
    """A device copy of a buffer larger than the last-level cache, and the bytes it moves."""
    if numel is not None:
        pass
    elif device == "cuda":
        numel = 256 * 1024**2  # 1 GiB of float32, far above any GPU's L2
    else:
        numel = max(2 * last_level_cache_bytes(), 256 * 1024**2) // 4
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    return (lambda: dst.copy_(src)), 2 * src.numel() * src.element_size()


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "cpu": _cpu_name(),
        # Other processes on the machine share its cores and memory bandwidth.
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        # CPU outputs come from malloc; whether freed ones go back to the system (and are
        # faulted in and zeroed again) depends on these.
        "allocator": os.environ.get("GLIBC_TUNABLES") or os.environ.get("LD_PRELOAD") or "default",
    }
    if ifnas_kernels.backends()["cpp"].built:
        from ifnas_kernels import _C

        info["cpp_isa"] = _C.isa()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run(
    case: Case,
    reps: int = 15,
    compile_backend: str = "inductor",
    only: tuple[str, ...] | None = None,
    measure_memory: bool = True,
    copy_numel: int | None = None,
) -> Report:
    """Time every provider in every mode, and a device copy, in one run on one set of tensors.

    `copy_numel` overrides the copy buffer's size (float32 elements), for smoke tests only.
    """
    tensors, weights, grad = make_inputs(case)
    report = Report(case, machine(), datetime.datetime.now().isoformat(timespec="seconds"), 0.0)

    steps = {}
    for name, provider in providers(case.device, compile_backend).items():
        if only and name not in only:
            continue
        for mode in MODES:
            steps[(name, mode)] = step(provider, mode, tensors, weights, grad)
    copy, copy_bytes = copy_step(case.device, copy_numel)
    steps[("copy", "copy")] = copy

    times = time_ms(steps, case.device, reps=reps)
    report.copy_gbps = copy_bytes / times.pop(("copy", "copy"))[0] / 1e6
    del steps[("copy", "copy")], copy

    naive_ms = {mode: ms for (name, mode), (ms, _) in times.items() if name == "naive"}
    for (name, mode), (ms, best_ms) in times.items():
        gbps = case.bytes_moved(mode) / ms / 1e6
        result = Result(name, mode, ms, best_ms, gbps, gbps / report.copy_gbps)
        if mode in naive_ms:
            result.speedup_vs_naive = naive_ms[mode] / ms
        if measure_memory:
            result.peak_mb = peak_memory_mb(steps[(name, mode)], case.device)
        report.results.append(result)
        _logger.info("%-12s %-8s %9.3f ms", name, mode, ms)
    return report


def markdown(report: Report) -> str:
    case = report.case
    m = report.machine
    lines = [
        f"Weighted sum, K = {case.num_inputs}, {case.numel:,} {case.dtype} elements on "
        f"{case.device} ({m.get('gpu') or m['cpu']}; {m['threads']} threads; torch {m['torch']}"
        f"{'; C++ ' + m['cpp_isa'] if 'cpp_isa' in m else ''}), {report.date}. "
        f"Copy bandwidth in the same run: {report.copy_gbps:.1f} GB/s. Allocator: "
        f"{m.get('allocator', 'default')}.",
        "",
        "Times are medians over the rounds (providers and the copy take turns); `best` is the",
        "fastest round.",
        "",
        "| provider | mode | time (ms) | best (ms) | GB/s | of copy | vs naive | peak MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report.results:
        lines.append(
            f"| {r.provider} | {r.mode} | {r.ms:.2f} | {r.best_ms:.2f} | {r.gbps:.1f} "
            f"| {100 * r.copy_fraction:.0f}% | {r.speedup_vs_naive:.2f}x | {r.peak_mb:.0f} |"
        )
    return "\n".join(lines) + "\n"


def save(report: Report, out: Path, tag: str = "") -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    case = report.case
    stem = f"weighted_sum_{case.device}_k{case.num_inputs}_n{case.numel}_{case.dtype}{tag}"
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--num-inputs", type=int, default=16)
    parser.add_argument("--numel", type=int, default=2_400_000)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--tag", default="", help="suffix of the output files' names")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    case = Case(args.num_inputs, args.numel, args.dtype, args.device)
    report = run(case, reps=args.reps)
    json_path, md_path = save(report, args.out, args.tag)
    print(markdown(report))
    print(f"written: {json_path} and {md_path}")


if __name__ == "__main__":
    main()
