"""A run directory: search, derivation, retrain, and what they leave behind.

`run_search(cfg, out_dir)` checks everything it can before training (data folder, input size,
budget), then searches, derives the genotype, retrains it from scratch, and writes into
`out_dir`: `config.yaml`, `genotype.json`, `arch.png`, `summary.json`, `checkpoint.pt` (the
last one, written atomically every epoch) and the TensorBoard events under `tb/`.
"""

import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ifnas._io import atomic_write_text
from ifnas.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from ifnas.config import Config, ConfigError, config_from_dict, parse_madds
from ifnas.data import DataSplits, load_data, make_loader
from ifnas.metrics import genotype_cost
from ifnas.nn.macro import MacroConfig
from ifnas.search.strategies import get_strategy
from ifnas.spaces import (
    AnySpace,
    build_space,
    describe,
    genotype_from_dict,
    network_of,
    num_stages,
    plot_any,
    smallest_madds,
)
from ifnas.train.retrain import RetrainLoop

_logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"

# Settings a resumed run may change: they do not alter what is computed.
RESUME_FREE = ("device", "data.workers", "data.root", "compare.strategies", "compare.seeds")

Progress = Callable[[str, int], contextlib.AbstractContextManager]


def _no_progress(desc: str, total: int) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext(None)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name} was asked for, but torch sees no CUDA device")
    return device


def macro_of(cfg: Config, data: DataSplits) -> MacroConfig:
    return MacroConfig(
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        input_size=data.input_size,
        width=cfg.model.width,
        stem_strides=tuple(cfg.model.stem_strides),
    )


def check_budget(budget: int, space: AnySpace, macro: MacroConfig) -> None:
    """Raise `ConfigError` when no network of the space fits `budget` MAdds.

    The smallest L-chain network runs `skip_connect` edges only: its MAdds are the stem's, the
    reductions' and the classifier's; a cell network keeps its cheapest inputs.
    """
    floor = smallest_madds(space, macro)
    if budget < floor:
        raise ConfigError(
            f"search.budget_madds {budget:,} is below the smallest network of this space "
            f"({floor:,} MAdds: stem, reductions and classifier with skip connections only); "
            f"raise the budget or shrink model.width"
        )


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _config_differences(old: dict, new: dict) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    return [
        f"{k}: checkpoint {a.get(k)!r}, now {b.get(k)!r}"
        for k in sorted(set(a) | set(b))
        if k not in RESUME_FREE and a.get(k) != b.get(k)
    ]


def run_search(
    cfg: Config,
    out_dir: str | Path,
    resume: bool = False,
    progress: Progress = _no_progress,
) -> dict:
    """Search, derive and retrain as `cfg` says; returns the summary written to `summary.json`."""
    out = Path(out_dir)
    ckpt_path = out / CHECKPOINT
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    if not resume and ckpt_path.exists():
        raise FileExistsError(
            f"{out} already holds a run ({ckpt_path}); pass --resume to "
            f"continue it, or choose another --out"
        )
    checkpoint = load_checkpoint(ckpt_path) if resume else None
    if checkpoint is not None:
        differences = _config_differences(checkpoint["config"], cfg.to_dict())
        if differences:
            raise ConfigError(
                "the config differs from the checkpoint's:\n  " + "\n  ".join(differences)
            )

    # Everything that can fail without training fails here.
    device = resolve_device(cfg.device)
    data = load_data(cfg.data)
    space = build_space(cfg.model)
    macro = macro_of(cfg, data)
    try:
        macro.stage_resolutions(num_stages(space))
    except ValueError as error:
        raise ConfigError(f"data.input_size: {error}") from error
    budget = parse_madds(cfg.search.budget_madds)
    check_budget(budget, space, macro)

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))
    started = time.time()
    try:
        if checkpoint is None or checkpoint["phase"] == "search":
            result, genotype = _search(
                cfg, out, data, space, macro, device, writer, checkpoint, progress
            )
            checkpoint = None
        else:
            result = checkpoint["search_result"]
            genotype = genotype_from_dict(checkpoint["genotype"])
        retrain_top1 = _retrain(
            cfg, out, data, genotype, device, writer, checkpoint, result, progress
        )
    finally:
        writer.close()

    summary = {
        "strategy": cfg.strategy,
        "space": cfg.model.space,
        "L": space.L,
        "stages": list(space.cells if cfg.model.space != "lchain" else space.stages),
        "budget_madds": budget,
        **result,
        "retrain_val_top1": retrain_top1,
        "seed": cfg.seed,
        "wall_s": round(time.time() - started, 1),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _search(cfg, out, data, space, macro, device, writer, checkpoint, progress):
    seed_everything(cfg.seed)
    strategy = get_strategy(cfg.strategy)
    supernet = strategy.build_supernet(cfg, space, macro).to(device)
    train_loader = make_loader(data.train, cfg.data.batch_size, True, cfg.seed, cfg.data.workers)
    val_loader = make_loader(data.val, cfg.data.batch_size, False, cfg.seed, cfg.data.workers)
    calibration_loader = make_loader(
        data.train, cfg.data.batch_size, False, cfg.seed, cfg.data.workers
    )
    loop = strategy.build_loop(supernet, cfg, train_loader, device, writer)
    val_top1 = None
    if checkpoint is not None:
        loop.load_state_dict(checkpoint["search"])
        set_rng_state(checkpoint["rng"])
        val_top1 = checkpoint.get("search_val_top1")
        _logger.info("resumed the search at epoch %d (iteration %d)", loop.epoch, loop.global_iter)
    _logger.info(
        "searching: %s, %d epochs, budget %.3fM MAdds, retained now %.3fM",
        describe(space),
        cfg.search.epochs,
        loop.budget / 1e6,
        loop.madds / 1e6,
    )

    while not loop.done:
        total = len(loop.train_loader)
        with progress(f"search {loop.epoch + 1}/{cfg.search.epochs}", total) as tick:
            train = loop.train_epoch(tick)
        val_top1 = loop.evaluate(val_loader, calibration_loader)
        loop.log_epoch(train, val_top1)
        save_checkpoint(
            out / CHECKPOINT,
            {
                "phase": "search",
                "config": cfg.to_dict(),
                "search": loop.state_dict(),
                "rng": rng_state(),
                "search_val_top1": val_top1,
            },
        )

    if loop.stops_at_budget and not loop.budget_met:
        _logger.warning(
            "epoch limit (%d) reached before the budget: the retained architecture "
            "has %.3fM MAdds > %.3fM; deriving it as it is (raise search.epochs, "
            "search.arch_lr or search.mu1/mu2 to prune further)",
            cfg.search.epochs,
            loop.madds / 1e6,
            loop.budget / 1e6,
        )
    genotype = strategy.derive(loop, cfg.search.derive)
    cost = genotype_cost(genotype)
    genotype.save(out / "genotype.json")
    plot_any(
        genotype,
        out / "arch.png",
        title=f"{cfg.strategy}, {describe(space)}: depth {cost['depth']:g}, "
        f"{cost['params'] / 1e6:.3f}M params, {cost['madds'] / 1e6:.3f}M MAdds",
    )
    result = {
        **cost,
        "budget_met": loop.madds <= loop.budget,
        "derive": cfg.search.derive,
        "search_epochs": loop.epoch,
        "search_iters": loop.global_iter,
        "search_val_top1": val_top1,
        "kept_pairs": genotype.num_kept(),
    }
    _logger.info(
        "derived: depth %g, %.3fM params, %.3fM MAdds; search val top1 %s",
        cost["depth"],
        cost["params"] / 1e6,
        cost["madds"] / 1e6,
        "-" if val_top1 is None else f"{val_top1:.4f}",  # None: a search without epochs
    )
    return result, genotype


def _retrain(cfg, out, data, genotype, device, writer, checkpoint, result, progress):
    r = cfg.retrain
    if r.epochs == 0:
        return None
    seed_everything(cfg.seed + 1)
    net = network_of(genotype).to(device)
    batch = r.batch_size or cfg.data.batch_size
    train_loader = make_loader(data.train, batch, True, cfg.seed + 1, cfg.data.workers)
    val_loader = make_loader(data.val, batch, False, cfg.seed + 1, cfg.data.workers)
    loop = RetrainLoop(net, r, train_loader, device, writer)
    val_top1 = None
    if checkpoint is not None:
        loop.load_state_dict(checkpoint["retrain"])
        set_rng_state(checkpoint["rng"])
        val_top1 = checkpoint.get("retrain_val_top1")
        _logger.info("resumed the retrain at epoch %d", loop.epoch)
    while not loop.done:
        with progress(f"retrain {loop.epoch + 1}/{r.epochs}", len(train_loader)) as tick:
            train = loop.train_epoch(tick)
        val_top1 = loop.evaluate(val_loader)
        loop.log_epoch(train, val_top1)
        save_checkpoint(
            out / CHECKPOINT,
            {
                "phase": "retrain",
                "config": cfg.to_dict(),
                "genotype": genotype.to_dict(),
                "search_result": result,
                "retrain": loop.state_dict(),
                "rng": rng_state(),
                "retrain_val_top1": val_top1,
            },
        )
    return val_top1


def config_of_run(out_dir: str | Path) -> Config:
    """The config a run directory was started with (for `--resume` without `--config`)."""
    checkpoint = load_checkpoint(Path(out_dir) / CHECKPOINT)
    return config_from_dict(checkpoint["config"])
