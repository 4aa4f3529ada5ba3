"""The benchmarks run and compare like with like; none of this times anything.

The naive DARTS baseline must compute the same network as ours (otherwise the benchmark compares
two different things), every search-step variant and op provider must run once on tiny sizes,
and `ifnas bench` must write its table, so that the benchmark code cannot rot.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from ifnas import cli
from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Activation, Supernet
from ifnas.space.lchain import OPS, LChainSpace

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# Our SepConv3x3 starts at its depthwise convolution; DARTS' Sequential starts with a ReLU.
SEP_CONV_LAYERS = {"dw1": 1, "pw1": 2, "bn1": 3, "dw2": 5, "pw2": 6, "bn2": 7}


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("bench_under_test", BENCHMARKS / "bench.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _naive_like(ours: Supernet, naive_darts):
    """A naive DARTS supernet holding `ours`'s weights and gates."""
    naive = naive_darts.NaiveDartsSupernet(ours.space, ours.macro)
    state = {}
    for name, value in ours.state_dict().items():
        parts = name.split(".")
        if parts[0] == "stages":
            s, edge, layer, leaf = parts[1], parts[3], parts[5], parts[6]
            name = f"cells.{s}.{edge}._ops.0.op.{SEP_CONV_LAYERS[layer]}.{leaf}"
        elif parts[0] == "gates":
            continue
        state[name] = value
    missing, unexpected = naive.load_state_dict(state, strict=False)
    assert unexpected == [] and all(n.startswith(("betas", "alphas")) for n in missing)

    with torch.no_grad():
        for s in range(len(ours.space.stages)):
            for i, j in ours.space.edges(s):
                gates, row, col = ours._locate(s, i, j)
                naive.betas[s][j, j - i - 1] = gates.beta[row, col]
                naive.alphas[s][j, j - i - 1] = gates.alpha[row, col]
    return naive


@pytest.mark.parametrize("L, stages", [(1, (2, 3)), (3, (5, 4))])
def test_naive_baseline_computes_our_network(bench, L, stages):
    naive_darts = bench.search_step.naive_darts
    torch.manual_seed(L)
    macro = MacroConfig(in_channels=3, num_classes=5, input_size=8, width=4)
    ours = Supernet(LChainSpace(L, stages), macro)
    with torch.no_grad():
        for p in ours.arch_parameters():
            p.normal_()
    ours.activate(Activation(group=None, learn_beta=True, learn_alpha=True))
    naive = _naive_like(ours, naive_darts)
    assert OPS == ("sep_conv_3x3", "skip_connect")  # the order of NaiveMixedOp's ops
    x = torch.randn(3, 3, 8, 8)

    outputs = [net(x) for net in (ours, naive)]
    for y in outputs:
        y.square().sum().backward()
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)

    tol = {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(ours.stem[0].weight.grad, naive.stem[0].weight.grad, **tol)
    for s in range(len(stages)):
        for i, j in ours.space.edges(s):
            gates, row, col = ours._locate(s, i, j)
            where = f"stage {s}, edge ({i}, {j})"
            torch.testing.assert_close(
                gates.beta.grad[row, col], naive.betas[s].grad[j, j - i - 1], **tol, msg=where
            )
            torch.testing.assert_close(
                gates.alpha.grad[row, col], naive.alphas[s].grad[j, j - i - 1], **tol, msg=where
            )


def test_search_step_runs_every_variant(bench):
    search_step = bench.search_step
    case = search_step.StepCase(L=2, stages=(3, 4), width=4, batch=2, input_size=8)
    report = search_step.run(case, reps=1, warmup=0)

    variants = [r.variant for r in report.results]
    assert variants == ["naive-full", "ours-full", "ours-S0", "ours-S1", "ours-cycle"]
    for r in report.results:
        assert r.ms > 0 and r.images_per_s == pytest.approx(1e3 * case.batch / r.ms), r
        assert r.peak_mb > 0, r
    steps = [report.get(v) for v in ("ours-full", "ours-S0", "ours-S1")]
    cycle = report.get("ours-cycle")
    assert cycle.ms == pytest.approx(sum(r.ms for r in steps) / 3)
    assert cycle.peak_max_mb == max(r.peak_mb for r in steps)


def _tiny_plan(bench):
    return bench.Plan(
        op_cases=[
            bench.OpCase("tiny", 3, 1_001, with_compile=True),
            bench.OpCase("tiny", 2, 999, with_compile=False),
        ],
        step_cases=[bench.search_step.StepCase(L=1, stages=(2, 3), width=4, batch=2, input_size=8)],
        op_reps=1,
        step_reps=1,
    )


def test_bench_writes_its_table(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.bench_op, "copy_step", _small_copy(bench.bench_op.copy_step))
    results = bench.run(_tiny_plan(bench), "cpu")
    results["quick"] = True
    results["machine"]["allocator"] = "default"
    table = bench.write(results, tmp_path)

    stored = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "table.md").read_text() == table
    assert [c["K"] for c in stored["op"]] == [3, 2]
    providers = set(bench.bench_op.providers("cpu"))
    assert {"naive", "stack", "compile", "ours-cpp"} <= providers
    for line in providers:
        assert f"| tiny | 3 | 1,001 | {line} |" in table
    assert "| tiny | 2 | 999 | compile |" not in table  # only where asked for
    assert "| tiny | 2 | 999 | ours-cpp |" in table
    for variant in bench.SEARCH_VARIANTS:
        assert f"| 1 | {variant} | 2 |" in table


def _small_copy(copy_step):
    def small(device, numel=None):
        return copy_step(device, numel or 1 << 16)

    return small


def test_plans_hold_the_judged_cases(bench):
    quick = bench.plan(quick=True, device="cpu")
    assert (quick.op_cases[0].layer, quick.op_cases[0].K, quick.op_cases[0].numel) == bench.TARGET
    assert quick.op_cases[0].with_compile
    assert {c.K for c in quick.op_cases} == {4, 8, 12, 16}
    assert [c.L for c in quick.step_cases] == [4, 6, 8]
    assert all(c.input_size == 32 and c.batch == 16 for c in quick.step_cases)

    full = bench.plan(quick=False, device="cpu")
    assert {c.layer for c in full.op_cases} == {"target", *bench.LAYER_SHAPES}
    assert all(c.with_compile for c in full.op_cases)
    gpu = bench.plan(quick=False, device="cuda", batch=24)
    assert all(
        (c.input_size, c.width, c.stem_strides, c.batch) == (224, 36, (2, 2), 24)
        for c in gpu.step_cases
    )


def test_ifnas_bench_runs_the_script(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ifnas_bench", bench)
    monkeypatch.setattr(bench, "plan", lambda quick, device, batch=None: _tiny_plan(bench))
    monkeypatch.setattr(bench.bench_op, "copy_step", _small_copy(bench.bench_op.copy_step))
    out = tmp_path / "bench"

    assert cli.main(["bench", "--quick", "--default-malloc", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| 1 | ours-cycle | 2 |" in printed and "--quick" in printed
    assert json.loads((out / "results.json").read_text())["quick"] is True


def test_ifnas_bench_without_the_source_tree(tmp_path, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "ifnas_bench", raising=False)
    monkeypatch.setattr(cli, "BENCH_SCRIPT", tmp_path / "benchmarks" / "bench.py")
    assert cli.main(["bench", "--quick"]) == 2
    error = capsys.readouterr().err
    assert "benchmarks/bench.py does not exist" in error and "clone the repository" in error


def test_ifnas_bench_rejects_a_bad_batch(bench, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ifnas_bench", bench)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--batch", "0"])
    assert exit_.value.code == 2
    assert "--batch must be a positive integer, got 0" in capsys.readouterr().err


def test_a_busy_machine_is_flagged_in_the_table(bench):
    results = {
        "date": "2026-12-04T08:00:00",
        "machine": {"cpu": "test CPU", "threads": 2, "torch": "x", "allocator": "default"},
        "op": [],
        "search_step": [],
        "wall_s": 1.0,
    }
    results["machine"].update(load_average_1min=1.9, load_average_1min_end=2.8)
    assert bench.busy_warning(results) is None
    assert "Warning" not in bench.markdown(results)

    results["machine"]["load_average_1min_end"] = 4.2
    warning = bench.busy_warning(results)
    assert warning is not None and "load average up to 4.20 against 2 threads" in warning
    assert f"**Warning:** {warning}." in bench.markdown(results)

    results["machine"]["gpu"] = "test GPU"  # GPU timings do not share the CPU's cores
    assert bench.busy_warning(results) is None
