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
cache, measured in the same run (2 x its bytes).
Peak memory is what the step allocates beyond the inputs: on GPU from
`torch.cuda.max_memory_allocated`, on CPU from the torch profiler's memory events.

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
    ms: float
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


def time_ms(fn: Callable, device: str, warmup: int = 3, reps: int = 15) -> float:
    """Median time of `fn` in milliseconds (CUDA: triton's do_bench with events)."""
    if device == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25 * warmup, rep=100 * reps))
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def peak_memory_mb(fn: Callable, device: str) -> float:
    """Memory `fn` allocates at its peak beyond what was allocated before, in MB."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 1e6

    # CPU: the profiler records every allocation and free with its size; the running sum in
    # time order peaks at the step's peak.
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        fn()
    events = sorted(
        (e for e in prof.events() if e.name == "[memory]"), key=lambda e: e.time_range.start
    )
    current = peak = 0
    for event in events:
        current += event.cpu_memory_usage
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


def copy_gbps(device: str, reps: int = 5, numel: int | None = None) -> float:
    """Bandwidth of a device copy (read + write) of a buffer larger than the last-level cache."""
    if numel is not None:
        pass
    elif device == "cuda":
        numel = 256 * 1024**2  # 1 GiB of float32, far above any GPU's L2
    else:
        numel = max(2 * last_level_cache_bytes(), 256 * 1024**2) // 4
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, warmup=2, reps=reps)
    return 2 * src.numel() * src.element_size() / ms / 1e6


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
    """Time every provider in both modes on one set of tensors; copy measured before and after.

    `copy_numel` overrides the copy buffer's size (float32 elements), for smoke tests only.
    """
    tensors, weights, grad = make_inputs(case)
    before = copy_gbps(case.device, numel=copy_numel)
    report = Report(case, machine(), datetime.datetime.now().isoformat(timespec="seconds"), 0.0)

    timed = []
    for name, provider in providers(case.device, compile_backend).items():
        if only and name not in only:
            continue
        for mode in MODES:
            fn = step(provider, mode, tensors, weights, grad)
            ms = time_ms(fn, case.device, reps=reps)
            peak = peak_memory_mb(fn, case.device) if measure_memory else float("nan")
            timed.append((name, mode, ms, peak))
            _logger.info("%-12s %-8s %9.3f ms", name, mode, ms)

    report.copy_gbps = max(before, copy_gbps(case.device, numel=copy_numel))
    naive_ms = {mode: ms for name, mode, ms, _ in timed if name == "naive"}
    for name, mode, ms, peak in timed:
        gbps = case.bytes_moved(mode) / ms / 1e6
        result = Result(name, mode, ms, gbps, gbps / report.copy_gbps, peak_mb=peak)
        if mode in naive_ms:
            result.speedup_vs_naive = naive_ms[mode] / ms
        report.results.append(result)
    return report


def markdown(report: Report) -> str:
    case = report.case
    m = report.machine
    lines = [
        f"Weighted sum, K = {case.num_inputs}, {case.numel:,} {case.dtype} elements on "
        f"{case.device} ({m.get('gpu') or m['cpu']}; {m['threads']} threads; torch {m['torch']}"
        f"{'; C++ ' + m['cpp_isa'] if 'cpp_isa' in m else ''}), {report.date}. "
        f"Copy bandwidth in the same run: {report.copy_gbps:.1f} GB/s.",
        "",
        "| provider | mode | time (ms) | GB/s | of copy | vs naive | peak MB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report.results:
        lines.append(
            f"| {r.provider} | {r.mode} | {r.ms:.2f} | {r.gbps:.1f} | {100 * r.copy_fraction:.0f}% "
            f"| {r.speedup_vs_naive:.2f}x | {r.peak_mb:.0f} |"
        )
    return "\n".join(lines) + "\n"


def save(report: Report, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    case = report.case
    stem = f"weighted_sum_{case.device}_k{case.num_inputs}_n{case.numel}_{case.dtype}"
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    case = Case(args.num_inputs, args.numel, args.dtype, args.device)
    report = run(case, reps=args.reps)
    json_path, md_path = save(report, args.out)
    print(markdown(report))
    print(f"written: {json_path} and {md_path}")


if __name__ == "__main__":
    main()
