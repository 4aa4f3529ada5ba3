"""The derived network equals the supernet restricted to the genotype with gates 1."""

import pytest
import torch

from ifnas.genotype import Genotype
from ifnas.metrics import count_madds, count_params, genotype_cost
from ifnas.nn.derived import DerivedNetwork
from ifnas.nn.supernet import Activation
from ifnas.search.derive import derive
from tests.conftest import make_supernet


def restrict(net, genotype):
    """Mask everything the genotype drops and set every gate logit so the gate is exactly 1."""
    for s, stage in enumerate(genotype.stages):
        kept = {(i, j, op) for j, pairs in stage.inputs.items() for i, op in pairs}
        for j, pairs in net.live_inputs(s).items():
            for i, op in pairs:
                if (i, j, op) not in kept:
                    net.mask_op(s, i, j, op)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.fill_(100.0)
    assert torch.sigmoid(torch.tensor(100.0)).item() == 1.0


def used_weight_count(net, x):
    """Weights that get a gradient from one forward and backward pass."""
    for p in net.parameters():
        p.grad = None
    net(x).sum().backward()
    arch = {id(p) for p in net.arch_parameters()}
    return sum(p.numel() for p in net.parameters() if p.grad is not None and id(p) not in arch)


@pytest.fixture(params=["all", "keep_one", "pruned"])
def pair(request):
    net = make_supernet(L=3, stages=(7, 6, 5), seed=4)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 2)
    if request.param == "pruned":
        net.mask_edge(0, 4, 5)
        net.mask_op(0, 3, 6, "sep_conv_3x3")
        for i in (1, 2, 3):
            net.mask_edge(1, i, 4)
        net.kill_dead_nodes()
    g = derive(net, "keep_one" if request.param == "keep_one" else "all")
    g = Genotype.from_json(g.to_json())
    restrict(net, g)
    net.invalidate()
    return net, g


def test_same_parameters_madds_and_outputs(pair):
    net, genotype = pair
    derived = DerivedNetwork(genotype)
    x = torch.randn(6, 1, 8, 8)

    net.activate(Activation(group=None))
    assert count_params(derived) == used_weight_count(net, x)
    shape = (1, 8, 8)
    assert count_madds(derived, shape) == count_madds(net, shape)
    assert genotype_cost(genotype)["madds"] == count_madds(net, shape)
    assert genotype_cost(genotype)["params"] == count_params(derived)

    missing, unexpected = derived.load_state_dict(net.state_dict(), strict=False)
    assert not missing
    for mode in ("train", "eval"):
        net.train(mode == "train")
        derived.train(mode == "train")
        torch.testing.assert_close(derived(x), net(x), rtol=1e-5, atol=1e-6)


def test_genotype_alone_builds_the_network(pair):
    _, genotype = pair
    rebuilt = DerivedNetwork(Genotype.from_dict(genotype.to_dict()))
    assert rebuilt(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert count_params(rebuilt) == count_params(DerivedNetwork(genotype))


def test_keep_one_keeps_one_input_per_node():
    net = make_supernet(L=4, stages=(10,), seed=2)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 2)
    g = derive(net, "keep_one")
    for j, pairs in g.stages[0].inputs.items():
        assert len(pairs) == 1
        best = max(
            ((i, op) for i, op in net.live_inputs(0)[j]),
            key=lambda p: net.gate(0, p[0], j) * net.gate(0, p[0], j, p[1]),
        )
        assert pairs[0] == best


def test_madds_table_matches_the_flop_counter():
    from ifnas.metrics import MaddsTable

    for seed, (L, stages) in enumerate([(3, (7, 6, 5)), (2, (4,)), (5, (9, 9))]):
        net = make_supernet(L=L, stages=stages, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        for s, n in enumerate(stages):
            for j, pairs in list(net.live_inputs(s).items()):
                for i, op in pairs:
                    if torch.rand((), generator=generator) < 0.4 and j < n - 1:
                        net.mask_op(s, i, j, op)
        net.kill_dead_nodes()
        table = MaddsTable(net.macro, len(stages))
        for keep in ("all", "keep_one"):
            g = derive(net, keep)
            assert table.of_genotype(g) == genotype_cost(g)["madds"]
