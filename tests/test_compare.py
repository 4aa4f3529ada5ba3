"""`ifnas compare`: runs, skips finished runs, aggregates, writes table and figure."""

import json
import statistics

import pytest

import ifnas.compare as compare_module
from ifnas.cli import main
from ifnas.compare import aggregate, markdown_table, run_compare
from ifnas.config import ConfigError, load_config
from tests.test_run import TINY

COMPARE = TINY + [
    "search.budget_madds=50K",
    "search.epochs=4",
    "retrain.epochs=1",
    "compare.strategies=[ifnas, random]",
    "compare.seeds=2",
    "seed=3",
]


@pytest.mark.slow
def test_every_run_every_output_and_finished_runs_read_back(tmp_path, monkeypatch):
    out = tmp_path
    results = run_compare(load_config(None, COMPARE), out)
    assert [(r["strategy"], r["seed"]) for r in results["runs"]] == [
        ("ifnas", 3),
        ("ifnas", 4),
        ("random", 3),
        ("random", 4),
    ]
    for name in ("results.json", "table.md", "architectures.png"):
        assert (out / name).is_file()
    for strategy in ("ifnas", "random"):
        for seed in (3, 4):
            assert (out / strategy / f"seed{seed}" / "genotype.json").is_file()
    assert json.loads((out / "results.json").read_text())["rows"] == results["rows"]
    table = (out / "table.md").read_text()
    assert table.count("\n| ifnas |") == 1 and table.count("\n| random |") == 1

    # Again: every run is read back, none is run.
    monkeypatch.setattr(compare_module, "run_search", lambda *a, **k: pytest.fail("reran"))
    again = run_compare(load_config(None, COMPARE), out)
    assert again["runs"] == results["runs"]
    with pytest.raises(ConfigError, match="finished run of another config"):
        run_compare(load_config(None, COMPARE + ["retrain.epochs=2"]), out)

    # A setting of another strategy leaves these runs valid; one of their own does not.
    other = run_compare(load_config(None, COMPARE + ["search.darts_arch_lr=0.1"]), out)
    assert other["runs"] == results["runs"]
    with pytest.raises(ConfigError, match="finished run of another config"):
        own = ["compare.strategies=[ifnas]", "search.interleaved_edges=1"]
        run_compare(load_config(None, COMPARE + own), out)

    # A run made before a key existed ran with its default: it still counts as finished.
    written = out / "ifnas" / "seed3" / "config.yaml"
    written.write_text(written.read_text().replace("  space: lchain\n", ""))
    assert "space:" not in written.read_text().split("search:")[0]
    assert run_compare(load_config(None, COMPARE), out)["runs"] == results["runs"]


@pytest.mark.slow
def test_an_interrupted_run_is_resumed(tmp_path, monkeypatch):
    calls = []
    real = compare_module.run_search

    def flaky(cfg, out, resume=False, **kwargs):
        calls.append((cfg.strategy, cfg.seed, resume))
        if len(calls) == 2:
            (out / "checkpoint.pt").parent.mkdir(parents=True, exist_ok=True)
            real(cfg, out, **kwargs)
            (out / "summary.json").unlink()  # as if killed after its last checkpoint
            raise KeyboardInterrupt
        return real(cfg, out, resume=resume, **kwargs)

    monkeypatch.setattr(compare_module, "run_search", flaky)
    cfg = load_config(None, COMPARE + ["compare.strategies=[random]"])
    with pytest.raises(KeyboardInterrupt):
        run_compare(cfg, tmp_path)
    run_compare(cfg, tmp_path)
    assert calls == [("random", 3, False), ("random", 4, False), ("random", 4, True)]


def test_aggregate_by_hand():
    runs = [
        {
            "depth": d,
            "params": p,
            "madds": m,
            "retrain_val_top1": a,
            "budget_met": b,
            "search_epochs": 3,
        }
        for d, p, m, a, b in [(10, 100, 5, 0.9, True), (14, 300, 7, 0.8, False)]
    ]
    row = aggregate("x", runs)
    assert row["depth"] == [12, statistics.stdev([10, 14])]
    assert row["top1_err"] == pytest.approx([15.0, statistics.stdev([10.0, 20.0])])
    assert row["depths"] == [10, 14] and row["budget_met"] == 1
    table = markdown_table([row], load_config(None, COMPARE))
    expected = "| x | 12.0 ± 2.8 | 0.2 ± 0.1 | 0.0 ± 0.0 | 15.00 ± 7.07 | 10/14 | 1/2 | 3.0 |"
    assert expected in table


def test_cli_errors(tmp_path, capsys):
    argv = ["compare", "--config", "configs/digits.yaml", "--out", str(tmp_path)]
    assert main(argv + ["--strategies", "ifnas", "enas"]) == 2
    assert "compare.strategies" in capsys.readouterr().err
    assert main(argv + ["--seeds", "0"]) == 2
    assert "compare.seeds: expected >= 1" in capsys.readouterr().err


def _capture_compare(monkeypatch):
    """Replace the comparison by a stub that keeps its config and stops as Ctrl-C would."""
    seen = {}

    def run(cfg, out, progress=None):
        seen["cfg"], seen["out"] = cfg, out
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_module, "run_compare", run)
    return seen


def test_overrides_after_strategies_are_overrides(tmp_path, capsys, monkeypatch):
    seen = _capture_compare(monkeypatch)
    argv = ["compare", "--config", "configs/digits.yaml", "--out", str(tmp_path), "seed=5"]
    argv += ["--strategies", "ifnas", "random", "model.space=darts_cell", "model.width=4"]
    assert main(argv) == 130
    cfg = seen["cfg"]
    assert cfg.compare.strategies == ["ifnas", "random"]
    assert (cfg.model.space, cfg.model.width, cfg.seed) == ("darts_cell", 4, 5)
    assert main(["compare", "--config", "configs/digits.yaml", "--strategies", "seed=1"]) == 2
    assert "--strategies: expected at least one strategy" in capsys.readouterr().err


def test_a_broken_strategy_name_is_a_config_error(tmp_path, capsys):
    argv = ["compare", "--config", "configs/digits.yaml", "--out", str(tmp_path)]
    assert main(argv + ["--strategies", "[ifnas"]) == 2
    assert "compare.strategies: expected a non-empty list" in capsys.readouterr().err


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, capsys, monkeypatch):
    _capture_compare(monkeypatch)
    assert main(["compare", "--config", "configs/digits.yaml", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.startswith("ifnas compare: interrupted; run the same command with --out")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
