"""Every strategy end to end on digits through `run_search`, and resumed exactly."""

import json

import pytest
import torch

from ifnas.config import STRATEGIES, load_config
from ifnas.genotype import Genotype
from ifnas.metrics import genotype_cost
from ifnas.run import run_search
from ifnas.search.loop import SearchLoop
from ifnas.search.strategies.darts import DartsLoop
from tests.test_run import TINY, _Interrupt, _interrupting

BUDGET = 50_000  # the full supernet of TINY has 84K MAdds
TINY_STRATEGIES = TINY + [
    f"search.budget_madds={BUDGET}",
    "search.darts_arch_lr=0.01",
    "retrain.epochs=1",
]


def tiny(*extra):
    return load_config(None, TINY_STRATEGIES + list(extra))


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy,extra",
    [(name, []) for name in STRATEGIES]
    + [("ifnas", ["search.interleaved_edges=1"]), ("darts", ["search.derive=keep_one"])],
    ids=list(STRATEGIES) + ["ifnas-interleaved", "darts-keep_one"],
)
def test_strategy_runs_end_to_end_within_the_budget(tmp_path, strategy, extra):
    summary = run_search(tiny(f"strategy={strategy}", *extra), tmp_path)
    assert summary["strategy"] == strategy
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "arch.png").read_bytes()[:4] == b"\x89PNG"
    genotype = Genotype.load(tmp_path / "genotype.json")
    cost = genotype_cost(genotype)
    assert summary["madds"] == cost["madds"] and summary["depth"] == genotype.depth()
    assert 0.0 <= summary["retrain_val_top1"] <= 1.0
    if "search.derive=keep_one" in extra:
        assert all(len(p) == 1 for st in genotype.stages for p in st.inputs.values())
    else:
        assert summary["budget_met"] and cost["madds"] <= BUDGET
    if strategy == "random":
        assert summary["search_epochs"] == 0 and summary["search_val_top1"] is None
    else:
        assert summary["search_epochs"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy,extra,loop",
    [("pcdarts", [], DartsLoop), ("ifnas", ["search.interleaved_edges=2"], SearchLoop)],
)
def test_resumed_search_ends_like_an_uninterrupted_one(
    tmp_path, monkeypatch, strategy, extra, loop
):
    """The checkpoint holds what each strategy adds: DARTS' `none` logits and Adam state, the
    interleaved draws' position."""
    cfg = tiny(f"strategy={strategy}", *extra)
    reference = run_search(cfg, tmp_path / "reference")
    with monkeypatch.context() as patch:
        _interrupting(loop, patch, 3)
        with pytest.raises(_Interrupt):
            run_search(cfg, tmp_path / "resumed")
    summary = run_search(cfg, tmp_path / "resumed", resume=True)
    genotypes = [(tmp_path / d / "genotype.json").read_text() for d in ("reference", "resumed")]
    assert genotypes[0] == genotypes[1]
    for key in ("madds", "search_iters", "search_val_top1", "retrain_val_top1"):
        assert summary[key] == reference[key], key


@pytest.mark.slow
def test_darts_resumed_inside_an_epoch_reads_the_same_architecture_batches(tmp_path, monkeypatch):
    cfg = tiny("strategy=darts", "checkpoint_every_iters=3")
    reference = run_search(cfg, tmp_path / "reference")
    real = DartsLoop.step

    def step(self, x, y, activation=None):
        if self.global_iter == 19:  # the checkpoint of iteration 18 is 3 into epoch 3
            raise _Interrupt
        return real(self, x, y, activation)

    with monkeypatch.context() as patch:
        patch.setattr(DartsLoop, "step", step)
        with pytest.raises(_Interrupt):
            run_search(cfg, tmp_path / "resumed")
    summary = run_search(cfg, tmp_path / "resumed", resume=True)
    genotypes = [(tmp_path / d / "genotype.json").read_text() for d in ("reference", "resumed")]
    assert genotypes[0] == genotypes[1]
    for key in ("search_iters", "search_val_top1", "retrain_val_top1"):
        assert summary[key] == reference[key], key


@pytest.mark.slow
def test_two_process_pcdarts_search_keeps_one_architecture(tmp_path):
    """Bi-level search under torchrun: both processes split the same training set, step the
    same architecture, and derive the same genotype."""
    from tests.test_distributed import TINY_SEARCH, assert_same_tensors, torchrun

    out = tmp_path / "run"
    rank0, rank1 = torchrun(
        tmp_path,
        "search",
        "--config",
        "configs/digits.yaml",
        "--out",
        str(out),
        *TINY_SEARCH,
        "strategy=pcdarts",
        f"search.budget_madds={BUDGET}",
        "search.darts_arch_lr=0.01",
        "retrain.epochs=0",
    )
    a, b = rank0["search"], rank1["search"]
    learned = [
        k
        for k in a["supernet"]
        if k.startswith(("none_logits.", "gates."))
        and k.endswith(("alpha", "beta"))
        and not torch.equal(a["supernet"][k], a["initial"][k])
    ]
    assert learned, "no architecture parameter moved: the test would prove nothing"
    assert_same_tensors(a["supernet"], b["supernet"])
    assert a["genotype"] == b["genotype"]
    assert Genotype.load(out / "genotype.json").to_dict() == a["genotype"]
    assert genotype_cost(Genotype.load(out / "genotype.json"))["madds"] <= BUDGET
