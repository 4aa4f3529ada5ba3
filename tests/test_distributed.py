"""Data parallelism: 2-process gloo runs of the CLI under torchrun, and the collectives alone.

The torchrun tests run `tests/torchrun_probe.py`, which runs `ifnas` and saves what each
process ended with, so the processes can be compared here bit for bit.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ifnas import distributed
from ifnas.genotype import Genotype
from ifnas.metrics import evaluate
from ifnas.nn.macro import MacroConfig
from ifnas.search.derive import derive
from tests.conftest import make_supernet
from tests.test_run import TINY

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("torchrun_probe.py")

# The tiny search of tests/test_run.py, with its batch of 128 split over 2 processes.
TINY_SEARCH = [o for o in TINY if not o.startswith("data.batch_size=")] + [
    "data.batch_size=64",
    "checkpoint_every_iters=4",
]

DIGITS_MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def torchrun(tmp_path: Path, *argv: str) -> list[dict]:
    """Run `ifnas argv` on 2 gloo processes; return what each process ended with."""
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(PROBE),
        *argv,
    ]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=subprocess_env(PROBE_DIR=str(probe_dir)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return [torch.load(probe_dir / f"rank{r}.pt", weights_only=False) for r in range(2)]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ between ranks: {different}"


@pytest.mark.slow
def test_two_process_search_keeps_one_architecture(tmp_path):
    out = tmp_path / "run"
    rank0, rank1 = torchrun(
        tmp_path,
        "search",
        "--config",
        "configs/digits.yaml",
        "--out",
        str(out),
        *TINY_SEARCH,
        "retrain.epochs=0",
    )
    a, b = rank0["search"], rank1["search"]

    # Pruning happened: masks lost entries they started with.
    assert a["prune_events"], "no gate was pruned: the test would prove nothing about masks"
    pruned = [
        k
        for k in a["supernet"]
        if k.endswith("_mask") and not torch.equal(a["supernet"][k], a["initial"][k])
    ]
    assert pruned
    # Gates (logits), masks, weights and BN statistics are the same bit for bit, and so is
    # the genotype; the one on disk is it.
    assert_same_tensors(a["supernet"], b["supernet"])
    assert a["prune_events"] == b["prune_events"]
    assert a["genotype"] == b["genotype"]
    assert Genotype.load(out / "genotype.json").to_dict() == a["genotype"]

    # Rank 0 alone wrote: one TensorBoard events file, and a log without other ranks' lines.
    assert len(list((out / "tb").iterdir())) == 1
    assert "[rank 1]" not in (out / "log.txt").read_text()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["world_size"] == 2


@pytest.mark.slow
def test_two_process_retrain_keeps_one_network(tmp_path):
    genotype = derive(make_supernet(L=2, stages=(4, 5, 4), macro=DIGITS_MACRO))
    genotype.save(tmp_path / "genotype.json")
    rank0, rank1 = torchrun(
        tmp_path,
        "retrain",
        "--genotype",
        str(tmp_path / "genotype.json"),
        "--config",
        "configs/digits.yaml",
        "--out",
        str(tmp_path / "run"),
        "data.batch_size=64",
        "retrain.epochs=2",
        "retrain.warmup_epochs=1",
        "retrain.label_smoothing=0.1",
        "retrain.auxiliary_weight=0.4",
        "checkpoint_every_iters=4",
    )
    a, b = rank0["retrain"], rank1["retrain"]
    assert any(k.startswith("aux_head.") for k in a["net"])
    changed = [k for k in a["net"] if not torch.equal(a["net"][k], a["initial"][k])]
    assert len(changed) > len(a["net"]) // 2, "training moved almost nothing"
    assert_same_tensors(a["net"], b["net"])
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"processes": 2' in summary and '"global_batch": 128' in summary


# ---- the collectives, on 2 processes started with torch.multiprocessing -------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collectives(rank: int, port: int, failures) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        _check_collectives(rank)
    except BaseException as error:  # reported to the parent, which fails the test
        failures.put(f"rank {rank}: {type(error).__name__}: {error}")
        raise
    finally:
        dist.destroy_process_group()


def _no_run_here():
    raise FileNotFoundError("no run here")


def _check_collectives(rank: int) -> None:
    # average_gradients: the mean where used, None where no process used a parameter.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    distributed.broadcast_module(net)
    (net[0](torch.full((1, 3), float(rank + 1))).sum()).backward()
    distributed.average_gradients(net)
    assert net[1].weight.grad is None and net[1].bias.grad is None
    assert torch.allclose(net[0].weight.grad, torch.full((2, 3), 1.5))

    # A parameter used on one process only: both raise, nothing hangs.
    net.zero_grad(set_to_none=True)
    module = net[0] if rank == 0 else net[1]
    module(torch.ones(1, module.in_features)).sum().backward()
    with pytest.raises(RuntimeError, match="ran different networks"):
        distributed.average_gradients(net)

    # check_identical names what differs and where.
    same = {"a": torch.arange(4.0)}
    distributed.check_identical(same, "x")
    with pytest.raises(RuntimeError, match=r"rank\(s\) \[1\].*: b"):
        distributed.check_identical({"a": torch.zeros(2), "b": torch.tensor([rank])}, "the gates")
    with pytest.raises(RuntimeError, match="genotype differs"):
        distributed.check_identical_object({"nodes": rank}, "the genotype")

    # on_main: rank 0's result, or its error, everywhere.
    assert distributed.on_main(lambda: f"from {distributed.rank()}") == "from 0"
    with pytest.raises(FileNotFoundError, match="no run here"):
        distributed.on_main(_no_run_here)

    # evaluate over shards: each process counts its shard, every process gets the total.
    from ifnas.data import make_loader

    x = torch.arange(10.0).reshape(10, 1)
    y = (torch.arange(10) < 3).long()  # 3 of 10 are class 1
    data = torch.utils.data.TensorDataset(x, y)
    loader = make_loader(data, 4, False, 0, num_replicas=2, rank=rank)
    assert len(loader.sampler) == 5
    always_one = nn.Linear(1, 2)
    with torch.no_grad():
        always_one.weight.zero_()
        always_one.bias.copy_(torch.tensor([0.0, 1.0]))
    assert evaluate(always_one, loader, torch.device("cpu")) == pytest.approx(0.3)


@pytest.mark.slow
def test_collectives_on_two_processes():
    failures = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_collectives, args=(_free_port(), failures), nprocs=2)
    except mp.ProcessRaisedException:
        pass
    messages = []
    while not failures.empty():
        messages.append(failures.get())
    assert not messages, "\n".join(messages)


def test_a_single_process_needs_no_process_group():
    with distributed.launched():
        assert not distributed.is_initialized()
        assert distributed.rank() == 0 and distributed.world_size() == 1
        assert distributed.is_main()
        assert distributed.on_main(lambda: 7) == 7
        assert distributed.sum_over_ranks([1.0, 2.0]) == [1.0, 2.0]
        net = nn.Linear(2, 1)
        net(torch.ones(1, 2)).sum().backward()
        grad = net.weight.grad.clone()
        distributed.average_gradients(net)
        assert torch.equal(net.weight.grad, grad)
        distributed.check_identical({"w": net.weight}, "weights")


def test_sync_bn_on_cpu_processes_is_refused_before_training(monkeypatch):
    import ifnas.run as run_module
    from ifnas.config import ConfigError, load_config

    cfg = load_config(None, ["retrain.sync_bn=true"])
    run_module.check_sync_bn(cfg, torch.device("cpu"))  # one process: plain BN is the same
    monkeypatch.setattr(run_module, "world_size", lambda: 2)
    with pytest.raises(ConfigError, match="retrain.sync_bn: torch's SyncBatchNorm needs CUDA"):
        run_module.check_sync_bn(cfg, torch.device("cpu"))
