"""Eq. 3 against an element-by-element evaluation of the paper's formula."""

import math

import pytest
import torch

from ifnas.nn.supernet import Activation
from ifnas.search.regularizer import discretization_loss
from tests.conftest import make_supernet


def eq3_by_hand(net, mu1, mu2):
    """Sum over live edges and live ops, with the means over all live gates of the network."""
    edges, ops = [], []
    for s in range(len(net.space.stages)):
        for j, pairs in net.live_inputs(s).items():
            for i in sorted({i for i, _ in pairs}):
                edges.append(net.gate(s, i, j))
            for i, op in pairs:
                ops.append(net.gate(s, i, j, op))
    mean_e, mean_o = sum(edges) / len(edges), sum(ops) / len(ops)
    return mu1 * sum(math.log(1 + g / mean_e) for g in edges) + mu2 * sum(
        math.log(1 + g / mean_o) for g in ops
    )


@pytest.fixture
def net():
    net = make_supernet(seed=3)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 1.5)
    net.mask_edge(0, 1, 3)
    net.mask_op(1, 2, 4, "sep_conv_3x3")
    return net


def test_value_matches_the_formula(net):
    net.activate(Activation(None, True, True))
    value = discretization_loss(net, 0.3, 0.7).item()
    assert value == pytest.approx(eq3_by_hand(net, 0.3, 0.7), rel=1e-5)


def test_gradients_only_reach_learning_live_gates(net):
    net.activate(Activation(group=2, learn_beta=True, learn_alpha=True))
    discretization_loss(net, 1.0, 1.0).backward()
    for key, gates in net.gates.items():
        if key.endswith("_g2"):
            assert gates.beta.grad is not None
            assert torch.all(gates.beta.grad[gates.beta_mask == 0] == 0)
            assert torch.all(gates.alpha.grad[gates.alpha_mask == 0] == 0)
            assert gates.beta.grad.abs().sum() > 0
        else:
            assert gates.beta.grad is None and gates.alpha.grad is None


def test_gradient_matches_finite_differences(net):
    net.activate(Activation(None, True, True))
    gates = net.group_gates(0, 1)
    discretization_loss(net, 0.5, 0.5).backward()
    r, l = 1, 0
    eps = 1e-3
    with torch.no_grad():
        gates.beta[r, l] += eps
        up = eq3_by_hand(net, 0.5, 0.5)
        gates.beta[r, l] -= 2 * eps
        down = eq3_by_hand(net, 0.5, 0.5)
        gates.beta[r, l] += eps
    assert gates.beta.grad[r, l].item() == pytest.approx((up - down) / (2 * eps), rel=1e-2)


def test_polarizes_around_the_mean(net):
    # With the mean differentiated, R falls when gates below the mean fall and those above rise.
    net.activate(Activation(None, True, False))
    discretization_loss(net, 1.0, 0.0).backward()
    for gates in net.gates.values():
        g = torch.sigmoid(gates.beta.detach())
        live = gates.beta_mask.bool()
        if not live.any():
            continue
        assert torch.all(gates.beta.grad[live & (g < 0.05)] > 0)
        assert torch.all(gates.beta.grad[live & (g > 0.95)] < 0)


def test_detached_mean_pushes_every_gate_down(net):
    net.activate(Activation(None, True, True))
    discretization_loss(net, 1.0, 1.0, detach_mean=True).backward()
    for gates in net.gates.values():
        live = gates.beta_mask.bool()
        assert torch.all(gates.beta.grad[live] > 0)
