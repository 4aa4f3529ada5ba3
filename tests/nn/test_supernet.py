"""The supernet: active edges only, shared ReLUs, masks, dead nodes."""

import types

import pytest
import torch
import torch.nn.functional as F

import ifnas.nn.stage as stage_module
from ifnas.nn.ops import SepConv3x3
from ifnas.nn.supernet import Activation
from ifnas.search.derive import derive
from ifnas.search.pruning import prune
from ifnas.space.interleave import sub_supernet_edges
from tests.conftest import make_supernet


def count_op_calls(net):
    """Attach forward hooks to every sep_conv module; return the dict they fill."""
    calls = {}
    for s, stage in enumerate(net.stages):
        for key, ops in stage.ops.items():
            i, j = map(int, key.split("_"))
            module = ops["sep_conv_3x3"]
            assert isinstance(module, SepConv3x3)
            module.register_forward_hook(
                lambda *_, e=(s, i, j): calls.__setitem__(e, calls.get(e, 0) + 1)
            )
    return calls


def test_forward_shape_and_backward(supernet):
    x = torch.randn(5, 1, 8, 8)
    out = supernet(x)
    assert out.shape == (5, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in supernet.weight_parameters())


@pytest.mark.parametrize("L,stages", [(3, (7, 6)), (2, (5,)), (4, (9, 3)), (1, (4, 4))])
def test_sub_supernet_runs_exactly_its_edges(L, stages):
    net = make_supernet(L, stages)
    calls = count_op_calls(net)
    x = torch.randn(2, 1, 8, 8)
    for lam in range(L):
        calls.clear()
        net.activate(Activation(group=lam))
        net(x)
        expected = {
            (s, i, j) for s in range(len(stages)) for i, j in sub_supernet_edges(net.space, s, lam)
        }
        assert set(calls) == expected
        assert all(c == 1 for c in calls.values())
    calls.clear()
    net.activate(Activation(group=None))
    net(x)
    assert set(calls) == {(s, i, j) for s in range(len(stages)) for i, j in net.space.edges(s)}


def test_pruned_edge_runs_no_op_in_any_step(supernet):
    calls = count_op_calls(supernet)
    supernet.mask_edge(0, 2, 4)
    supernet.mask_op(1, 3, 5, "sep_conv_3x3")
    x = torch.randn(2, 1, 8, 8)
    for group in (None, 0, 1, 2):
        supernet.activate(Activation(group=group))
        supernet(x)
    assert (0, 2, 4) not in calls and (1, 3, 5) not in calls
    assert (1, 4, 5) in calls


def test_one_relu_per_source_node(monkeypatch, supernet):
    relu_inputs = []
    real_relu = F.relu

    def counting_relu(x, *args, **kwargs):
        relu_inputs.append(x)
        return real_relu(x, *args, **kwargs)

    monkeypatch.setattr(stage_module, "F", types.SimpleNamespace(relu=counting_relu))
    supernet(torch.randn(2, 1, 8, 8))
    # Every node but each stage's output has outgoing sep_conv edges: one ReLU each.
    expected = sum(n - 1 for n in supernet.space.stages)
    assert len(relu_inputs) == expected
    assert len({id(t) for t in relu_inputs}) == expected


def test_frozen_groups_get_no_gradient(supernet):
    supernet.activate(Activation(group=1, learn_beta=True, learn_alpha=False))
    supernet(torch.randn(3, 1, 8, 8)).sum().backward()
    for key, gates in supernet.gates.items():
        learns = key.endswith("_g1")
        assert (gates.beta.grad is not None) == learns, key
        assert gates.alpha.grad is None, key


def test_gate_values_follow_sigmoids(supernet):
    gates = supernet.group_gates(0, 2)
    with torch.no_grad():
        gates.beta[0, 1] = 1.5
        gates.alpha[0, 1, 1] = -0.5
    j = gates.nodes[0]
    assert supernet.gate(0, j - 2, j) == pytest.approx(torch.sigmoid(torch.tensor(1.5)).item())
    assert supernet.gate(0, j - 2, j, "skip_connect") == pytest.approx(
        torch.sigmoid(torch.tensor(-0.5)).item()
    )


def test_node_whose_inputs_are_all_pruned_dies_cleanly(supernet):
    # Node 3 of stage 0 (L = 3) has inputs 0, 1, 2: prune them all.
    for i in (0, 1, 2):
        supernet.mask_edge(0, i, 3)
    killed = supernet.kill_dead_nodes()
    assert {(0, 3, j) for j in (4, 5, 6)} <= set(killed)
    assert 3 not in supernet.live_inputs(0)
    assert all(i != 3 for pairs in supernet.live_inputs(0).values() for i, _ in pairs)

    x = torch.randn(4, 1, 8, 8)
    for group in (None, 0, 1, 2):
        supernet.activate(Activation(group=group, learn_beta=True, learn_alpha=True))
        out = supernet(x)
        out.sum().backward()
        assert torch.isfinite(out).all()
    genotype = derive(supernet)
    genotype.validate()
    assert 3 not in genotype.stages[0].inputs

    from ifnas.nn.derived import DerivedNetwork

    assert DerivedNetwork(genotype)(x).shape == (4, 10)


def test_node_that_feeds_nothing_dies(supernet):
    # Node 4 of stage 0 feeds 5 and 6 (and nothing else, output is 6).
    supernet.mask_edge(0, 4, 5)
    supernet.mask_edge(0, 4, 6)
    supernet.kill_dead_nodes()
    assert 4 not in supernet.live_inputs(0)


def test_pruning_never_cuts_the_last_path(supernet):
    # Leave stage 1 (6 nodes, L = 3) with the single path 0 -> 3 -> 5 and push it below 0.01.
    for j, pairs in list(supernet.live_inputs(1).items()):
        for i, op in pairs:
            if (i, j, op) not in ((0, 3, "skip_connect"), (3, 5, "skip_connect")):
                supernet.mask_op(1, i, j, op)
    supernet.kill_dead_nodes()
    with torch.no_grad():
        for gates in supernet.gates.values():
            if gates is supernet.group_gates(1, 0) or gates is supernet.group_gates(1, 2):
                gates.beta.fill_(-8.0)
    report = prune(supernet, 0.01)
    assert {item[1:] for item in report.guarded} == {(0, 3), (3, 5)}
    assert supernet.live_inputs(1) == {3: ((0, "skip_connect"),), 5: ((3, "skip_connect"),)}
    supernet(torch.randn(2, 1, 8, 8))


def test_mask_errors_name_the_edge(supernet):
    with pytest.raises(ValueError, match=r"\(0, 5\) is not an edge of stage 0"):
        supernet.mask_edge(0, 0, 5)
    with pytest.raises(ValueError, match="group"):
        supernet.activate(Activation(group=3))


def test_masks_survive_state_dict_round_trip(supernet):
    supernet.mask_edge(0, 1, 3)
    supernet.mask_op(1, 2, 4, "skip_connect")
    fresh = make_supernet(seed=1)
    fresh.load_state_dict(supernet.state_dict())
    fresh.invalidate()
    assert fresh.live_inputs(0) == supernet.live_inputs(0)
    assert fresh.live_inputs(1) == supernet.live_inputs(1)
    assert fresh.gate(0, 1, 3) == 0.0
    assert fresh.gate(1, 2, 4, "skip_connect") == 0.0


@pytest.mark.parametrize("group, frozen_stem", [(None, False), (1, False), (None, True)])
def test_recomputed_full_steps_give_the_same_gradients(group, frozen_stem):
    # A frozen stem hands the first ops an input without gradient: the recomputed ops must
    # still give their own parameters gradients.
    x = torch.randn(4, 1, 8, 8)
    grads = []
    for recompute in (False, True):
        net = make_supernet(seed=7, recompute_full=recompute)
        net.stem.requires_grad_(not frozen_stem)
        net.activate(Activation(group=group, learn_beta=True, learn_alpha=True))
        net(x).square().sum().backward()
        grads.append({n: p.grad for n, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6, msg=name)
