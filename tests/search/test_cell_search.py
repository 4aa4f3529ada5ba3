"""Search in the cell spaces: eq. 3, pruning that keeps every node, DARTS' derivation, e2e."""

import math

import pytest
import torch

from ifnas.config import ConfigError, load_config
from ifnas.nn.supernet import Activation
from ifnas.run import run_search
from ifnas.search.cell_search import cell_discretization_loss, derive_cells, prune_cells
from ifnas.spaces import load_genotype
from tests.nn.test_cells_supernet import make


@pytest.fixture
def net():
    net = make("darts_cell", cells=(1, 0, 1), seed=5)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 1.5)
    return net


def test_eq3_over_every_cell_by_hand(net):
    net.mask_edge(0, 1, 4)
    net.activate(Activation(None, True, True))
    edges, ops = [], []
    for slot in range(2):
        for j, pairs in net.live_inputs(slot).items():
            edges += [net.gate(slot, i, j) for i in sorted({i for i, _ in pairs})]
            ops += [net.gate(slot, i, j, op) for i, op in pairs]
    me, mo = sum(edges) / len(edges), sum(ops) / len(ops)
    by_hand = 0.3 * sum(math.log1p(g / me) for g in edges) + 0.7 * sum(
        math.log1p(g / mo) for g in ops
    )
    assert cell_discretization_loss(net, 0.3, 0.7).item() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("kind,keep", [("darts_cell", 2), ("goldnas_cell", 1)])
def test_pruning_keeps_every_node_alive(kind, keep):
    net = make(kind, cells=(1, 0, 1))
    with torch.no_grad():
        for gates in net.gates.values():
            gates.beta.fill_(-9.0)  # every edge far below the threshold
    report = prune_cells(net, 0.01)
    for slot in range(net.space.num_slots()):
        for j, pairs in net.live_inputs(slot).items():
            assert len({i for i, _ in pairs}) == keep, (slot, j)
    assert report.guarded and report.edges


def test_darts_derivation_keeps_the_two_strongest_inputs_with_their_best_op(net):
    genotype = derive_cells(net, "all")
    for slot, chosen in enumerate(genotype.slots):
        for j, pairs in chosen.items():
            assert len(pairs) == 2 and len({i for i, _ in pairs}) == 2

            def edge_strength(i, j=j, slot=slot):
                return net.gate(slot, i, j) * max(
                    net.gate(slot, i, j, op) for op in ("sep_conv_3x3", "skip_connect")
                )

            ranked = sorted(range(j), key=edge_strength, reverse=True)
            assert {i for i, _ in pairs} == set(ranked[:2])
            for i, op in pairs:
                other = "skip_connect" if op == "sep_conv_3x3" else "sep_conv_3x3"
                assert net.gate(slot, i, j, op) >= net.gate(slot, i, j, other)
    one = derive_cells(net, "keep_one")
    assert all(len(p) == 1 for slot in one.slots for p in slot.values())


CELLS = [
    "model.cells=[1, 0]",
    "model.width=4",
    "data.batch_size=128",
    "search.epochs=4",
    "search.weight_warmup_epochs=1",
    "search.alpha_delay_epochs=0",
    "search.step_iters=1",
    "search.arch_lr=3.0",
    "search.mu1=2.0",
    "search.mu2=2.0",
    "search.mu_growth=3.0",
    "search.bn_calibration_batches=2",
    "search.budget_madds=100K",
    "retrain.epochs=1",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "space,strategy",
    [("darts_cell", "ifnas"), ("goldnas_cell", "ifnas"), ("goldnas_cell", "random")],
)
def test_search_in_a_cell_space_end_to_end(tmp_path, space, strategy):
    cfg = load_config(None, CELLS + [f"model.space={space}", f"strategy={strategy}"])
    summary = run_search(cfg, tmp_path)
    genotype = load_genotype(tmp_path / "genotype.json")
    assert summary["space"] == space and summary["depth"] == genotype.depth()
    assert (tmp_path / "arch.png").read_bytes()[:4] == b"\x89PNG"
    if space == "goldnas_cell":
        assert summary["budget_met"] and summary["madds"] <= 100_000


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model.space=darts_cell", "strategy=darts"], "searches model.space=lchain only"),
        (["model.space=nasnet"], "model.space: expected one of"),
        (["model.space=goldnas_cell", "model.width=5"], "need an even width"),
        (["model.cells=[2, -1]"], "model.cells"),
        (["model.space=goldnas_cell", "search.interleaved_edges=1"], "model.space=lchain"),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
