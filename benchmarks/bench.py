"""`ifnas bench`: the op and the search step against naive DARTS, in one run, as a table.

Runs `kernels/bench_weighted_sum.py` on tensors shaped like real supernet layers (digits, CIFAR
and the ImageNet mobile stages) for K in {4, 8, 12, 16}, and `search_step.py` for L in
{4, 6, 8}; writes `results.json` and `table.md` to `--out` and prints the table.

    python benchmarks/bench.py [--quick] [--out DIR]      # or: ifnas bench [--quick] [--out DIR]

On CPU the search step runs at CIFAR size (3x32x32, width 16). On a GPU it runs at ImageNet
size (3x224x224, the `imagenet-mobile` widths: width 36, stem strides 2 and 2, 1000 classes) with
`--batch` images. `--quick` (under 3 minutes on 2 CPU cores) keeps the K = 16 case the kernels
are judged on (2.4M float32 elements), one CIFAR layer for each K, and smaller search batches.
"""

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import search_step  # noqa: E402  (a script beside this one)

from ifnas._io import atomic_write_text  # noqa: E402
from ifnas._malloc import keep_freed_memory  # noqa: E402

bench_op = search_step.bench_op

_logger = logging.getLogger(__name__)

# Node tensors (B, C, H, W) of real supernets: the input of each stage's mixing.
LAYER_SHAPES = {
    "digits-s0": (64, 16, 8, 8),
    "digits-s2": (64, 64, 2, 2),
    "cifar-s0": (64, 16, 32, 32),
    "cifar-s1": (64, 32, 16, 16),
    "cifar-s2": (64, 64, 8, 8),
    "imagenet-s0": (64, 36, 56, 56),
    "imagenet-s1": (64, 72, 28, 28),
    "imagenet-s2": (64, 144, 14, 14),
}
TARGET = ("target", 16, 2_400_000)  # the kernels issue's case: K = 16, 2.4M float32
SEARCH_VARIANTS = ("naive-full", "ours-full", "ours-S0", "ours-cycle")


@dataclass
class OpCase:
    layer: str
    K: int
    numel: int
    with_compile: bool  # torch.compile needs one compilation per shape: on CPU only where judged


@dataclass
class Plan:
    """Every case of one benchmark run and how often each is repeated."""

    op_cases: list[OpCase] = field(default_factory=list)
    step_cases: list[search_step.StepCase] = field(default_factory=list)
    op_reps: int = 15
    step_reps: int = 7


def plan(quick: bool, device: str, batch: int | None = None) -> Plan:
    """The cases of `ifnas bench [--quick]` on `device`."""
    chosen = Plan(op_reps=5 if quick else 15, step_reps=5 if quick else 7)
    on_gpu = device != "cpu"
    chosen.op_cases.append(OpCase(*TARGET, with_compile=True))
    shapes = ["cifar-s0"] if quick else list(LAYER_SHAPES)
    for name in shapes:
        for k in (4, 8, 12, 16):
            numel = math.prod(LAYER_SHAPES[name])
            chosen.op_cases.append(OpCase(name, k, numel, with_compile=on_gpu or not quick))

    for L in (4, 6, 8):
        if on_gpu:
            case = search_step.StepCase(
                L=L, width=36, input_size=224, stem_strides=(2, 2), num_classes=1000,
                batch=batch or (16 if quick else 64), device=device,
            )  # fmt: skip
        else:
            case = search_step.StepCase(L=L, batch=batch or (16 if quick else 64), device=device)
        chosen.step_cases.append(case)
    return chosen


def run(chosen: Plan, device: str) -> dict:
    """Run every case of `chosen`; the results as plain data (what `results.json` holds)."""
    started = time.time()
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": bench_op.machine(),
        "op": [],
        "search_step": [],
    }

    for c in chosen.op_cases:
        only = (
            None
            if c.with_compile
            else tuple(name for name in bench_op.providers(device) if name != "compile")
        )
        if c.with_compile:
            # Each shape compiles anew; past dynamo's recompile limit (8) `torch.compile`
            # silently runs the eager code, so every case starts from an empty cache.
            torch._dynamo.reset()
        case = bench_op.Case(c.K, c.numel, "float32", device)
        with _quiet_profiler():
            report = bench_op.run(case, reps=chosen.op_reps, only=only)
        results["op"].append(
            {
                "layer": c.layer,
                "K": c.K,
                "numel": c.numel,
                "copy_gbps": report.copy_gbps,
                "results": [vars(r) for r in report.results],
            }
        )
        _logger.info("op %s K=%d done (%.0f s)", c.layer, c.K, time.time() - started)

    for case in chosen.step_cases:
        with _quiet_profiler():
            report = search_step.run(case, reps=chosen.step_reps)
        results["search_step"].append(search_step.as_dict(report))
        _logger.info("search step L=%d done (%.0f s)", case.L, time.time() - started)
    results["wall_s"] = round(time.time() - started, 1)
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    warning = busy_warning(results)
    if warning is not None:
        _logger.warning(warning)
    return results


# Load beyond our own threads, above which the timings measure the other work as much as ours.
BUSY_MARGIN = 1.0


def busy_warning(results: dict) -> str | None:
    """A warning when other work shared the CPU during the run, else None.

    The 1-minute load average is read at the start and at the end; ours accounts for about as
    many as our threads. Other processes' threads compete for the cores and, worse, stall the
    thread pool's barriers, so a busy machine can make single steps tens of times slower.
    """
    m = results["machine"]
    if m.get("gpu"):
        return None
    loads = [m.get(key) for key in ("load_average_1min", "load_average_1min_end")]
    loads = [load for load in loads if load is not None]
    if not loads or max(loads) <= m["threads"] + BUSY_MARGIN:
        return None
    return (
        f"the machine was busy: load average up to {max(loads):.2f} against {m['threads']} "
        "threads of this run, so other processes shared its cores and these timings are not "
        "reliable; rerun on an idle machine (or with OMP_NUM_THREADS set to the free cores)"
    )


@contextlib.contextmanager
def _quiet_profiler():
    """Silence what the profiler's native layer prints on stderr at every start and stop.

    Peak memory on CPU comes from `torch.profiler`, whose native library writes lines such as
    `profiler_start` straight to file descriptor 2 at each use, hundreds per run.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _ratio(value: float) -> str:
    return "–" if value != value else f"{value:.2f}x"  # NaN: the baseline did not run


def markdown(results: dict) -> str:
    """The table of `results`: the search step first, then the op."""
    m = results["machine"]
    where = m.get("gpu") or m["cpu"]
    steps = results["search_step"]
    size = steps[0]["case"] if steps else None
    lines = [
        f"Benchmarks of {results['date'][:10]} on {where} ({m['threads']} threads, torch "
        f"{m['torch']}){', --quick' if results.get('quick') else ''}; {results['wall_s']:.0f} s; "
        f"allocator: {m['allocator']}; load average {m.get('load_average_1min')}.",
    ]
    warning = busy_warning(results)
    if warning is not None:
        lines += ["", f"**Warning:** {warning}."]
    if size is not None:
        lines += [
            "",
            f"**Search iteration** at {size['input_size']}x{size['input_size']} (stages "
            f"{'/'.join(map(str, size['stages']))}, width {size['width']}): forward, backward "
            "and both optimizer steps.",
            "",
            "| L | variant | batch | ms / iter | images/s | vs naive | peak MB | of naive |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for report in steps:
        case = report["case"]
        rows = {r["variant"]: r for r in report["results"]}
        naive = rows["naive-full"]
        for variant in SEARCH_VARIANTS:
            r = rows[variant]
            peak = f"{r['peak_mb']:.0f}"
            share = f"{r['peak_mb'] / naive['peak_mb']:.2f}"
            if r.get("peak_max_mb") is not None:
                peak += f" (max {r['peak_max_mb']:.0f})"
                share += f" (max {r['peak_max_mb'] / naive['peak_mb']:.2f})"
            lines.append(
                f"| {case['L']} | {variant} | {case['batch']} | {r['ms']:.0f} | "
                f"{r['images_per_s']:.1f} | {naive['ms'] / r['ms']:.2f}x | {peak} | {share} |"
            )
    cycles = {
        rep["case"]["L"]: next(r for r in rep["results"] if r["variant"] == "ours-cycle")
        for rep in steps
    }
    if 4 in cycles and 8 in cycles:
        lines += [
            "",
            f"Ours per cycle-averaged iteration, L = 8 against L = 4: "
            f"{cycles[8]['ms'] / cycles[4]['ms']:.2f}x the time.",
        ]

    lines += [
        "",
        "**The op** `weighted_sum` against the ways people write it (GB/s counts each tensor "
        "read once and written once; the copy of a buffer larger than the last-level cache is "
        "measured in the same run; `vs` columns compare forward + backward).",
        "",
        "| layer | K | elements | provider | fwd ms | fwd of copy | fwd+bwd ms | fwd+bwd GB/s "
        "| fwd+bwd of copy | vs naive | vs compile | peak MB |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in results["op"]:
        by = {(r["provider"], r["mode"]): r for r in case["results"]}
        compiled = by.get(("compile", "fwd+bwd"))
        for (provider, mode), r in by.items():
            if mode != "fwd+bwd":
                continue
            fwd = by[(provider, "fwd")]
            vs_compile = compiled["ms"] / r["ms"] if compiled else float("nan")
            lines.append(
                f"| {case['layer']} | {case['K']} | {case['numel']:,} | {provider} | "
                f"{fwd['ms']:.2f} | {100 * fwd['copy_fraction']:.0f}% | {r['ms']:.2f} | "
                f"{r['gbps']:.1f} | {100 * r['copy_fraction']:.0f}% | "
                f"{_ratio(r['speedup_vs_naive'])} | {_ratio(vs_compile)} | {r['peak_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def write(results: dict, out: Path) -> str:
    """Write `results.json` and `table.md` into `out`; return the table."""
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(results)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "table.md", table)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ifnas bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short run (< 3 min on CPU)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch", type=int, help="search-step batch (default: 16 with --quick, else 64)"
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc malloc as it is (by default freed memory is kept)",
    )
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error(f"--batch must be a positive integer, got {args.batch}")
    if args.device != "cpu" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA GPU is visible")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    allocator = "default" if args.default_malloc else keep_freed_memory()
    results = run(plan(args.quick, args.device, args.batch), args.device)
    results["quick"] = args.quick
    results["machine"]["allocator"] = allocator
    table = write(results, args.out)
    print(table)
    print(f"written: {args.out / 'results.json'} and {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
