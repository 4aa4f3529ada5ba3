"""`ifnas bench`: the op and the search step against naive DARTS, in one run, as a table.

Runs `kernels/bench_weighted_sum.py` on tensors shaped like real supernet layers (digits, CIFAR
and the ImageNet mobile stages) for K in {4, 8, 12, 16}, and `search_step.py` for L in
{4, 6, 8} at CIFAR size; writes `results.json` and `table.md` to `--out` and prints the table.

    python benchmarks/bench.py [--quick] [--out DIR]      # or: ifnas bench [--quick] [--out DIR]

`--quick` (under 3 minutes on 2 CPU cores) keeps the K = 16 case the kernels are judged on
(2.4M float32 elements), one CIFAR layer for each K, and smaller search batches.
"""

import argparse
import datetime
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import search_step  # noqa: E402  (a script beside this one)

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


def op_cases(quick: bool) -> list[tuple[str, int, int]]:
    """`(name, K, elements)` of every op case to run."""
    cases = [TARGET]
    shapes = {"cifar-s0": LAYER_SHAPES["cifar-s0"]} if quick else LAYER_SHAPES
    for name, shape in shapes.items():
        for k in (4, 8, 12, 16):
            cases.append((name, k, math.prod(shape)))
    return cases


def run(quick: bool, device: str) -> dict:
    started = time.time()
    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "quick": quick,
        "machine": bench_op.machine(),
        "op": [],
        "search_step": [],
    }

    for name, k, numel in op_cases(quick):
        # torch.compile needs a compilation per shape: on CPU, only for the judged case.
        only = (
            None
            if (name == "target" or not quick)
            else ("naive", "stack", "ours-cpp", "ours-cuda", "ours-triton")
        )
        case = bench_op.Case(k, numel, "float32", device)
        report = bench_op.run(case, reps=5 if quick else 15, only=only)
        results["op"].append(
            {
                "layer": name,
                "K": k,
                "numel": numel,
                "copy_gbps": report.copy_gbps,
                "results": [vars(r) for r in report.results],
            }
        )
        _logger.info("op %s K=%d done (%.0f s)", name, k, time.time() - started)

    for L in (4, 6, 8):
        case = search_step.StepCase(L=L, batch=16 if quick else 64, device=device)
        report = search_step.run(case, reps=3 if quick else 7)
        results["search_step"].append(search_step.as_dict(report))
        _logger.info("search step L=%d done (%.0f s)", L, time.time() - started)
    results["wall_s"] = round(time.time() - started, 1)
    return results


def markdown(results: dict) -> str:
    m = results["machine"]
    where = m.get("gpu") or m["cpu"]
    lines = [
        f"Benchmarks of {results['date'][:10]} on {where} ({m['threads']} threads, torch "
        f"{m['torch']}){', --quick' if results['quick'] else ''}; {results['wall_s']:.0f} s; "
        f"allocator: {m['allocator']}; load average {m.get('load_average_1min')}.",
        "",
        "**Search iteration** at CIFAR size (3x32x32, stages 18/20/18, width 16): forward, "
        "backward and both optimizer steps.",
        "",
        "| L | variant | batch | ms / iter | images/s | vs naive | peak MB | of naive |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for report in results["search_step"]:
        case = report["case"]
        rows = {r["variant"]: r for r in report["results"]}
        naive = rows["naive-full"]
        for variant in ("naive-full", "ours-full", "ours-S0", "ours-cycle"):
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
        for rep in results["search_step"]
    }
    if 4 in cycles and 8 in cycles:
        lines += [
            "",
            f"Ours per cycle-averaged iteration, L = 8 against L = 4: "
            f"{cycles[8]['ms'] / cycles[4]['ms']:.2f}x the time.",
        ]

    lines += [
        "",
        "**The op** `weighted_sum` against the ways people write it, forward + backward "
        "(GB/s counts each tensor read once and written once; the copy is measured in the "
        "same run).",
        "",
        "| layer | K | elements | provider | ms | GB/s | of copy | vs naive | peak MB |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in results["op"]:
        for r in case["results"]:
            if r["mode"] != "fwd+bwd":
                continue
            lines.append(
                f"| {case['layer']} | {case['K']} | {case['numel']:,} | {r['provider']} | "
                f"{r['ms']:.2f} | {r['gbps']:.1f} | {100 * r['copy_fraction']:.0f}% | "
                f"{r['speedup_vs_naive']:.2f}x | {r['peak_mb']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ifnas bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short run (< 3 min on CPU)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as it is (by default freed memory is kept)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    allocator = "default" if args.default_malloc else keep_freed_memory()
    results = run(args.quick, args.device)
    results["machine"]["allocator"] = allocator
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "table.md").write_text(table)
    print(table)
    print(f"written: {args.out / 'results.json'} and {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
