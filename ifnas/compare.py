"""Comparing strategies: each one several times, retrained, in one table (Tables 2 to 4).

`run_compare(cfg, out)` runs every strategy of `cfg.compare.strategies` with the seeds
`cfg.seed, cfg.seed + 1, ...` (`cfg.compare.seeds` of them), all in the same space, with the
same budget, schedule lengths and retrain, each in `out/<strategy>/seed<k>/` (a full run
directory of `ifnas.run`). A finished run (its `summary.json` exists) is read back, an
interrupted one is resumed, so a comparison can be stopped and started again at will. It then
writes into `out`:

- `results.json`: the summary of every run and the aggregated rows;
- `table.md`: one row per strategy, as the paper's tables: depth, params, MAdds, top-1 error
  of the retrained network, mean ± standard deviation over seeds (sample standard deviation;
  0 for one seed), the depth of each seed, and how many runs met the budget;
- `architectures.png`: the derived architectures side by side, one column per strategy.
"""

import dataclasses
import json
import logging
import statistics
import time
from pathlib import Path

import yaml

from ifnas._io import atomic_write_text
from ifnas.config import Config, ConfigError, config_from_dict
from ifnas.genotype import Genotype
from ifnas.plots import plot_genotype_grid
from ifnas.run import CHECKPOINT, RESUME_FREE, run_search

_logger = logging.getLogger(__name__)

SUMMARY = "summary.json"


def run_config(cfg: Config, strategy: str, seed: int) -> Config:
    """The config of one run of the comparison: `cfg` with its strategy and seed."""
    data = dataclasses.asdict(dataclasses.replace(cfg, strategy=strategy, seed=seed))
    return config_from_dict(data)


def run_dir(out: Path, strategy: str, seed: int) -> Path:
    return out / strategy / f"seed{seed}"


# Settings that only one strategy reads: changing them leaves the other strategies' runs valid.
STRATEGY_KEYS = {
    "ifnas": ("search.interleaved_edges",),
    "goldnas": ("search.goldnas_mu", "search.goldnas_skip_cost"),
    "darts": ("search.darts_arch_lr", "search.darts_arch_weight_decay", "search.darts_split"),
    "pcdarts": (
        "search.darts_arch_lr",
        "search.darts_arch_weight_decay",
        "search.darts_split",
        "search.pc_k",
    ),
}


def _finished(directory: Path, cfg: Config) -> dict | None:
    """The summary of a finished run made with `cfg`; `None` when the run is not finished."""
    path = directory / SUMMARY
    if not path.is_file():
        return None
    written = directory / "config.yaml"
    # Read through the config's defaults: a key added since the run was made has its default.
    same = written.is_file() and _comparable(
        config_from_dict(yaml.safe_load(written.read_text())).to_dict(), cfg.strategy
    ) == _comparable(cfg.to_dict(), cfg.strategy)
    if not same:
        raise ConfigError(
            f"{directory} holds a finished run of another config; remove it or choose another --out"
        )
    return json.loads(path.read_text())


def _comparable(tree: dict, strategy: str) -> dict:
    """A config tree without the settings a resumed run may change (`RESUME_FREE`) and
    without those only other strategies read (`STRATEGY_KEYS`)."""
    own = set(STRATEGY_KEYS.get(strategy, ()))
    others = {key for keys in STRATEGY_KEYS.values() for key in keys} - own
    tree = json.loads(json.dumps(tree))
    for dotted in (*RESUME_FREE, *sorted(others)):
        *parents, key = dotted.split(".")
        node = tree
        for part in parents:
            node = node.get(part, {})
        node.pop(key, None)
    return tree


def run_compare(cfg: Config, out: str | Path, progress=None) -> dict:
    """Run (or read back) every run of the comparison and write its table and figure."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [cfg.seed + k for k in range(cfg.compare.seeds)]
    plan = [(s, seed) for s in cfg.compare.strategies for seed in seeds]
    configs = {(s, seed): run_config(cfg, s, seed) for s, seed in plan}  # fail before training

    started = time.time()
    summaries = []
    for n, (strategy, seed) in enumerate(plan, 1):
        directory = run_dir(out, strategy, seed)
        run_cfg = configs[(strategy, seed)]
        summary = _finished(directory, run_cfg)
        if summary is not None:
            _logger.info("run %d/%d: %s seed %d already finished", n, len(plan), strategy, seed)
        else:
            resume = (directory / CHECKPOINT).is_file()
            _logger.info(
                "run %d/%d: %s seed %d%s", n, len(plan), strategy, seed, " (resumed)" * resume
            )
            kwargs = {} if progress is None else {"progress": progress}
            summary = run_search(run_cfg, directory, resume=resume, **kwargs)
        summaries.append({**summary, "run_dir": str(directory.relative_to(out))})

    rows = [
        aggregate(strategy, [r for r in summaries if r["strategy"] == strategy])
        for strategy in cfg.compare.strategies
    ]
    results = {
        "strategies": list(cfg.compare.strategies),
        "seeds": seeds,
        "wall_s": round(time.time() - started, 1),  # this invocation
        "runs_wall_s": round(sum(r["wall_s"] for r in summaries), 1),  # when each run ran
        "rows": rows,
        "runs": summaries,
        "config": cfg.to_dict(),
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "table.md", markdown_table(rows, cfg))
    if cfg.model.space == "lchain":
        columns = {
            strategy: [
                (
                    f"seed {r['seed']}: depth {r['depth']}",
                    Genotype.load(out / r["run_dir"] / "genotype.json"),
                )
                for r in summaries
                if r["strategy"] == strategy
            ]
            for strategy in cfg.compare.strategies
        }
        plot_genotype_grid(columns, out / "architectures.png", title=_caption(cfg))
    else:
        # TODO(cell spaces): a side-by-side figure of cells; each run has its arch.png.
        _logger.info("architectures.png is drawn for the L-chain space only; see arch.png")
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(strategy: str, runs: list[dict]) -> dict:
    """Mean and standard deviation over a strategy's runs of what the table shows."""
    row = {"strategy": strategy, "runs": len(runs)}
    errors = [
        100.0 * (1.0 - r["retrain_val_top1"]) for r in runs if r["retrain_val_top1"] is not None
    ]
    for key, values in (
        ("depth", [r["depth"] for r in runs]),
        ("params", [r["params"] for r in runs]),
        ("madds", [r["madds"] for r in runs]),
        ("top1_err", errors),
    ):
        row[key] = list(_mean_std(values)) if values else None
    row["depths"] = [r["depth"] for r in runs]
    row["budget_met"] = sum(bool(r["budget_met"]) for r in runs)
    row["search_epochs"] = statistics.fmean(r["search_epochs"] for r in runs)
    return row


def _fmt(pair, scale: float = 1.0, digits: int = 1) -> str:
    if pair is None:
        return "-"
    mean, std = pair
    return f"{mean / scale:.{digits}f} ± {std / scale:.{digits}f}"


def markdown_table(rows: list[dict], cfg: Config) -> str:
    """The comparison as markdown, one row per strategy (see the module docstring)."""
    big = max(r["params"][0] for r in rows) >= 1e6
    unit, scale = ("M", 1e6) if big else ("K", 1e3)
    madds_big = max(r["madds"][0] for r in rows) >= 1e7
    m_unit, m_scale = ("M", 1e6) if madds_big else ("K", 1e3)
    lines = [
        f"{_caption(cfg)}\n",
        f"| strategy | depth | params ({unit}) | MAdds ({m_unit}) | top-1 err. (%) | "
        "depth per seed | budget met | search epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {_fmt(r['depth'])} | {_fmt(r['params'], scale)} | "
            f"{_fmt(r['madds'], m_scale)} | {_fmt(r['top1_err'], digits=2)} | "
            f"{'/'.join(f'{d:g}' for d in r['depths'])} | {r['budget_met']}/{r['runs']} | "
            f"{r['search_epochs']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _caption(cfg: Config) -> str:
    m, s = cfg.model, cfg.search
    shape = f"L = {m.L}, stages {m.stages}" if m.space == "lchain" else f"{m.space} {m.cells}"
    return (
        f"{cfg.data.name}, {shape}, width {m.width}, budget "
        f"{s.budget_madds} MAdds, derive {s.derive}, {cfg.compare.seeds} seeds from "
        f"{cfg.seed}; search up to {s.epochs} epochs, retrain {cfg.retrain.epochs} epochs"
    )
