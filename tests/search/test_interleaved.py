"""The interleaving ablation: how many edges are let in, that they interleave, that they run."""

import pytest
import torch
from torch.utils.data import TensorDataset

from ifnas.config import ConfigError, load_config
from ifnas.data import make_loader
from ifnas.nn.supernet import Activation
from ifnas.search.interleaved import (
    InterleavedEdgesLoop,
    draw_interleaved_edges,
    interleaving_candidates,
)
from ifnas.space.interleave import interleave
from tests.conftest import make_supernet
from tests.nn.test_supernet import count_op_calls


def group_edges(net, s, lam):
    L = net.space.L
    return [(i, j) for j, p in net.live_inputs(s).items() if j % L == lam for i, _ in p]


@pytest.mark.parametrize("L,stages", [(4, (11, 9)), (3, (8,)), (6, (13,))])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_edges_per_stage_each_interleaving_with_the_group(L, stages, k):
    net = make_supernet(L, stages)
    generator = torch.Generator().manual_seed(0)
    for lam in range(L):
        drawn = draw_interleaved_edges(net, lam, k, generator)
        for s in range(len(stages)):
            edges = [(i, j) for t, i, j in drawn if t == s]
            candidates = interleaving_candidates(net, s, lam)
            assert len(edges) == min(k, len(candidates))
            assert len(set(edges)) == len(edges)
            for i, j in edges:
                assert j % L != lam and j - i >= 2
                assert any(interleave((i, j), e) for e in group_edges(net, s, lam))


def test_candidates_by_hand():
    # L = 3, one stage of 7 nodes, lam = 0: G_0 = {3, 6}; group edges (0..2, 3), (3..5, 6).
    net = make_supernet(3, (7,))
    assert interleaving_candidates(net, 0, 0) == [(0, 2), (1, 4), (2, 4), (2, 5), (3, 5)]
    net.mask_edge(0, 3, 5)
    net.mask_edge(0, 4, 5)  # (3, 5) is gone; node 5's backbone is now (2, 5)
    assert interleaving_candidates(net, 0, 0) == [(0, 2), (1, 4), (2, 4)]


def test_added_edges_run_with_frozen_gates():
    net = make_supernet(4, (11,))
    calls = count_op_calls(net)
    edges = draw_interleaved_edges(net, 1, 2, torch.Generator().manual_seed(3))
    net.activate(Activation(group=1, learn_beta=True, learn_alpha=True, interleaved=edges))
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    for edge in edges:
        assert edge in calls
        gates, r, l = net._locate(*edge)
        assert gates.beta.grad is None  # ends outside G_1: its group does not learn
    net.activate(Activation(group=1))
    calls.clear()
    net(torch.randn(2, 1, 8, 8))
    assert not set(edges) & set(calls)


def test_bad_interleaved_edges_are_refused():
    net = make_supernet(3, (7,))
    with pytest.raises(ValueError, match="group must be set"):
        net.activate(Activation(group=None, interleaved=((0, 1, 4),)))
    net.activate(Activation(group=0, interleaved=((0, 0, 3),)))
    with pytest.raises(ValueError, match=r"\(0, 3\) of stage 0 must be live and end outside"):
        net(torch.randn(1, 1, 8, 8))


def test_loop_draws_per_step_reproducibly():
    cfg = load_config(
        None,
        [
            "search.interleaved_edges=2",
            "search.weight_warmup_epochs=0",
            "search.alpha_delay_epochs=0",
            "search.step_iters=3",
        ],
    ).search
    loader = make_loader(TensorDataset(torch.randn(8, 1, 8, 8), torch.zeros(8).long()), 4, True, 0)

    def activations(seed):
        loop = InterleavedEdgesLoop(
            make_supernet(4, (11,)), cfg, loader, torch.device("cpu"), seed=seed
        )
        return [loop.activation_for(t) for t in range(0, 30)]

    first, again, other = activations(0), activations(0), activations(1)
    assert first == again and first != other
    for t, activation in enumerate(first):
        k = (t % 15) // 3  # cycles of 5 steps of 3 iterations: warm-up, then S_0 .. S_3
        assert activation.group == (None if k == 0 else k - 1)
        assert len(activation.interleaved) == (0 if k == 0 else 2)
        if t % 3:
            assert activation.interleaved == first[t - 1].interleaved  # one draw per step
    assert len({a.interleaved for a in first if a.group is not None}) > 4


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["search.interleaved_edges=-1"], "search.interleaved_edges: expected >= 0"),
        (["strategy=wo_if", "search.interleaved_edges=1"], "needs strategy=ifnas"),
    ],
)
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
