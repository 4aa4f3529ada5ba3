"""Command line: `ifnas search`, `ifnas retrain`, `ifnas space`, `ifnas show`.

`search` and `retrain` run in one process as they are, and on many under torchrun
(`torchrun --nproc_per_node=8 -m ifnas search ...`): rank 0 logs, shows progress and writes
the run directory; the other processes log errors only.
"""

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from ifnas.config import ConfigError
from ifnas.genotype import GenotypeError

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


def _run_directory(args, default_stem: str) -> Path:
    """`--out`, or `runs/<stem>-<time>` as rank 0 names it (every process gets that name)."""
    from ifnas.distributed import broadcast_object

    if args.out:
        return Path(args.out)
    return Path(broadcast_object(f"runs/{default_stem}-{time.strftime('%Y%m%d-%H%M%S')}"))


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
    from ifnas.genotype import Genotype
    from ifnas.run import run_retrain

    if args.genotype is None and not args.resume:
        raise ConfigError("ifnas retrain needs --genotype FILE (or --resume with --out DIR)")
    cfg = _run_config(args)
    genotype = None if args.genotype is None else on_main(lambda: Genotype.load(args.genotype))
    out = _run_directory(args, f"retrain-{Path(args.genotype or 'run').stem}")
    _setup_logging(out / "log.txt")
    progress = _tqdm_progress if is_main() else _no_progress
    with logging_redirect_tqdm():
        summary = run_retrain(cfg, genotype, out, resume=args.resume, progress=progress)
    if is_main():
        print(json.dumps(summary, indent=2))
        print(f"\noutputs in {out.resolve()}/: summary.json, checkpoint.pt, tb/")
    return 0


def _cmd_space(args) -> int:
    from ifnas.space.counting import lchain_size, scientific
    from ifnas.space.lchain import LChainSpace

    print(f"{'space':<12}{'architectures':>16}   stages {list(args.stages)}")
    for L in args.L:
        size = lchain_size(LChainSpace(L, tuple(args.stages)))
        print(f"{f'{L}-chain':<12}{scientific(size):>16}")
    return 0


def _cmd_show(args) -> int:
    from ifnas.genotype import Genotype
    from ifnas.metrics import genotype_cost
    from ifnas.plots import plot_genotype

    genotype = Genotype.load(args.genotype)
    cost = genotype_cost(genotype)
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

    space = sub.add_parser("space", help="count the architectures of L-chain spaces")
    space.add_argument("--L", type=int, nargs="+", default=[4, 6, 8], help="values of L")
    space.add_argument(
        "--stages", type=int, nargs="+", default=[18, 20, 18], help="node count of each stage"
    )
    space.set_defaults(func=_cmd_space)

    show = sub.add_parser("show", help="describe a genotype and draw it")
    show.add_argument("genotype", help="genotype.json")
    show.add_argument("--out", help="PNG to write (default: beside the genotype)")
    show.set_defaults(func=_cmd_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ifnas.distributed import launched

    args = build_parser().parse_args(argv)
    try:
        with launched():
            return args.func(args)
    except (ConfigError, GenotypeError, FileNotFoundError, FileExistsError) as error:
        several = os.environ.get("WORLD_SIZE", "1") not in ("", "1")
        where = f" (rank {os.environ.get('RANK', '?')})" if several else ""
        print(f"ifnas {args.command}{where}: error: {error}", file=sys.stderr)
        return 2
