"""Cell networks: IF sub-supernets per cell, gradients, the cost table, derived networks."""

import random

import pytest
import torch

import ifnas.nn.stage as stage_module
from ifnas.cell_genotype import CellGenotype, cell_depth
from ifnas.genotype import GenotypeError
from ifnas.metrics import count_madds, genotype_cost
from ifnas.nn.cells import CellCosts, CellNetwork, CellSupernet
from ifnas.nn.macro import MacroConfig
from ifnas.nn.ops import SepConv3x3
from ifnas.nn.supernet import Activation
from ifnas.space.cells import CellSpace
from ifnas.space.lchain import OPS

MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)


def make(kind="goldnas_cell", cells=(1, 0, 1), nodes=4, seed=0):
    torch.manual_seed(seed)
    return CellSupernet(CellSpace(kind, cells, nodes), MACRO)


def random_genotype(space, rng):
    slots = []
    for _ in range(space.num_slots()):
        slot = {}
        for j in range(2, space.nodes + 2):
            if space.kind == "darts_cell":
                inputs = rng.sample(range(j), 2)
                slot[j] = tuple(sorted((i, rng.choice(OPS)) for i in inputs))
            else:
                pairs = [(i, op) for i in range(j) for op in OPS]
                slot[j] = tuple(sorted(rng.sample(pairs, rng.randint(1, len(pairs)))))
        slots.append(slot)
    return CellGenotype(space, MACRO, tuple(slots))


def sep_calls(net):
    calls = {}
    for k, cell in enumerate(net.cells):
        for key, ops in cell.ops.items():
            i, j = map(int, key.split("_"))
            for module in ops.values():
                if isinstance(module, SepConv3x3):
                    module.register_forward_hook(
                        lambda *_, e=(k, i, j): calls.__setitem__(e, calls.get(e, 0) + 1)
                    )
    return calls


@pytest.mark.parametrize("kind", ["darts_cell", "goldnas_cell"])
def test_sub_supernet_runs_its_edges_in_every_cell(kind):
    net = make(kind, cells=(1, 1, 0))
    calls = sep_calls(net)
    x = torch.randn(2, 1, 8, 8)
    for lam in range(4):
        calls.clear()
        net.activate(Activation(group=lam))
        net(x)
        expected = {
            (k, i, j) for k in range(len(net.cells)) for i, j in net.space.sub_supernet_edges(lam)
        }
        assert set(calls) == expected
    calls.clear()
    net.activate(Activation(None))
    net(x)
    assert set(calls) == {(k, i, j) for k in range(len(net.cells)) for i, j in net.space.edges()}


def test_gradients_reach_the_sampled_node_of_every_searched_cell():
    net = make("goldnas_cell", cells=(1, 0, 1))
    net.mask_op(2, 0, 4, "skip_connect")
    net.activate(Activation(group=2, learn_beta=True, learn_alpha=True))
    net(torch.randn(3, 1, 8, 8)).sum().backward()
    for key, gates in net.gates.items():
        learns = key.endswith("_n4")
        assert (gates.beta.grad is not None) == learns, key
        if learns:
            assert torch.equal(gates.alpha.grad != 0, gates.alpha_mask.bool()), key
    net.zero_grad(set_to_none=True)
    net.activate(Activation(group=None))  # warm-up: weights only
    net(torch.randn(3, 1, 8, 8)).sum().backward()
    assert all(p.grad is None for p in net.arch_parameters())


def test_darts_cells_share_their_gates():
    net = make("darts_cell", cells=(2, 1))  # normal, normal, reduce, normal
    assert net.slot_of == [0, 0, 1, 0] and len(net.gates) == 2 * 4
    net.activate(Activation(group=0, learn_beta=True))
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    assert net.node_gates(0, 2).beta.grad is not None
    assert net.node_gates(1, 2).beta.grad is not None


@pytest.mark.parametrize("kind,cells", [("goldnas_cell", (1, 1, 1)), ("darts_cell", (2, 0, 1))])
def test_cost_table_counts_every_network_exactly(kind, cells):
    space = CellSpace(kind, cells)
    costs = CellCosts(space, MACRO)
    rng = random.Random(0)
    for _ in range(4):
        genotype = random_genotype(space, rng)
        with torch.device("meta"):
            net = CellNetwork(genotype)
        assert costs.of_slots(genotype.slots) == count_madds(net, (1, 8, 8))
        assert costs.smallest() <= costs.of_slots(genotype.slots)
    supernet = make(kind, cells)
    assert costs.of_supernet(supernet) == costs.of_slots(
        [{j: [(i, op) for i in range(j) for op in OPS] for j in range(2, 6)}] * space.num_slots()
    )


def test_smallest_network_by_hand():
    # One normal cell: node 2 takes a skip from an input (free), nodes 3.. a skip from node 2.
    space = CellSpace("goldnas_cell", (1,))
    costs = CellCosts(space, MACRO)
    cheapest = CellGenotype(
        space,
        MACRO,
        (
            {
                2: ((1, "skip_connect"),),
                3: ((2, "skip_connect"),),
                4: ((3, "skip_connect"),),
                5: ((4, "skip_connect"),),
            },
        ),
    )
    assert costs.smallest() == costs.of_slots(cheapest.slots) == costs.fixed


def test_derived_network_runs_and_round_trips(tmp_path):
    space = CellSpace("goldnas_cell", (1, 1, 0))
    genotype = random_genotype(space, random.Random(3))
    genotype.save(tmp_path / "g.json")
    again = CellGenotype.load(tmp_path / "g.json")
    assert again == genotype
    assert CellNetwork(genotype)(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert genotype_cost(genotype)["depth"] == genotype.depth()


def test_cell_depth_by_hand():
    chain = {
        2: ((1, "skip_connect"),),
        3: ((2, "sep_conv_3x3"),),
        4: ((3, "skip_connect"),),
        5: ((0, "sep_conv_3x3"), (4, "sep_conv_3x3")),
    }
    flat = {j: ((0, "sep_conv_3x3"), (1, "skip_connect")) for j in range(2, 6)}
    assert cell_depth(chain) == 4 and cell_depth(flat) == 1
    space = CellSpace("darts_cell", (1,))
    assert CellGenotype(space, MACRO, ({**flat}, chain)).depth() == 1  # the normal cell's


@pytest.mark.parametrize(
    "slots,message",
    [
        (({2: ((0, "skip_connect"),)},), "expected inputs for nodes 2..5"),
        (({j: ((j, "skip_connect"),) for j in range(2, 6)},), "is not an edge and op"),
        (({j: ((0, "conv"),) for j in range(2, 6)},), "is not an edge and op"),
    ],
)
def test_bad_cell_genotypes(slots, message):
    with pytest.raises(GenotypeError, match=message):
        CellGenotype(CellSpace("goldnas_cell", (1,)), MACRO, slots)
    with pytest.raises(GenotypeError, match="searched cells"):
        CellGenotype(CellSpace("darts_cell", (1,)), MACRO, slots)


def test_recomputed_cell_ops_give_the_same_gradients(monkeypatch):
    calls = []
    real = stage_module.checkpoint
    monkeypatch.setattr(
        stage_module, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        net = CellSupernet(CellSpace("darts_cell", (1, 1)), MACRO, recompute_full=recompute)
        net.activate(Activation(None, learn_beta=True, learn_alpha=True))
        torch.manual_seed(1)
        net(torch.randn(4, 1, 8, 8)).logsumexp(1).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
        assert bool(calls) == recompute
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
