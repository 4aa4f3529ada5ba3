"""The retrain recipe: warm-up and cosine, lr scaling, auxiliary head, label smoothing, AMP."""

import json
import math

import pytest
import torch

import ifnas.run as run_module
from ifnas.checkpoint import load_checkpoint
from ifnas.cli import main
from ifnas.config import ConfigError, RetrainConfig, SearchConfig, load_config
from ifnas.data import make_loader
from ifnas.nn.derived import DerivedNetwork
from ifnas.nn.macro import MacroConfig
from ifnas.run import run_retrain
from ifnas.search.derive import derive
from ifnas.search.loop import SearchLoop
from ifnas.train.retrain import RetrainLoop, scaled_lr, warmup_cosine
from tests.conftest import make_supernet

DIGITS = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)

# The paper's recipe on digits: label smoothing, auxiliary head, warm-up, bf16, channels-last.
RECIPE = [
    "data.batch_size=128",
    "retrain.epochs=3",
    "retrain.lr=0.1",
    "retrain.lr_batch=256",
    "retrain.warmup_epochs=1",
    "retrain.label_smoothing=0.1",
    "retrain.auxiliary_weight=0.4",
    "retrain.amp=bf16",
    "retrain.channels_last=true",
    "retrain.weight_decay=3e-5",
]


@pytest.fixture(scope="module")
def genotype():
    return derive(make_supernet(L=2, stages=(4, 5, 4), macro=DIGITS))


def test_warmup_then_cosine():
    factor = warmup_cosine(4, 12)
    assert [factor(t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == 1.0 and factor(8) == pytest.approx(0.5) and factor(12) == 0.0
    assert all(factor(t) >= factor(t + 1) for t in range(4, 12))
    assert warmup_cosine(0, 10)(0) == 1.0


def test_lr_scales_linearly_with_the_global_batch():
    assert scaled_lr(RetrainConfig(lr=0.5, lr_batch=1024), 1024) == 0.5
    assert scaled_lr(RetrainConfig(lr=0.5, lr_batch=1024), 256) == 0.125
    assert scaled_lr(RetrainConfig(lr=0.5), 256) == 0.5


def _loader(n=64, batch=16):
    data = torch.utils.data.TensorDataset(torch.randn(n, 1, 8, 8), torch.randint(0, 10, (n,)))
    return make_loader(data, batch, True, 0)


def test_the_loop_follows_the_schedule_and_uses_the_auxiliary_loss(genotype):
    torch.manual_seed(0)
    net = DerivedNetwork(genotype, auxiliary=True)
    cfg = RetrainConfig(epochs=2, lr=0.4, lr_batch=64, warmup_epochs=1, auxiliary_weight=0.4)
    loop = RetrainLoop(net, cfg, _loader(), torch.device("cpu"))
    assert loop.lr == pytest.approx(0.1)  # 0.4 at batch 64, here 16 per iteration
    lrs = []
    loop.train_epoch(on_iter=lambda _: lrs.append(loop.optimizer.param_groups[0]["lr"]))
    loop.train_epoch(on_iter=lambda _: lrs.append(loop.optimizer.param_groups[0]["lr"]))
    expected = [0.1 * warmup_cosine(4, 8)(t) for t in range(1, 9)]  # after each step
    assert lrs == pytest.approx(expected)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.aux_head.parameters())

    net.eval()
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # no auxiliary output at evaluation


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_keeps_parameters_and_gates_float32(genotype, amp):
    torch.manual_seed(0)
    net = DerivedNetwork(genotype, auxiliary=True)
    cfg = RetrainConfig(epochs=1, amp=amp, channels_last=True, auxiliary_weight=0.4)
    loop = RetrainLoop(net, cfg, _loader(), torch.device("cpu"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    train = loop.train_epoch()
    assert math.isfinite(train["loss"])
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(before["head.4.weight"], net.state_dict()["head.4.weight"])
    assert loop.state_dict()["precision"]["amp"] == amp

    supernet = make_supernet(L=2, stages=(4, 5, 4), macro=DIGITS)
    scfg = SearchConfig(
        epochs=2, weight_warmup_epochs=1, alpha_delay_epochs=0, step_iters=1, amp=amp
    )
    search = SearchLoop(supernet, scfg, _loader(), torch.device("cpu"))
    search.train_epoch()
    start = {k: g.beta.detach().clone() for k, g in supernet.gates.items()}
    search.train_epoch()
    assert all(p.dtype == torch.float32 for p in supernet.arch_parameters())
    assert any(not torch.equal(start[k], g.beta) for k, g in supernet.gates.items())


@pytest.mark.slow
def test_retrain_runs_the_recipe_and_resumes_inside_an_epoch_exactly(genotype, tmp_path):
    genotype.save(tmp_path / "genotype.json")
    cfg = load_config("configs/digits.yaml", RECIPE + ["checkpoint_every_iters=4"])
    reference = run_retrain(cfg, genotype, tmp_path / "reference")
    assert reference["command"] == "retrain"
    assert reference["global_batch"] == 128 and reference["lr"] == pytest.approx(0.05)
    for name in ("summary.json", "genotype.json", "config.yaml", "checkpoint.pt"):
        assert (tmp_path / "reference" / name).is_file(), name
    assert json.loads((tmp_path / "reference" / "summary.json").read_text()) == reference

    # A crash right after the first checkpoint inside the second epoch, then --resume.
    real_save = run_module.save_checkpoint

    def save_then_crash(path, payload):
        real_save(path, payload)
        if payload["retrain"]["epoch"] == 1 and payload["retrain"]["epoch_iter"] > 0:
            raise KeyboardInterrupt

    run_module.save_checkpoint = save_then_crash
    try:
        with pytest.raises(KeyboardInterrupt):
            run_retrain(cfg, genotype, tmp_path / "resumed")
    finally:
        run_module.save_checkpoint = real_save
    interrupted = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["retrain"]
    # 11 iterations an epoch, a checkpoint every 4: the crash follows iteration 12.
    assert (interrupted["epoch"], interrupted["epoch_iter"], interrupted["global_iter"]) == (
        1,
        1,
        12,
    )
    resumed = run_retrain(cfg, None, tmp_path / "resumed", resume=True)

    assert resumed["retrain_val_top1"] == reference["retrain_val_top1"]
    a = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["retrain"]["net"]
    b = load_checkpoint(tmp_path / "reference" / "checkpoint.pt")["retrain"]["net"]
    assert any(k.startswith("aux_head.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_retrain_refuses_a_genotype_that_does_not_fit_the_data(tmp_path):
    other = derive(make_supernet(L=2, stages=(4, 5, 4), macro=MacroConfig(3, 100, 8, 4)))
    cfg = load_config("configs/digits.yaml", ["retrain.epochs=1"])
    with pytest.raises(ConfigError, match="in_channels: genotype 3, data 1") as error:
        run_retrain(cfg, other, tmp_path)
    assert "num_classes: genotype 100, data 10" in str(error.value)
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["retrain", "--config", "configs/digits.yaml"], "needs --genotype"),
        (["retrain", "--genotype", "g.json", "--config", "configs/digits.yaml"], "g.json"),
        (["retrain", "--genotype", "g.json", "--resume"], "--resume needs --out"),
    ],
)
def test_retrain_command_errors(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(run_module.Path(__file__).resolve().parents[2] / "configs")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_search_and_retrain_runs_do_not_resume_each_other(genotype, tmp_path, monkeypatch):
    cfg = load_config("configs/digits.yaml", ["retrain.epochs=1", "data.batch_size=256"])
    run_retrain(cfg, genotype, tmp_path)
    with pytest.raises(ConfigError, match="holds a run of 'ifnas retrain'"):
        run_module.run_search(cfg, tmp_path, resume=True)
