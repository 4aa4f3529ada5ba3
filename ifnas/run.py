"""A run directory: search, derivation, retrain, and what they leave behind.

`run_search(cfg, out_dir)` checks everything it can before training (data folder, input size,
budget), then searches, derives the genotype, retrains it from scratch, and writes into
`out_dir`: `config.yaml`, `genotype.json`, `arch.png`, `summary.json`, `checkpoint.pt` (the
last one, written atomically at the end of every epoch and every `checkpoint_every_iters`
iterations inside one) and the TensorBoard events under `tb/`. `run_retrain(cfg, genotype,
out_dir)` trains a given genotype from scratch, with the same outputs but the search's.

Under torchrun every process calls them: each trains on its share of the data, and rank 0
alone reads the run directory and writes into it (`ifnas.distributed`). A checkpoint holds
the RNG states of every process; a run resumes with as many processes as it had.
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
    restore_rng_states,
    rng_states,
    save_checkpoint,
    seed_everything,
    unwrap,
)
from ifnas.config import Config, ConfigError, config_from_dict, parse_madds
from ifnas.data import DataSplits, load_data, make_loader
from ifnas.distributed import (
    broadcast_module,
    check_identical,
    check_identical_object,
    device_for,
    is_main,
    mean_over_ranks,
    on_main,
    rank,
    world_size,
)
from ifnas.metrics import genotype_cost
from ifnas.nn.macro import MacroConfig
from ifnas.search.strategies import get_strategy
from ifnas.spaces import (
    AnyGenotype,
    AnySpace,
    build_space,
    describe,
    genotype_from_dict,
    network_of,
    num_stages,
    plot_any,
    smallest_madds,
)
from ifnas.train.retrain import RetrainLoop, scaled_lr

_logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
RUN_KEYS = ("config", "phase", "rng")  # what every checkpoint of a run holds

# Settings a resumed run may change: they do not alter what is computed.
RESUME_FREE = (
    "device",
    "data.workers",
    "data.root",
    "checkpoint_every_iters",
    "search.recompute_full",  # memory against time; the gradients are the same
    "compare.strategies",
    "compare.seeds",
)

Progress = Callable[[str, int], contextlib.AbstractContextManager]


def _no_progress(desc: str, total: int) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext(None)


def resolve_device(name: str) -> torch.device:
    """The device of this process (`cuda:LOCAL_RANK` under torchrun with CUDA)."""
    try:
        return device_for(name)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def check_sync_bn(cfg: Config, device: torch.device) -> None:
    """SyncBatchNorm runs on GPUs only (torch raises on CPU tensors); say so before training."""
    for phase in ("search", "retrain"):
        if getattr(cfg, phase).sync_bn and world_size() > 1 and device.type != "cuda":
            raise ConfigError(
                f"{phase}.sync_bn: torch's SyncBatchNorm needs CUDA devices, this run is on "
                f"{device.type}; set {phase}.sync_bn=false"
            )


def _sync_bn(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    if not enabled or world_size() == 1:
        return module
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)


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


def check_batches(cfg: Config, data: DataSplits, search: bool = True) -> None:
    """Raise `ConfigError` when the training set holds less than one batch per process for the
    search (when `search`) or the retrain (when it has epochs)."""
    batches = []
    if search:
        batches.append(("data.batch_size", cfg.data.batch_size))
    if cfg.retrain.epochs > 0:
        key = "retrain.batch_size" if cfg.retrain.batch_size else "data.batch_size"
        batches.append((key, cfg.retrain.batch_size or cfg.data.batch_size))
    for key, batch in batches:
        if batch * world_size() > len(data.train):
            raise ConfigError(
                f"{key}={batch}: larger than the {len(data.train)} training images (over "
                f"{world_size()} process(es)); expected at most {len(data.train) // world_size()}"
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


def refuse_existing_run(marker: Path, resumable: bool = True) -> None:
    """Raise `FileExistsError` when `marker` (the file a finished or started run leaves in its
    directory) exists: a new run never overwrites another one."""
    if marker.exists():
        advice = "pass --resume to continue it, or choose" if resumable else "choose"
        raise FileExistsError(
            f"{marker.parent} already holds a run ({marker}); {advice} another --out"
        )


def _open_run(out: Path, cfg: Config, resume: bool, command: str) -> dict | None:
    """Check `out` for a new run or a resumed one; return the checkpoint to resume from."""
    ckpt_path = out / CHECKPOINT
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    if not resume:
        refuse_existing_run(ckpt_path)
        return None
    checkpoint = load_checkpoint(ckpt_path, RUN_KEYS)
    kind = checkpoint.get("command", "search")
    if kind != command:
        raise ConfigError(f"{out} holds a run of 'ifnas {kind}': resume it with that command")
    differences = _config_differences(checkpoint["config"], cfg.to_dict())
    if differences:
        raise ConfigError(
            "the config differs from the checkpoint's:\n  " + "\n  ".join(differences)
        )
    processes = checkpoint.get("world_size", 1)
    if processes != world_size():
        raise ConfigError(
            f"the checkpoint in {out} was written by a run of {processes} process(es), this "
            f"one has {world_size()}: resume with as many (each process's share of the data "
            f"and the global batch depend on it)"
        )
    return checkpoint


def _start_outputs(out: Path, cfg: Config, data: DataSplits):
    """On rank 0: the run directory, its config and class list; a TensorBoard writer.
    Elsewhere: nothing, and `None` for the writer."""
    if not is_main():
        return None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    if data.classes is not None:
        atomic_write_text(out / "classes.txt", "\n".join(data.classes) + "\n")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))


class WallClock:
    """Seconds a run has taken over all its invocations: those its checkpoint holds (the
    invocations before a `--resume`) and this invocation's."""

    def __init__(self, checkpoint: dict | None):
        self.before = float(checkpoint.get("wall_s", 0.0)) if checkpoint else 0.0
        self.started = time.time()

    def seconds(self) -> float:
        return self.before + time.time() - self.started


def _save(out: Path, payload: dict, clock: WallClock) -> None:
    """Write a checkpoint from rank 0 with the RNG states of every process (a collective) and
    the run's wall time so far."""
    states = rng_states()
    if is_main():
        save_checkpoint(
            out / CHECKPOINT,
            {**payload, "rng": states, "world_size": world_size(), "wall_s": clock.seconds()},
        )


def run_search(
    cfg: Config,
    out_dir: str | Path,
    resume: bool = False,
    progress: Progress = _no_progress,
) -> dict:
    """Search, derive and retrain as `cfg` says; returns the summary written to `summary.json`."""
    out = Path(out_dir)
    checkpoint = on_main(lambda: _open_run(out, cfg, resume, "search"))

    # Everything that can fail without training fails here.
    device = resolve_device(cfg.device)
    check_sync_bn(cfg, device)
    data = load_data(cfg.data)
    space = build_space(cfg.model)
    macro = macro_of(cfg, data)
    try:
        macro.stage_resolutions(num_stages(space))
    except ValueError as error:
        raise ConfigError(f"data.input_size: {error}") from error
    budget = parse_madds(cfg.search.budget_madds)
    check_budget(budget, space, macro)
    check_batches(cfg, data)

    writer = _start_outputs(out, cfg, data)
    clock = WallClock(checkpoint)
    try:
        if checkpoint is None or checkpoint["phase"] == "search":
            result, genotype = _search(
                cfg, out, data, space, macro, device, writer, checkpoint, progress, clock
            )
            checkpoint = None
        else:
            result = checkpoint["search_result"]
            genotype = genotype_from_dict(checkpoint["genotype"])
        retrain_top1 = _retrain(
            cfg, out, data, genotype, device, writer, checkpoint, result, progress, clock
        )
    finally:
        if writer is not None:
            writer.close()

    summary = {
        "strategy": cfg.strategy,
        "space": cfg.model.space,
        "L": space.L,
        "stages": list(space.cells if cfg.model.space != "lchain" else space.stages),
        "budget_madds": budget,
        **result,
        "retrain_val_top1": retrain_top1,
    }
    return _write_summary(out, cfg, clock, summary)


def _write_summary(out: Path, cfg: Config, clock: WallClock, summary: dict) -> dict:
    """`summary` with the seed, process count and wall time over every invocation of the run,
    written by rank 0."""
    summary = {
        **summary,
        "seed": cfg.seed,
        "processes": world_size(),
        "wall_s": round(clock.seconds(), 1),
    }
    if is_main():
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _architecture(supernet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Gate logits and masks (DARTS' `none` logits too): what must be the same on every
    process."""
    return {
        k: v for k, v in supernet.state_dict().items() if k.startswith(("gates.", "none_logits."))
    }


def _search(cfg, out, data, space, macro, device, writer, checkpoint, progress, clock):
    seed_everything(cfg.seed)
    strategy = get_strategy(cfg.strategy)
    supernet = strategy.build_supernet(cfg, space, macro).to(device)
    supernet = _sync_bn(supernet, cfg.search.sync_bn)
    broadcast_module(supernet)
    batch, workers, processes = cfg.data.batch_size, cfg.data.workers, world_size()
    train_loader = make_loader(data.train, batch, True, cfg.seed, workers, processes, rank())
    val_loader = make_loader(data.val, batch, False, cfg.seed, workers, processes, rank())
    # Every process re-estimates BN statistics on the same batches, so they stay identical.
    calibration_loader = make_loader(data.train, batch, False, cfg.seed, workers)
    loop = strategy.build_loop(supernet, cfg, train_loader, device, writer)
    val_top1 = None
    if checkpoint is not None:
        loop.load_state_dict(checkpoint["search"])
        restore_rng_states(checkpoint["rng"])
        val_top1 = checkpoint.get("search_val_top1")
        _logger.info(
            "resumed the search at epoch %d, iteration %d of it (%s)",
            loop.epoch,
            loop.epoch_iter,
            loop.schedule.position(loop.global_iter),
        )
    _logger.info(
        "searching: %s, %d epochs, budget %.3fM MAdds, retained now %.3fM; "
        "%d process(es) x %d images per iteration",
        describe(space),
        cfg.search.epochs,
        loop.budget / 1e6,
        loop.madds / 1e6,
        processes,
        batch,
    )

    def save() -> None:
        payload = {
            "command": "search",
            "phase": "search",
            "config": cfg.to_dict(),
            "search": loop.state_dict(),
            "search_val_top1": val_top1,
        }
        _save(out, payload, clock)

    while not loop.done:
        remaining = loop.schedule.iters_per_epoch - loop.epoch_iter
        with progress(f"search {loop.epoch + 1}/{cfg.search.epochs}", remaining) as tick:
            train = loop.train_epoch(tick, save, cfg.checkpoint_every_iters)
        train = mean_over_ranks(train)
        val_top1 = loop.evaluate(val_loader, calibration_loader)
        check_identical(_architecture(supernet), "the architecture (gates and masks)")
        loop.log_epoch(train, val_top1)
        save()

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
    check_identical(supernet.state_dict(), "the supernet")
    check_identical_object(genotype.to_dict(), "the derived genotype")
    cost = genotype_cost(genotype)
    if is_main():
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


def _data_parallel(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`net` in `DistributedDataParallel` under torchrun (which copies rank 0's weights to
    every process); `net` itself in a single process."""
    if world_size() == 1:
        return net
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)


def _retrain(
    cfg, out, data, genotype, device, writer, checkpoint, result, progress, clock, command="search"
):
    r = cfg.retrain
    if r.epochs == 0:
        return None
    seed_everything(cfg.seed + 1)
    net = network_of(genotype, auxiliary=r.auxiliary_weight > 0).to(device)
    if r.channels_last:
        net.to(memory_format=torch.channels_last)  # before DDP lays out its buckets
    net = _data_parallel(_sync_bn(net, r.sync_bn), device)
    batch, workers, processes = r.batch_size or cfg.data.batch_size, cfg.data.workers, world_size()
    seed = cfg.seed + 1
    key = "retrain.batch_size" if r.batch_size else "data.batch_size"
    train_loader = make_loader(data.train, batch, True, seed, workers, processes, rank(), key)
    val_loader = make_loader(data.val, batch, False, seed, workers, processes, rank())
    loop = RetrainLoop(net, r, train_loader, device, writer)
    val_top1 = None
    if checkpoint is not None:
        loop.load_state_dict(checkpoint["retrain"])
        restore_rng_states(checkpoint["rng"])
        val_top1 = checkpoint.get("retrain_val_top1")
        _logger.info(
            "resumed the retrain at epoch %d, iteration %d of it", loop.epoch, loop.epoch_iter
        )
    _logger.info(
        "retraining: %d epochs, %d process(es) x %d images = batch %d, lr %.4g, warm-up %d "
        "epochs, label smoothing %g, auxiliary weight %g, amp %s",
        r.epochs,
        processes,
        batch,
        loop.global_batch,
        loop.lr,
        r.warmup_epochs,
        r.label_smoothing,
        r.auxiliary_weight,
        r.amp,
    )

    def save() -> None:
        payload = {
            "command": command,
            "phase": "retrain",
            "config": cfg.to_dict(),
            "genotype": genotype.to_dict(),
            "search_result": result,
            "retrain": loop.state_dict(),
            "retrain_val_top1": val_top1,
        }
        _save(out, payload, clock)

    while not loop.done:
        remaining = loop.iters_per_epoch - loop.epoch_iter
        with progress(f"retrain {loop.epoch + 1}/{r.epochs}", remaining) as tick:
            train = loop.train_epoch(tick, save, cfg.checkpoint_every_iters)
        train = mean_over_ranks(train)
        val_top1 = loop.evaluate(val_loader)
        loop.log_epoch(train, val_top1)
        save()
    check_identical(unwrap(net).state_dict(), "the retrained network")
    return val_top1


def check_genotype_fits(genotype: AnyGenotype, data: DataSplits) -> None:
    """Raise `ConfigError` when the genotype's network cannot take the data's images or
    classes: the genotype fixes the network, the data must match it."""
    macro = genotype.macro
    differences = [
        f"{name}: genotype {getattr(macro, name)}, data {getattr(data, name)}"
        for name in ("in_channels", "num_classes", "input_size")
        if getattr(macro, name) != getattr(data, name)
    ]
    if differences:
        raise ConfigError(
            "the genotype's network does not fit the data (the genotype fixes the network; "
            "choose data that match it, or a genotype derived for these data):\n  "
            + "\n  ".join(differences)
        )


def run_retrain(
    cfg: Config,
    genotype: AnyGenotype | None,
    out_dir: str | Path,
    resume: bool = False,
    progress: Progress = _no_progress,
) -> dict:
    """Train `genotype` from scratch as `cfg.retrain` says; returns the summary it writes.

    The network is the genotype's (`model.*` of the config is not used); the data must have
    its input channels, classes and input size. `out_dir` receives `config.yaml`,
    `genotype.json`, `summary.json`, `checkpoint.pt` and `tb/`. With `resume`, `genotype` may
    be `None` (the checkpoint holds it) and must otherwise equal the checkpoint's.
    """
    out = Path(out_dir)
    checkpoint = on_main(lambda: _open_run(out, cfg, resume, "retrain"))
    if checkpoint is not None:
        saved = genotype_from_dict(checkpoint["genotype"])
        if genotype is not None and genotype != saved:
            raise ConfigError(f"--genotype differs from the genotype of the run in {out}")
        genotype = saved
    if genotype is None:
        raise ConfigError("no genotype to retrain: pass --genotype FILE")
    if cfg.retrain.epochs == 0:
        raise ConfigError("retrain.epochs is 0: there is nothing to train")

    device = resolve_device(cfg.device)
    check_sync_bn(cfg, device)
    data = load_data(cfg.data)
    check_genotype_fits(genotype, data)
    check_batches(cfg, data, search=False)
    macro = genotype.macro
    if (cfg.model.width, list(cfg.model.stem_strides)) != (macro.width, list(macro.stem_strides)):
        _logger.info(
            "model.width and model.stem_strides of the config are not used: the genotype's "
            "network has width %d and stem strides %s",
            macro.width,
            list(macro.stem_strides),
        )

    writer = _start_outputs(out, cfg, data)
    if is_main():
        genotype.save(out / "genotype.json")
    clock = WallClock(checkpoint)
    try:
        top1 = _retrain(
            cfg, out, data, genotype, device, writer, checkpoint, None, progress, clock, "retrain"
        )
    finally:
        if writer is not None:
            writer.close()

    batch = cfg.retrain.batch_size or cfg.data.batch_size
    summary = {
        "command": "retrain",
        "L": genotype.L,
        **genotype_cost(genotype),
        "retrain_epochs": cfg.retrain.epochs,
        "retrain_val_top1": top1,
        "global_batch": batch * world_size(),
        "lr": scaled_lr(cfg.retrain, batch * world_size()),
    }
    return _write_summary(out, cfg, clock, summary)


def config_of_run(out_dir: str | Path) -> Config:
    """The config a run directory was started with (for `--resume` without `--config`)."""
    path = Path(out_dir) / CHECKPOINT
    checkpoint = load_checkpoint(path, RUN_KEYS)
    try:
        return config_from_dict(checkpoint["config"])
    except ConfigError as error:
        raise ConfigError(f"the config of the checkpoint {path}: {error}") from error
