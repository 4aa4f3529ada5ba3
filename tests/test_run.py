"""End to end on digits: outputs, errors before training, and exact resume."""

import json

import pytest

import ifnas.run as run_module
import ifnas.train.retrain as retrain_module
from ifnas.checkpoint import load_checkpoint, save_checkpoint
from ifnas.config import ConfigError, load_config
from ifnas.genotype import Genotype
from ifnas.run import run_retrain, run_search
from ifnas.search.loop import SearchLoop
from ifnas.train.divergence import DivergenceError
from ifnas.train.retrain import RetrainLoop

TINY = [
    "model.L=2",
    "model.stages=[4, 5, 4]",
    "model.width=4",
    "data.batch_size=128",
    "search.epochs=5",
    "search.weight_warmup_epochs=1",
    "search.alpha_delay_epochs=1",
    "search.step_iters=2",
    "search.arch_lr=2.0",
    "search.mu1=1.0",
    "search.mu2=1.0",
    "search.mu_growth=2.0",
    "search.bn_calibration_batches=2",
    "search.budget_madds=150K",
    "retrain.epochs=2",
]


def tiny(*extra):
    return load_config(None, TINY + list(extra))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = run_search(tiny(), out)
    return out, summary


def test_run_leaves_every_output(finished_run):
    out, summary = finished_run
    for name in ("genotype.json", "summary.json", "arch.png", "checkpoint.pt", "config.yaml"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    for key in (
        "strategy",
        "L",
        "stages",
        "budget_madds",
        "madds",
        "params",
        "depth",
        "search_val_top1",
        "retrain_val_top1",
    ):
        assert key in summary, key
    genotype = Genotype.load(out / "genotype.json")
    assert summary["depth"] == genotype.depth()
    assert summary["L"] == 2 and summary["stages"] == [4, 5, 4]
    assert summary["budget_madds"] == 150_000
    assert 0.0 <= summary["retrain_val_top1"] <= 1.0


def test_budget_is_met_and_respected(finished_run):
    _, summary = finished_run
    assert summary["budget_met"]
    assert summary["madds"] <= summary["budget_madds"]


def test_existing_run_is_not_overwritten(finished_run):
    out, _ = finished_run
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        run_search(tiny(), out)
    assert (out / "checkpoint.pt").read_bytes() == before


class _Interrupt(Exception):
    pass


def _interrupting(cls, monkeypatch, at_epoch):
    real = cls.train_epoch

    def train_epoch(self, *args, **kwargs):
        if self.epoch == at_epoch:
            raise _Interrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "train_epoch", train_epoch)


@pytest.mark.parametrize("cls,at_epoch", [(SearchLoop, 3), (RetrainLoop, 1)])
def test_resumed_run_ends_like_an_uninterrupted_one(
    finished_run, tmp_path, monkeypatch, cls, at_epoch
):
    reference_dir, reference = finished_run
    with monkeypatch.context() as patch:
        _interrupting(cls, patch, at_epoch)
        with pytest.raises(_Interrupt):
            run_search(tiny(), tmp_path)
    assert not (tmp_path / "summary.json").exists()
    summary = run_search(tiny(), tmp_path, resume=True)
    assert (tmp_path / "genotype.json").read_text() == (reference_dir / "genotype.json").read_text()
    for key in ("madds", "params", "depth", "search_val_top1", "retrain_val_top1"):
        assert summary[key] == reference[key], key


def test_resume_refuses_a_different_config(finished_run):
    out, _ = finished_run
    with pytest.raises(ConfigError, match="search.epochs: checkpoint 5, now 6"):
        run_search(tiny("search.epochs=6"), out, resume=True)


@pytest.mark.parametrize(
    "overrides,error,message",
    [
        (["search.budget_madds=1000"], ConfigError, "below the smallest network"),
        (["data.input_size=6"], ConfigError, "cannot pass the stride-2 path"),
        (
            ["data.name=cifar10", "data.root=/no/such/folder"],
            FileNotFoundError,
            "/no/such/folder/cifar-10-batches-py",
        ),
        (
            ["data.name=imagefolder", "data.root=/no/such/tree", "data.input_size=32"],
            FileNotFoundError,
            "/no/such/tree/train",
        ),
    ],
)
def test_errors_come_before_any_training(tmp_path, monkeypatch, overrides, error, message):
    built = []
    monkeypatch.setattr(run_module, "get_strategy", lambda name: built.append(name))
    with pytest.raises(error, match=message):
        run_search(tiny(*overrides), tmp_path / "out")
    assert not built
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_resume_without_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_search(tiny(), tmp_path, resume=True)


def _nan_at(monkeypatch, at_iter):
    """Make the search's loss nan from its `at_iter`-th iteration (counting from 1) on."""
    real = SearchLoop.step

    def step(self, x, y, activation=None):
        metrics, activation = real(self, x, y, activation)
        if self.global_iter + 1 >= at_iter:
            metrics = {**metrics, "ce": float("nan")}
        return metrics, activation

    monkeypatch.setattr(SearchLoop, "step", step)


def test_a_diverged_search_stops_with_an_error(tmp_path, monkeypatch):
    _nan_at(monkeypatch, 3)
    with pytest.raises(DivergenceError, match=r"search epoch 1, iteration 3: .* is nan.*search.lr"):
        run_search(tiny(), tmp_path)
    assert not (tmp_path / "genotype.json").exists()
    assert not (tmp_path / "summary.json").exists()


def test_a_diverged_retrain_stops_with_an_error(finished_run, tmp_path, monkeypatch):
    import torch

    out, _ = finished_run
    genotype = Genotype.load(out / "genotype.json")
    real = retrain_module.F.cross_entropy

    class NanF:
        @staticmethod
        def cross_entropy(*args, **kwargs):
            return real(*args, **kwargs) * torch.tensor(float("inf"))

    monkeypatch.setattr(retrain_module, "F", NanF)
    with pytest.raises(DivergenceError, match=r"retrain epoch 1, iteration 1: .* lower retrain.lr"):
        run_retrain(tiny(), genotype, tmp_path)
    assert not (tmp_path / "summary.json").exists()


def test_wall_time_adds_up_over_resumed_invocations(finished_run, tmp_path, monkeypatch):
    out, summary = finished_run
    assert summary["wall_s"] > 0.5
    resumed = run_search(tiny(), out, resume=True)  # a finished run: nothing left to train
    assert resumed["wall_s"] >= summary["wall_s"] - 1.0

    # An interrupted run: the second invocation adds to the first's time.
    with monkeypatch.context() as patch:
        _interrupting(RetrainLoop, patch, 1)
        with pytest.raises(_Interrupt):
            run_search(tiny(), tmp_path)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["wall_s"] > 0.1
    save_checkpoint(tmp_path / "checkpoint.pt", {**checkpoint, "wall_s": 1000.0})
    total = run_search(tiny(), tmp_path, resume=True)["wall_s"]
    assert 1000.0 < total < 1000.0 + summary["wall_s"]
