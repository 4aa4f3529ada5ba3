"""Checkpoints: exact resume after SIGKILL inside an epoch, atomic writes, strict loading."""

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from ifnas.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from ifnas.config import RetrainConfig, SearchConfig
from ifnas.data import make_loader
from ifnas.genotype import Genotype
from ifnas.nn.derived import DerivedNetwork
from ifnas.nn.macro import MacroConfig
from ifnas.search.derive import derive
from ifnas.search.loop import SearchLoop
from ifnas.train.retrain import RetrainLoop
from tests.conftest import make_supernet
from tests.test_distributed import ROOT, subprocess_env
from tests.test_run import TINY

MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)


def ifnas_cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "ifnas", *argv]


def _pruned_mid_epoch(path) -> dict | None:
    """The search position of the checkpoint at `path` if it lies inside an epoch after the
    first pruning; `None` otherwise (or while there is no checkpoint yet)."""
    try:
        checkpoint = load_checkpoint(path)
    except FileNotFoundError:
        return None
    search = checkpoint["search"]
    if checkpoint["phase"] == "search" and search["epoch_iter"] > 0 and search["prune_events"]:
        return search["position"]
    return None


@pytest.mark.slow
def test_search_killed_mid_epoch_resumes_to_the_same_genotype(tmp_path):
    args = ["--config", "configs/digits.yaml", *TINY, "retrain.epochs=0"]
    args.append("checkpoint_every_iters=3")
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    run = dict(cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reference = subprocess.Popen(ifnas_cli("search", "--out", str(reference_dir), *args), **run)
    victim = subprocess.Popen(ifnas_cli("search", "--out", str(killed_dir), *args), **run)

    # Stop the search as soon as its checkpoint lies inside an epoch after some pruning; kill
    # it if the checkpoint still does once it is stopped (it may have moved on meanwhile).
    deadline = time.monotonic() + 240
    position = None
    while position is None:
        assert victim.poll() is None, "the search ended before a mid-epoch checkpoint was seen"
        assert time.monotonic() < deadline, "no mid-epoch checkpoint after pruning in time"
        if _pruned_mid_epoch(killed_dir / "checkpoint.pt") is not None:
            victim.send_signal(signal.SIGSTOP)
            position = _pruned_mid_epoch(killed_dir / "checkpoint.pt")
            victim.send_signal(signal.SIGKILL if position is not None else signal.SIGCONT)
        time.sleep(0.01)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert not (killed_dir / "genotype.json").exists()
    assert position["phase"] == "cycles" and position["epoch_iter"] > 0

    resumed = subprocess.run(
        ifnas_cli("search", "--out", str(killed_dir), "--resume"), timeout=240, **run
    )
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert reference.wait(timeout=240) == 0, reference.stderr.read().decode()[-3000:]
    genotype = (killed_dir / "genotype.json").read_bytes()
    assert genotype == (reference_dir / "genotype.json").read_bytes()
    a = load_checkpoint(killed_dir / "checkpoint.pt")
    b = load_checkpoint(reference_dir / "checkpoint.pt")
    for key, value in b["search"]["supernet"].items():
        assert torch.equal(a["search"]["supernet"][key], value), key
    assert a["search_val_top1"] == b["search_val_top1"]


def test_a_crash_mid_write_leaves_the_previous_checkpoint_whole(tmp_path):
    # A process that saves one checkpoint, then dies by SIGKILL halfway through the next.
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from ifnas.checkpoint import save_checkpoint

        path = {str(tmp_path / "checkpoint.pt")!r}
        save_checkpoint(path, {{"step": 1, "w": torch.ones(1000)}})

        def save_half_then_die(obj, f):
            f.write(b"PK" + bytes(4096))
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = save_half_then_die
        save_checkpoint(path, {{"step": 2, "w": torch.zeros(1000)}})
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(), capture_output=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    checkpoint = load_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["step"] == 1 and torch.equal(checkpoint["w"], torch.ones(1000))


# ---- strict loading ----------------------------------------------------------------------


def _loader():
    data = torch.utils.data.TensorDataset(torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,)))
    return make_loader(data, 8, True, 0)


def _retrain_loop(genotype: Genotype, **cfg) -> RetrainLoop:
    torch.manual_seed(0)
    net = DerivedNetwork(genotype, auxiliary=cfg.get("auxiliary_weight", 0) > 0)
    return RetrainLoop(net, RetrainConfig(epochs=2, **cfg), _loader(), torch.device("cpu"))


def _trained_state(loop) -> dict:
    loop.train_epoch()
    return loop.state_dict()


def _snapshot(loop: RetrainLoop) -> tuple:
    net = {k: v.clone() for k, v in loop.net.state_dict().items()}
    return net, repr(loop.optimizer.state_dict()), loop.epoch


def _genotype(macro=MACRO, stages=(4, 5, 4), **kwargs) -> Genotype:
    return derive(make_supernet(L=2, stages=stages, macro=macro, **kwargs))


@pytest.mark.parametrize(
    "other,expected",
    [
        (lambda: _genotype(stages=(4, 6, 4)), "missing from the checkpoint"),
        (lambda: _genotype(macro=MacroConfig(1, 10, 8, width=8)), "different shape"),
        (lambda: _genotype(), "not in the model"),  # the checkpoint has an auxiliary head
    ],
    ids=["another-genotype", "other-widths", "auxiliary-head"],
)
def test_a_checkpoint_of_another_network_is_refused_and_nothing_loads(other, expected):
    state = _trained_state(_retrain_loop(_genotype(), auxiliary_weight=0.4))
    loop = _retrain_loop(other())
    before = _snapshot(loop)
    with pytest.raises(ValueError, match="nothing was loaded") as error:
        loop.load_state_dict(state)
    assert expected in str(error.value)
    after = _snapshot(loop)
    assert before[1:] == after[1:]
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])


def test_optimizer_state_that_does_not_fit_is_refused_before_the_weights_load():
    state = _trained_state(_retrain_loop(_genotype()))
    first = next(iter(state["optimizer"]["state"]))
    momentum = state["optimizer"]["state"][first]["momentum_buffer"]
    state["optimizer"]["state"][first]["momentum_buffer"] = torch.zeros(momentum.numel() + 1)
    loop = _retrain_loop(_genotype())
    before = _snapshot(loop)
    with pytest.raises(ValueError, match=r"momentum_buffer of shape \(\d+,\)"):
        loop.load_state_dict(state)
    assert all(torch.equal(before[0][k], v) for k, v in loop.net.state_dict().items())
    assert repr(loop.optimizer.state_dict()) == before[1]


def test_a_search_checkpoint_of_another_space_is_refused():
    cfg = SearchConfig(epochs=1, weight_warmup_epochs=0, step_iters=1, budget_madds=10**9)
    state = SearchLoop(
        make_supernet(L=2, macro=MACRO), cfg, _loader(), torch.device("cpu")
    ).state_dict()
    loop = SearchLoop(make_supernet(L=3, macro=MACRO), cfg, _loader(), torch.device("cpu"))
    with pytest.raises(ValueError, match="checkpoint does not match the search") as error:
        loop.load_state_dict(state)
    assert "different shape" in str(error.value) and "gates.s0_g2" in str(error.value)


def test_weights_load_from_plain_dataparallel_and_ddp_models_alike():
    net = DerivedNetwork(_genotype())
    plain = {
        k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()
    }
    wrapped = {f"module.{k}": v for k, v in plain.items()}  # DataParallel and DDP prefix keys
    for state in (plain, wrapped):
        target = DerivedNetwork(_genotype())
        load_model_state(nn.DataParallel(target), state)
        assert all(torch.equal(target.state_dict()[k], v) for k, v in plain.items())


def test_the_search_checkpoint_holds_its_place_in_the_cycle(tmp_path):
    cfg = SearchConfig(epochs=2, weight_warmup_epochs=1, alpha_delay_epochs=0, step_iters=1)
    loop = SearchLoop(make_supernet(L=2, macro=MACRO), cfg, _loader(), torch.device("cpu"))
    saved = []
    loop.train_epoch(save=lambda: saved.append(loop.state_dict()), save_every=1)
    assert [s["epoch_iter"] for s in saved] == [1, 2, 3]  # not after the last batch (4)
    loop.train_epoch()
    state = loop.state_dict()
    assert state["position"] == {
        "epoch": 2,
        "epoch_iter": 0,
        "phase": "cycles",
        "cycle": 1,
        "step": "S0",
        "step_iter": 0,
    }
    save_checkpoint(tmp_path / "c.pt", {"search": state})
    assert load_checkpoint(tmp_path / "c.pt")["search"]["position"]["step"] == "S0"


def _truncated(path):
    save_checkpoint(path, {"config": {}, "phase": "search", "rng": [torch.zeros(1000)]})
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "write,message",
    [
        (lambda p: p.write_text("not a checkpoint\n"), "is corrupt or truncated"),
        (lambda p: p.write_bytes(b""), "is corrupt or truncated"),
        (_truncated, "is corrupt or truncated"),
        (lambda p: torch.save({"a": 1}, p), r"is not an ifnas checkpoint: it holds a dict without"),
        (lambda p: torch.save([1, 2], p), "is not an ifnas checkpoint: it holds a list"),
    ],
    ids=["text", "empty", "truncated", "other-dict", "list"],
)
@pytest.mark.parametrize("with_config", [True, False], ids=["config", "own-config"])
def test_resume_from_a_corrupt_checkpoint_names_the_file(
    tmp_path, capsys, write, message, with_config
):
    from ifnas.cli import main

    write(tmp_path / "checkpoint.pt")
    config = ["--config", "configs/digits.yaml"] if with_config else []
    assert main(["search", *config, "--out", str(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifnas search: error: "), err
    assert re.search(message, err), err
    assert str(tmp_path / "checkpoint.pt") in err
