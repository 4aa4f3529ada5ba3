"""Command line: `ifnas search`, `ifnas retrain`, `ifnas compare`, `ifnas diagnose`,
`ifnas space`, `ifnas show`, `ifnas bench`.

`search` and `retrain` run in one process as they are, and on many under torchrun
(`torchrun --nproc_per_node=8 -m ifnas search ...`): rank 0 logs, shows progress and writes
the run directory; the other processes log errors only.
"""

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path

from ifnas.checkpoint import CheckpointError
from ifnas.config import ConfigError
from ifnas.genotype import GenotypeError
from ifnas.train.divergence import DivergenceError

_logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _tqdm_progress(desc: str, total: int):
    from tqdm import tqdm

    with tqdm(
        total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr, disable=None
    ) as bar:

        def tick(metrics: dict) -> None:
            bar.update(1)
            bar.set_postfix(
                {k: f"{v:.3g}" if isinstance(v, float) else v for k, v in metrics.items()},
                refresh=False,
            )

        yield tick


def _setup_logging(log_file: Path | None = None) -> None:
    """INFO to stderr and `log_file` on rank 0; errors only, tagged with the rank, elsewhere."""
    from ifnas.distributed import is_main, rank

    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file is not None and is_main():
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.INFO if is_main() else logging.ERROR,
        format="%(asctime)s %(name)s: %(message)s" if is_main() else f"[rank {rank()}] %(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )


def _no_progress(desc: str, total: int) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext(None)


def _out_directory(path: str | Path) -> Path:
    """`path` as a run directory: `ConfigError` when it, or a folder above it, is a file."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == path else f"lies under the file {folder}"
                raise ConfigError(f"--out {path} {where}; expected a directory")
            break
    return path


def _run_directory(args, default_stem: str) -> Path:
    """`--out`, or `runs/<stem>-<time>` as rank 0 names it (every process gets that name).

    The directory is kept in `args.run_dir`, for the message of an interrupted run."""
    from ifnas.distributed import broadcast_object

    if args.out:
        args.run_dir = _out_directory(args.out)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.run_dir = Path(broadcast_object(f"runs/{default_stem}-{stamp}"))
    return args.run_dir


def _run_config(args):
    """The config of `--config` with overrides, or (for `--resume` alone) the run's own."""
    from ifnas.config import load_config
    from ifnas.distributed import on_main
    from ifnas.run import config_of_run

    if args.config is None and not args.resume:
        raise ConfigError(f"ifnas {args.command} needs --config FILE (or --resume with --out DIR)")
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR: the run directory to continue")
    if args.config is None:
        if args.overrides:
            raise ConfigError("overrides need --config: a resumed run keeps its config")
        return on_main(lambda: config_of_run(args.out))
    return load_config(args.config, args.overrides)


def _cmd_search(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ifnas.distributed import is_main
    from ifnas.run import run_search

    cfg = _run_config(args)
    out = _run_directory(args, Path(args.config or "run").stem)
    _setup_logging(out / "log.txt")
    progress = _tqdm_progress if is_main() else _no_progress
    with logging_redirect_tqdm():
        summary = run_search(cfg, out, resume=args.resume, progress=progress)
    if is_main():
        print(json.dumps(summary, indent=2))
        print(
            f"\noutputs in {out.resolve()}/: genotype.json, arch.png, summary.json, "
            f"checkpoint.pt, tb/ (tensorboard --logdir {out / 'tb'})"
        )
    return 0


def _cmd_retrain(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ifnas.distributed import is_main, on_main
    from ifnas.run import run_retrain
    from ifnas.spaces import load_genotype

    if args.genotype is None and not args.resume:
        raise ConfigError("ifnas retrain needs --genotype FILE (or --resume with --out DIR)")
    cfg = _run_config(args)
    genotype = None if args.genotype is None else on_main(lambda: load_genotype(args.genotype))
    out = _run_directory(args, f"retrain-{Path(args.genotype or 'run').stem}")
    _setup_logging(out / "log.txt")
    progress = _tqdm_progress if is_main() else _no_progress
    with logging_redirect_tqdm():
        summary = run_retrain(cfg, genotype, out, resume=args.resume, progress=progress)
    if is_main():
        print(json.dumps(summary, indent=2))
        print(f"\noutputs in {out.resolve()}/: summary.json, checkpoint.pt, tb/")
    return 0


def _cmd_compare(args) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ifnas.compare import run_compare
    from ifnas.config import load_config

    # `--strategies a b key=value`: nargs="+" takes the overrides after the strategies too.
    strategies = [item for item in args.strategies or () if "=" not in item]
    overrides = list(args.overrides) + [item for item in args.strategies or () if "=" in item]
    if args.strategies is not None and not strategies:
        raise ConfigError("--strategies: expected at least one strategy before the overrides")
    if strategies:
        overrides.append(f"compare.strategies={json.dumps(strategies)}")
    if args.seeds is not None:
        overrides.append(f"compare.seeds={args.seeds}")
    cfg = load_config(args.config, overrides)
    out = _out_directory(args.out or Path("runs") / f"compare-{Path(args.config).stem}")
    args.run_dir = out
    _setup_logging(out / "log.txt")
    with logging_redirect_tqdm():
        results = run_compare(cfg, out, progress=_tqdm_progress)
    print((out / "table.md").read_text())
    print(
        f"{len(results['runs'])} runs ({results['runs_wall_s']:.0f} s of runs, "
        f"{results['wall_s']:.0f} s in this invocation); outputs in {out.resolve()}/: "
        f"table.md, results.json, architectures.png, <strategy>/seed<k>/"
    )
    return 0


def _cmd_diagnose(args) -> int:
    from ifnas.config import load_config
    from ifnas.diagnose import DiagnoseSettings, run_diagnose

    cfg = load_config(args.config, args.overrides)
    settings = DiagnoseSettings(
        stage=args.stage,
        node=args.node,
        candidates=tuple(args.candidates),
        settings=tuple(args.settings),
        warmup_epochs=args.warmup_epochs,
        epochs=args.epochs,
        record_every=args.record_every,
    )
    out = _out_directory(args.out or Path("runs") / f"diagnose-{time.strftime('%Y%m%d-%H%M%S')}")
    _setup_logging(out / "log.txt")
    results = run_diagnose(cfg, settings, out)
    for setting in results["settings"]:
        final = {k: round(v[-1], 3) for k, v in setting["gates"].items()}
        print(f"{setting['setting']} interleaved {setting['interleaved']}: final gates {final}")
    print(f"outputs in {out.resolve()}/: curves.json, curves.png")
    return 0


def _cmd_space(args) -> int:
    from ifnas.space.cells import darts_space_size, goldnas_space_size
    from ifnas.space.counting import lchain_size, scientific
    from ifnas.space.lchain import LChainSpace

    if min(args.L) < 1:
        raise ConfigError(f"--L: expected precursor counts >= 1, got {args.L}")
    if min(args.stages) < 2:
        raise ConfigError(
            f"--stages: expected node counts >= 2 (a stage's input and output), got {args.stages}"
        )
    print(f"{'space':<12}{'architectures':>16}")
    print(
        f"{'DARTS':<12}{scientific(darts_space_size()):>16}   normal and reduction cell, "
        f"4 nodes of 2 inputs, 7 ops"
    )
    print(
        f"{'GOLD-NAS':<12}{scientific(goldnas_space_size()):>16}   14 cells, 4 nodes of any "
        f"inputs, 2 ops"
    )
    for L in args.L:
        size = lchain_size(LChainSpace(L, tuple(args.stages)))
        print(f"{f'{L}-chain':<12}{scientific(size):>16}   stages {list(args.stages)}, 2 ops")
    return 0


def _cmd_show(args) -> int:
    from ifnas.cell_genotype import CellGenotype, cell_depth
    from ifnas.metrics import genotype_cost
    from ifnas.plots import plot_genotype
    from ifnas.spaces import load_genotype, plot_any

    genotype = load_genotype(args.genotype)
    cost = genotype_cost(genotype)
    if isinstance(genotype, CellGenotype):
        space = genotype.space
        print(
            f"{space.kind}, cells {list(space.cells)}, depth {cost['depth']:g}, "
            f"{cost['params']:,} params, {cost['madds']:,} MAdds"
        )
        for k, slot in enumerate(genotype.slots):
            print(f"cell {k} ({space.slot_kind(k)}): depth {cell_depth(slot)}")
            for j in sorted(slot):
                print(f"  node {j} <- " + ", ".join(f"{i}:{op}" for i, op in slot[j]))
        out = Path(args.out) if args.out else Path(args.genotype).with_suffix(".png")
        plot_any(genotype, out)
        print(f"picture: {out}")
        return 0
    print(
        f"L = {genotype.L}, depth {cost['depth']}, {cost['params']:,} params, "
        f"{cost['madds']:,} MAdds at {genotype.macro.input_size}x{genotype.macro.input_size}"
    )
    for s, stage in enumerate(genotype.stages):
        print(
            f"stage {s}: {len(stage.inputs)}/{stage.nodes - 1} nodes kept, depth "
            f"{stage.depth()}, {len(stage.edges())} edges"
        )
        for j in sorted(stage.inputs):
            pairs = ", ".join(f"{i}:{op}" for i, op in stage.inputs[j])
            print(f"  node {j:>2} <- {pairs}")
    out = Path(args.out) if args.out else Path(args.genotype).with_suffix(".png")
    plot_genotype(genotype, out)
    print(f"picture: {out}")
    return 0


BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _load_bench(script: Path):
    """The benchmark script of the source tree as a module (`benchmarks/` is not packaged)."""
    name = "ifnas_bench"
    if name in sys.modules:
        return sys.modules[name]
    if not script.is_file():
        raise FileNotFoundError(
            f"the benchmarks are part of the source repository, not of the package: {script} "
            "does not exist; clone the repository and install it with `make demo` or "
            "`pip install --no-build-isolation -e .`"
        )
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _cmd_bench(argv: list[str]) -> int:
    """`ifnas bench ...`: `benchmarks/bench.py` with the same arguments."""
    try:
        bench = _load_bench(BENCH_SCRIPT)
    except FileNotFoundError as error:
        print(f"ifnas bench: error: {error}", file=sys.stderr)
        return 2
    return bench.main(argv)


def _add_run_arguments(parser: argparse.ArgumentParser, config_help: str, default_name: str):
    """`--config`, `--out`, `--resume` and `key=value` overrides of a training command."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--out", help=f"run directory (default: runs/{default_name}-<time>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted config overrides, e.g. search.epochs=2",
    )


def _interrupted(args) -> str:
    """The line printed on Ctrl-C: how to go on from the last checkpoint."""
    run_dir = getattr(args, "run_dir", None)
    if run_dir is None or args.command not in ("search", "retrain", "compare"):
        return "interrupted"
    if args.command == "compare":
        return (
            f"interrupted; run the same command with --out {run_dir} to resume (finished runs "
            f"are read back, the interrupted one resumed)"
        )
    return f"interrupted; resume with: ifnas {args.command} --out {run_dir} --resume"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ifnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="search, derive and retrain an architecture")
    _add_run_arguments(search, "YAML config file (e.g. configs/digits.yaml)", "<config>")
    search.set_defaults(func=_cmd_search)

    retrain = sub.add_parser("retrain", help="train a genotype from scratch")
    retrain.add_argument("--genotype", help="genotype.json to train (from a search)")
    _add_run_arguments(
        retrain,
        "YAML config file: data and retrain settings (e.g. configs/imagenet-mobile.yaml)",
        "retrain-<genotype>",
    )
    retrain.set_defaults(func=_cmd_retrain)

    compare = sub.add_parser(
        "compare", help="run several strategies with several seeds and tabulate them"
    )
    compare.add_argument("--config", required=True, help="YAML config of every run")
    compare.add_argument(
        "--strategies",
        nargs="+",
        help="strategies to compare (default: compare.strategies); key=value items after "
        "them are overrides",
    )
    compare.add_argument("--seeds", type=int, help="runs per strategy (default: compare.seeds)")
    compare.add_argument(
        "--out",
        help="folder of the comparison (default: runs/compare-<config>); finished "
        "runs in it are read back, interrupted ones resumed",
    )
    compare.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted config overrides"
    )
    compare.set_defaults(func=_cmd_compare)

    diagnose = sub.add_parser(
        "diagnose",
        help="the paper's Figure 1: one node's candidate inputs with 0 to 3 interleaved edges",
    )
    diagnose.add_argument(
        "--config", default=None, help="YAML config: data, model, search.lr, search.arch_lr"
    )
    diagnose.add_argument("--out", help="output folder (default: runs/diagnose-<time>)")
    diagnose.add_argument("--stage", type=int, default=0, help="stage of the node")
    diagnose.add_argument("--node", type=int, default=8, help="the node whose inputs compete")
    diagnose.add_argument(
        "--candidates", type=int, nargs="+", default=[1, 3, 6], help="precursor distances"
    )
    diagnose.add_argument(
        "--settings", type=int, nargs="+", default=[0, 1, 2, 3], help="interleaved edges added"
    )
    diagnose.add_argument("--warmup-epochs", type=int, default=5, help="weights alone")
    diagnose.add_argument("--epochs", type=int, default=20, help="weights and candidate gates")
    diagnose.add_argument("--record-every", type=int, default=5, help="iterations per record")
    diagnose.add_argument(
        "overrides", nargs="*", metavar="key=value", help="dotted config overrides"
    )
    diagnose.set_defaults(func=_cmd_diagnose)

    space = sub.add_parser(
        "space", help="count the architectures of the spaces of the paper's Table 1"
    )
    space.add_argument("--L", type=int, nargs="+", default=[4, 6, 8], help="values of L")
    space.add_argument(
        "--stages", type=int, nargs="+", default=[18, 20, 18], help="node count of each stage"
    )
    space.set_defaults(func=_cmd_space)

    show = sub.add_parser("show", help="describe a genotype and draw it")
    show.add_argument("genotype", help="genotype.json")
    show.add_argument("--out", help="PNG to write (default: beside the genotype)")
    show.set_defaults(func=_cmd_show)

    # Parsed by benchmarks/bench.py itself (see `ifnas bench --help`); listed here for --help.
    sub.add_parser(
        "bench",
        help="the op and the search step against naive DARTS: speed and memory, as a table",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from ifnas.distributed import launched

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return _cmd_bench(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        with launched():
            return args.func(args)
    except KeyboardInterrupt:
        print(f"ifnas {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except (
        ConfigError,
        GenotypeError,
        CheckpointError,
        DivergenceError,
        FileNotFoundError,
        FileExistsError,
    ) as error:
        several = os.environ.get("WORLD_SIZE", "1") not in ("", "1")
        where = f" (rank {os.environ.get('RANK', '?')})" if several else ""
        print(f"ifnas {args.command}{where}: error: {error}", file=sys.stderr)
        return 2
