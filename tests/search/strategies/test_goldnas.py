"""GOLD-NAS-style penalty: its value against the formula, and where its gradients go."""

import math

import pytest
import torch

from ifnas.metrics import MaddsTable
from ifnas.nn.supernet import Activation
from ifnas.search.strategies.goldnas import resource_penalty
from tests.conftest import make_supernet


@pytest.fixture
def net():
    net = make_supernet(L=3, stages=(7, 6), seed=1)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 1.0)
    net.mask_edge(0, 2, 5)
    net.mask_op(1, 1, 2, "sep_conv_3x3")
    return net


def penalty_by_hand(net, sep_costs, skip_cost, mu):
    total = 0.0
    for s in range(len(net.space.stages)):
        for j, pairs in net.live_inputs(s).items():
            for i, op in pairs:
                cost = (sep_costs[s] if op == "sep_conv_3x3" else 0.0) + skip_cost
                total += cost * net.gate(s, i, j) * net.gate(s, i, j, op)
    return mu * total


def test_value_matches_the_formula(net):
    per_sep = MaddsTable(net.macro, 2).per_sep
    costs = [m / max(per_sep) for m in per_sep]
    assert max(costs) == 1.0 and min(costs) > 0
    net.activate(Activation(None, True, True))
    value = resource_penalty(net, costs, 0.1, 0.3).item()
    assert value == pytest.approx(penalty_by_hand(net, costs, 0.1, 0.3), rel=1e-5)


def test_gradients_reach_live_gates_only_and_push_costlier_ops_harder(net):
    net.activate(Activation(None, learn_beta=True, learn_alpha=True))
    resource_penalty(net, [1.0, 1.0], 0.1, 1.0).backward()
    for key, gates in net.gates.items():
        assert torch.equal(gates.beta.grad != 0, gates.beta_mask.bool()), key
        assert torch.equal(gates.alpha.grad != 0, gates.alpha_mask.bool()), key
        assert (gates.alpha.grad >= 0).all()  # the penalty only ever pushes gates down
    gates = net.group_gates(0, 1)
    r, l = 0, 0  # node 1, edge (0, 1)
    with torch.no_grad():
        g = torch.sigmoid(gates.alpha[r, l])
        expected = torch.sigmoid(gates.beta[r, l]) * g * (1 - g) * torch.tensor([1.1, 0.1])
    torch.testing.assert_close(gates.alpha.grad[r, l], expected)


def test_frozen_groups_get_no_gradient(net):
    net.activate(Activation(group=2, learn_beta=True, learn_alpha=False))
    resource_penalty(net, [1.0, 1.0], 0.1, 1.0).backward()
    for key, gates in net.gates.items():
        assert (gates.beta.grad is not None) == key.endswith("_g2"), key
        assert gates.alpha.grad is None
    assert math.isfinite(gates.beta.grad.sum().item())
