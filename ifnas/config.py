"""Run configuration: YAML files, dotted command-line overrides, and their validation.

A config is a tree of dataclasses. Loading checks every key and type before anything runs: an
unknown key, a wrong type or a value out of range raises `ConfigError` naming the dotted key
and what was expected.
"""

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ifnas._io import read_text


class ConfigError(ValueError):
    """A config key, type or value that cannot be used."""


@dataclass
class DataConfig:
    """Where the images come from.

    Attributes:
        name: `digits` (embedded, no download), `cifar10`, `cifar100` or `imagefolder`.
        root: folder of the data set (not used by `digits`). CIFAR: the folder holding
            `cifar-10-batches-py`; ImageFolder: the folder holding `train/` and `val/`.
        input_size: image side at which the network runs and MAdds are counted; `null` takes
            the data set's own (8 for digits, 32 for CIFAR); required for `imagefolder`.
        val_fraction: digits only: the fraction of images held out for validation.
        batch_size: images per iteration (per process under DDP).
        workers: DataLoader worker processes (per process under DDP).
        classes_file: `imagefolder` only: a text file naming the class folders to use, one
            per line; the others are left out.
        num_classes_sample: `imagefolder` only: use this many class folders of `train/`,
            drawn with `class_seed` (the paper's ImageNet-100); the run writes the drawn list
            to `classes.txt`.
        class_seed: seed of that draw (fixed apart from the run's seed, so that runs with
            different seeds see the same classes).
    """

    name: str = "digits"
    root: str | None = None
    input_size: int | None = None
    val_fraction: float = 0.2
    batch_size: int = 64
    workers: int = 0
    classes_file: str | None = None
    num_classes_sample: int | None = None
    class_seed: int = 0


@dataclass
class ModelConfig:
    """The space and the network's macro shape.

    Attributes:
        L: precursors per node (the L-chain space).
        stages: node count of each stage, input and output nodes included.
        width: channels of the first stage; each later stage doubles them.
        stem_strides: stride of each stem convolution.
        mixing: `fused` (`ifnas_kernels.weighted_sum`) or `naive` (DARTS' `sum(w * op(x))`).
        space: `lchain` (the paper's macro space), or a cell space of section 4.5:
            `darts_cell` (a normal and a reduction cell, 2 inputs per node) or `goldnas_cell`
            (every cell its own, any inputs); `L` and `stages` serve `lchain` only.
        cells: cell spaces: normal cells of each stage, a reduction cell between stages
            (DARTS' 8 cells: [2, 2, 2]; GOLD-NAS' 14: [4, 4, 4]).
    """

    L: int = 4
    stages: list[int] = field(default_factory=lambda: [18, 20, 18])
    width: int = 16
    stem_strides: list[int] = field(default_factory=lambda: [1])
    mixing: str = "fused"
    space: str = "lchain"
    cells: list[int] = field(default_factory=lambda: [2, 2, 2])


@dataclass
class SearchConfig:
    """The search (section 3 and 4.1 of the paper; defaults are the paper's where it gives them).

    Attributes:
        epochs: epoch limit of the search; it ends earlier when the budget is met.
        weight_warmup_epochs: epochs training the weights alone on the full supernet (20).
        alpha_delay_epochs: epochs after `beta` starts learning before `alpha` does (10).
        step_iters: iterations per step of the interleaving-free cycle (100).
        lr, momentum, weight_decay, nesterov: SGD of the network weights (cosine schedule).
        arch_lr, arch_momentum: SGD of `beta` and `alpha` (no weight decay).
        mu1, mu2: weights of the edge and op terms of the regularizer (eq. 3).
        detach_mean: treat the regularizer's means as constants.
        mu_growth: factor (>= 1) applied to `mu1` and `mu2` after each cycle in which no gate
            was pruned (1 keeps them fixed). The paper prunes "until the complexity achieves the
            lower bound" without saying how it keeps pruning going; like GOLD-NAS, we raise
            the pressure when pruning stalls, so that any reachable budget is reached.
        prune_threshold: gates below it are pruned (0.01).
        budget_madds: the search ends when the retained architecture's MAdds are at most
            this; a number or a string such as `600M`.
        beta_init, alpha_init: initial gate logits.
        derive: `all` keeps every live edge and op, `keep_one` the strongest input per node.
        bn_calibration_batches: training batches that re-estimate the supernet's BN
            statistics before each validation (the supernet's training mixes sub-supernets).
        amp: mixed precision of the supernet's convolutions: `none`, `bf16`, or `fp16` (with
            a gradient scaler); the gates, the regularizer and the loss stay in float32.
        channels_last: run the supernet and its inputs in the channels-last memory format.
        sync_bn: batch normalization over the global batch of all processes (CUDA only).
        recompute_full: recompute the ops' activations in backward during steps on every
            live edge (the warm-up steps), which hold the most memory of an IF cycle; the
            sub-supernet steps keep theirs. Costs about a third more time in those steps.
        interleaved_edges: `ifnas` only: edges that interleave with the sampled group, added
            (gates frozen) to every sub-supernet in each stage; 0 is IF-NAS, 1 to 3 the
            paper's Table 5 ablation (`ifnas.search.interleaved`).
        goldnas_mu: `goldnas`: initial weight of GOLD-NAS's resource-aware penalty, raised
            by `mu_growth` when a cycle prunes nothing (`ifnas.search.strategies.goldnas`).
        goldnas_skip_cost: `goldnas`: cost of an op in that penalty on top of its MAdds (as a
            fraction of the costliest `sep_conv_3x3`), so that free ops are pushed too.
        darts_arch_lr, darts_arch_weight_decay: `darts`, `pcdarts`: Adam on the architecture
            (DARTS: 3e-4 and 1e-3, betas (0.5, 0.999)).
        darts_split: `darts`, `pcdarts`: fraction of the training set held out for the
            architecture step of the bi-level optimization (DARTS: half); the validation set
            that reports accuracy is never touched.
        pc_k: `pcdarts`: 1/K of the channels go through the ops (PC-DARTS: 4); the widths
            must be divisible by K.
    """

    epochs: int = 50
    weight_warmup_epochs: int = 20
    alpha_delay_epochs: int = 10
    step_iters: int = 100
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = False
    arch_lr: float = 0.5
    arch_momentum: float = 0.9
    mu1: float = 0.1
    mu2: float = 0.1
    detach_mean: bool = False
    mu_growth: float = 1.2
    prune_threshold: float = 0.01
    budget_madds: int | str = "600M"
    beta_init: float = 0.0
    alpha_init: float = 0.0
    derive: str = "all"
    bn_calibration_batches: int = 10
    amp: str = "none"
    channels_last: bool = False
    sync_bn: bool = False
    recompute_full: bool = True
    interleaved_edges: int = 0
    goldnas_mu: float = 0.05
    goldnas_skip_cost: float = 0.1
    darts_arch_lr: float = 3e-4
    darts_arch_weight_decay: float = 1e-3
    darts_split: float = 0.5
    pc_k: int = 4


@dataclass
class RetrainConfig:
    """Training the derived network from scratch.

    Attributes:
        epochs: training epochs (0 skips the retrain).
        lr, momentum, weight_decay, nesterov: SGD with linear warm-up, then a cosine decay to
            0, both per iteration.
        label_smoothing: cross-entropy label smoothing.
        batch_size: images per iteration and process; `null` takes `data.batch_size`.
        lr_batch: the global batch `lr` is given for: the run uses
            `lr * batch_size * processes / lr_batch` (linear scaling); `null` uses `lr` as is.
        warmup_epochs: epochs of linear learning-rate warm-up from `lr / warm-up iterations`.
        auxiliary_weight: weight of the auxiliary classifier's loss (DARTS' auxiliary head on
            the stage at two thirds of the depth); 0 builds no auxiliary head.
        amp: mixed precision: `none`, `bf16`, or `fp16` (with a gradient scaler).
        channels_last: run the network and its inputs in the channels-last memory format.
        sync_bn: batch normalization over the global batch of all processes (CUDA only).
    """

    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = False
    label_smoothing: float = 0.0
    batch_size: int | None = None
    lr_batch: int | None = None
    warmup_epochs: int = 0
    auxiliary_weight: float = 0.0
    amp: str = "none"
    channels_last: bool = False
    sync_bn: bool = False


@dataclass
class CompareConfig:
    """`ifnas compare`: which strategies, how many seeds (each overridable on the command line).

    Attributes:
        strategies: strategies to run, in the order of the table's rows.
        seeds: runs per strategy, with seeds `seed, seed + 1, ...`.
    """

    strategies: list[str] = field(
        default_factory=lambda: ["ifnas", "wo_if", "goldnas", "darts", "pcdarts", "random"]
    )
    seeds: int = 4


@dataclass
class Config:
    """A whole run: data, space and network, search, retrain.

    Attributes:
        seed: seeds weights, data order and every random choice of the run.
        strategy: the search strategy, one of `STRATEGIES` (`ifnas.search.strategies`).
        device: `auto` (CUDA when available), `cpu` or `cuda`; under torchrun each process
            takes the GPU of its `LOCAL_RANK`.
        checkpoint_every_iters: besides the checkpoint at the end of every epoch, one every
            this many iterations inside an epoch, so that an interrupted run loses at most
            that many (0: at epoch ends only).
        compare: settings of `ifnas compare` (not read by a single run).
    """

    seed: int = 0
    strategy: str = "ifnas"
    device: str = "auto"
    checkpoint_every_iters: int = 500
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


STRATEGIES = ("ifnas", "wo_if", "goldnas", "darts", "pcdarts", "random")
SPACES = ("lchain", "darts_cell", "goldnas_cell")
CELL_STRATEGIES = ("ifnas", "wo_if", "random")  # the strategies of the paper's Figure 6
DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
AMP_MODES = ("none", "bf16", "fp16")

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}


def parse_madds(value: int | float | str, key: str = "search.budget_madds") -> int:
    """`600M`, `1.2G`, `5e6` or `600000000` as an integer count of MAdds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number or a string such as '600M', got {value!r}")
    if isinstance(value, int | float):
        number = value
    else:
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([KMG]?)\s*", str(value))
        try:
            number = float(match.group(1)) * _SUFFIX[match.group(2)] if match else None
        except ValueError:
            number = None
        if number is None:
            raise ConfigError(f"{key}: expected a number or a string such as '600M', got {value!r}")
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite count of MAdds, got {value!r}")
    if number <= 0:
        raise ConfigError(f"{key}: must be positive, got {value!r}")
    return int(round(number))


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        names = " or ".join(_type_name(o) for o in options)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, f"{key}[{k}]") for k, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            if isinstance(value, str):
                try:
                    return float(value)  # YAML reads 3e-4 (no dot) as a string
                except ValueError:
                    pass
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r} at {key}")


def _build(cls, data: Any, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{prefix + '.' if prefix else ''}{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown config key '{dotted}'{hint}; {cls.__name__} has: {', '.join(fields)}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted)
        else:
            kwargs[key] = _coerce(value, tp, dotted)
    return cls(**kwargs)


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """`search.epochs=2` as `{"search": {"epochs": 2}}`; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r} is not of the form key=value (for example search.epochs=2)"
        )
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"override {text!r}: the value {raw!r} is not valid YAML ({problem}); quote a "
            f"string, and close every [ and {{"
        ) from error
    tree: dict = {}
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or the defaults), apply `key=value` overrides, validate."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        text = read_text(path, "config file", "a YAML config", ConfigError, ConfigError)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys")
    for text in overrides:
        data = _merge(data, parse_override(text))
    config = _build(Config, data, "")
    validate(config)
    return config


def config_from_dict(data: dict) -> Config:
    config = _build(Config, data, "")
    validate(config)
    return config


def _non_finite(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the float values of `node` (a config dataclass) that are nan or inf."""
    found = []
    for f in dataclasses.fields(node):
        value, dotted = getattr(node, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            found += _non_finite(value, dotted + ".")
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(f"{dotted}={value}")
    return found


CUDA_DEVICE = re.compile(r"cuda:\d+")


def validate(config: Config) -> None:
    """Range and choice checks that need no data and no model."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    m, s, d, r = config.model, config.search, config.data, config.retrain
    non_finite = _non_finite(config)
    need(not non_finite, f"expected finite numbers, got {', '.join(non_finite)}")
    need(
        0 <= config.seed < 2**63,
        f"seed: expected an integer in [0, 2**63) (torch seeds are 64-bit), got {config.seed}",
    )
    for key, lr in (("search.lr", s.lr), ("search.arch_lr", s.arch_lr), ("retrain.lr", r.lr)):
        need(lr >= 0, f"{key}: expected a learning rate >= 0, got {lr}")
    for key, decay in (
        ("search.weight_decay", s.weight_decay),
        ("retrain.weight_decay", r.weight_decay),
    ):
        need(decay >= 0, f"{key}: expected a weight decay >= 0, got {decay}")
    for key, momentum in (
        ("search.momentum", s.momentum),
        ("search.arch_momentum", s.arch_momentum),
        ("retrain.momentum", r.momentum),
    ):
        need(0 <= momentum < 1, f"{key}: expected a momentum in [0, 1), got {momentum}")
    for phase, cfg in (("search", s), ("retrain", r)):
        need(
            not cfg.nesterov or cfg.momentum > 0,
            f"{phase}.nesterov: Nesterov momentum needs {phase}.momentum > 0, got {cfg.momentum}",
        )
    need(
        s.mu1 >= 0 and s.mu2 >= 0, f"search.mu1 and search.mu2: expected >= 0, got {s.mu1}, {s.mu2}"
    )
    need(
        s.mu_growth >= 1,
        f"search.mu_growth: expected a factor >= 1 (it multiplies the regularizer's weights when "
        f"a cycle prunes nothing, to raise the pressure; 1 keeps them fixed), got {s.mu_growth}",
    )
    need(
        config.strategy in STRATEGIES,
        f"strategy: expected one of {list(STRATEGIES)}, got {config.strategy!r}",
    )
    need(
        config.device in ("auto", "cpu", "cuda") or CUDA_DEVICE.fullmatch(config.device),
        f"device: expected auto, cpu, cuda or cuda:N, got {config.device!r}",
    )
    need(d.name in DATASETS, f"data.name: expected one of {list(DATASETS)}, got {d.name!r}")
    need(d.name == "digits" or d.root is not None, f"data.root: required for data.name={d.name}")
    need(
        d.name != "imagefolder" or d.input_size is not None,
        "data.input_size: required for data.name=imagefolder",
    )
    need(
        d.input_size is None or d.input_size >= 1,
        f"data.input_size: expected an image side >= 1 (or null: the data set's own), "
        f"got {d.input_size}",
    )
    need(0 < d.val_fraction < 1, f"data.val_fraction: expected in (0, 1), got {d.val_fraction}")
    need(d.batch_size >= 1, f"data.batch_size: expected >= 1, got {d.batch_size}")
    need(d.workers >= 0, f"data.workers: expected >= 0, got {d.workers}")
    for key in ("classes_file", "num_classes_sample"):
        need(
            getattr(d, key) is None or d.name == "imagefolder",
            f"data.{key}: only for data.name=imagefolder, got data.name={d.name}",
        )
    need(
        d.classes_file is None or d.num_classes_sample is None,
        "data.classes_file and data.num_classes_sample: give one of them, not both",
    )
    need(
        d.num_classes_sample is None or d.num_classes_sample >= 2,
        f"data.num_classes_sample: expected >= 2, got {d.num_classes_sample}",
    )
    need(
        config.checkpoint_every_iters >= 0,
        f"checkpoint_every_iters: expected >= 0, got {config.checkpoint_every_iters}",
    )
    need(m.L >= 1, f"model.L: expected an integer >= 1, got {m.L}")
    need(
        len(m.stages) >= 1 and all(n >= 2 for n in m.stages),
        f"model.stages: expected node counts >= 2, got {m.stages}",
    )
    need(m.width >= 1, f"model.width: expected >= 1, got {m.width}")
    need(
        len(m.stem_strides) >= 1 and all(stride >= 1 for stride in m.stem_strides),
        f"model.stem_strides: expected one stride >= 1 per stem convolution (at least one), "
        f"got {m.stem_strides}",
    )
    need(m.mixing in ("fused", "naive"), f"model.mixing: expected fused or naive, got {m.mixing!r}")
    need(m.space in SPACES, f"model.space: expected one of {list(SPACES)}, got {m.space!r}")
    need(
        len(m.cells) >= 1 and all(c >= 0 for c in m.cells),
        f"model.cells: expected counts >= 0 of normal cells per stage, got {m.cells}",
    )
    need(
        m.space == "lchain" or config.strategy in CELL_STRATEGIES,
        f"strategy: {config.strategy} searches model.space=lchain only; in {m.space} use one "
        f"of {list(CELL_STRATEGIES)}",
    )
    need(
        m.space == "lchain" or m.width % 2 == 0,
        f"model.width: the cell spaces' factorized reductions need an even width, got {m.width}",
    )
    need(s.epochs >= 1, f"search.epochs: expected >= 1, got {s.epochs}")
    need(
        s.weight_warmup_epochs >= 0 and s.alpha_delay_epochs >= 0,
        "search.weight_warmup_epochs and search.alpha_delay_epochs: expected >= 0",
    )
    need(s.step_iters >= 1, f"search.step_iters: expected >= 1, got {s.step_iters}")
    need(
        0 < s.prune_threshold < 1,
        f"search.prune_threshold: expected in (0, 1), got {s.prune_threshold}",
    )
    need(
        s.derive in ("all", "keep_one"),
        f"search.derive: expected all or keep_one, got {s.derive!r}",
    )
    parse_madds(s.budget_madds)
    need(
        s.bn_calibration_batches >= 1,
        f"search.bn_calibration_batches: expected >= 1, got {s.bn_calibration_batches}",
    )
    need(
        s.interleaved_edges >= 0,
        f"search.interleaved_edges: expected >= 0, got {s.interleaved_edges}",
    )
    need(
        s.interleaved_edges == 0 or (config.strategy == "ifnas" and m.space == "lchain"),
        f"search.interleaved_edges: the interleaving ablation adds edges to IF-NAS's "
        f"sub-supernets of the L-chain space; it needs strategy=ifnas and model.space=lchain, "
        f"got {config.strategy} in {m.space}",
    )
    need(
        s.goldnas_mu >= 0 and s.goldnas_skip_cost >= 0,
        "search.goldnas_mu and search.goldnas_skip_cost: expected >= 0",
    )
    need(s.darts_arch_lr > 0, f"search.darts_arch_lr: expected > 0, got {s.darts_arch_lr}")
    need(
        s.darts_arch_weight_decay >= 0,
        f"search.darts_arch_weight_decay: expected >= 0, got {s.darts_arch_weight_decay}",
    )
    need(0 < s.darts_split < 1, f"search.darts_split: expected in (0, 1), got {s.darts_split}")
    need(s.pc_k >= 1, f"search.pc_k: expected an integer >= 1, got {s.pc_k}")
    need(
        config.strategy != "pcdarts" or m.width % s.pc_k == 0,
        f"model.width: pcdarts sends 1/{s.pc_k} of the channels through the ops, so the "
        f"width must be divisible by search.pc_k={s.pc_k}; got {m.width}",
    )
    c = config.compare
    need(
        len(c.strategies) >= 1 and all(name in STRATEGIES for name in c.strategies),
        f"compare.strategies: expected a non-empty list from {list(STRATEGIES)}, "
        f"got {c.strategies}",
    )
    need(
        len(set(c.strategies)) == len(c.strategies),
        f"compare.strategies: a strategy is listed twice in {c.strategies}",
    )
    need(c.seeds >= 1, f"compare.seeds: expected >= 1, got {c.seeds}")
    need(r.epochs >= 0, f"retrain.epochs: expected >= 0, got {r.epochs}")
    need(
        0 <= r.label_smoothing < 1,
        f"retrain.label_smoothing: expected in [0, 1), got {r.label_smoothing}",
    )
    need(
        r.batch_size is None or r.batch_size >= 1,
        f"retrain.batch_size: expected >= 1, got {r.batch_size}",
    )
    need(
        r.lr_batch is None or r.lr_batch >= 1,
        f"retrain.lr_batch: expected >= 1, got {r.lr_batch}",
    )
    need(r.warmup_epochs >= 0, f"retrain.warmup_epochs: expected >= 0, got {r.warmup_epochs}")
    need(
        r.auxiliary_weight >= 0,
        f"retrain.auxiliary_weight: expected >= 0, got {r.auxiliary_weight}",
    )
    for phase, amp in (("search", s.amp), ("retrain", r.amp)):
        need(amp in AMP_MODES, f"{phase}.amp: expected one of {list(AMP_MODES)}, got {amp!r}")
