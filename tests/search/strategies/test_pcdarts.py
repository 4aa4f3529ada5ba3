"""PC-DARTS: partial channels, the shuffle, edge normalization, gradients, width errors."""

import math

import pytest
import torch

import ifnas.nn.stage as stage_module
from ifnas.config import ConfigError, load_config
from ifnas.nn.macro import MacroConfig
from ifnas.nn.ops import SepConv3x3
from ifnas.nn.supernet import Activation
from ifnas.search.strategies.pcdarts import PCDartsSupernet, channel_shuffle
from ifnas.space.lchain import OPS, LChainSpace


def make_pcdarts(width=8, k=4, L=3, stages=(7, 5), seed=0):
    torch.manual_seed(seed)
    macro = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=width)
    net = PCDartsSupernet(LChainSpace(L, stages), macro, k=k)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 1.5)
    return net.eval()


def logits_of(net, s, j):
    lam, _ = net._slot[(s, j)]
    gates = net.group_gates(s, lam)
    return gates, gates.nodes.index(j), net.none_logits[f"s{s}_g{lam}"]


def edge_weight(net, s, i, j):
    """softmax over node j's live inputs of beta, with math.exp."""
    gates, r, _ = logits_of(net, s, j)
    sources = {i2 for i2, _ in net.live_inputs(s)[j]}
    exps = {i2: math.exp(gates.beta[r, j - i2 - 1].item()) for i2 in sources}
    return exps[i] / sum(exps.values())


def op_weight(net, s, i, j, op):
    gates, r, none = logits_of(net, s, j)
    l = j - i - 1
    live = [o for o in OPS if gates.alpha_mask[r, l, OPS.index(o)]]
    exps = {o: math.exp(gates.alpha[r, l, OPS.index(o)].item()) for o in live}
    return exps[op] / (sum(exps.values()) + math.exp(none[r, l].item()))


def shuffle_by_hand(x, groups):
    """Channel c of group g goes to position c * groups + g."""
    C = x.shape[1]
    per = C // groups
    out = torch.empty_like(x)
    for g in range(groups):
        for c in range(per):
            out[:, c * groups + g] = x[:, g * per + c]
    return out


@pytest.mark.parametrize("k", [1, 2, 4])
def test_forward_is_pcdarts_edge_by_edge(k):
    """Each edge shuffles on its own in PC-DARTS; we shuffle once per node: same tensor."""
    net = make_pcdarts(k=k)
    net.mask_edge(0, 3, 6)
    net.mask_op(1, 2, 4, "sep_conv_3x3")
    x = torch.randn(2, 1, 8, 8)

    def edge_output(stage, s, i, j, source):
        c = source.shape[1] // k
        part, rest = source[:, :c], source[:, c:]
        mixed = 0
        for _, op in [p for p in net.live_inputs(s)[j] if p[0] == i]:
            y = part if op == "skip_connect" else stage.ops[f"{i}_{j}"][op](torch.relu(part))
            mixed = mixed + op_weight(net, s, i, j, op) * y
        return shuffle_by_hand(torch.cat([mixed, rest], 1), k)

    def forward(x):
        x = net.stem(x)
        for s, stage in enumerate(net.stages):
            if s:
                x = net.reductions[s - 1](x)
            states = {0: x}
            for j, pairs in sorted(net.live_inputs(s).items()):
                states[j] = sum(
                    edge_weight(net, s, i, j) * edge_output(stage, s, i, j, states[i])
                    for i in sorted({i for i, _ in pairs})
                )
            x = states[net.space.stages[s] - 1]
        return net.head(x)

    with torch.no_grad():
        torch.testing.assert_close(net(x), forward(x), rtol=1e-4, atol=1e-5)


def test_channel_shuffle_matches_the_definition():
    x = torch.randn(2, 12, 3, 3)
    assert torch.equal(channel_shuffle(x, 4), shuffle_by_hand(x, 4))


def test_ops_run_on_one_kth_of_the_channels():
    net = make_pcdarts(width=8, k=4)
    for s, stage in enumerate(net.stages):
        for ops in stage.ops.values():
            conv = ops["sep_conv_3x3"]
            assert isinstance(conv, SepConv3x3) and conv.pw1.in_channels == 8 * 2**s // 4


def test_edge_weights_normalize_over_live_inputs():
    net = make_pcdarts()
    net.mask_edge(0, 4, 6)
    weights = net.edge_weights(0)
    beta_mask, _ = net.stage_masks(0)
    for j in range(1, 7):
        row = net._slot[(0, j)][1]
        assert weights[row][beta_mask[row].bool()].sum().item() == pytest.approx(1.0)
        assert (weights[row][~beta_mask[row].bool()] == 0).all()
    assert net.gate(0, 4, 6) == 0.0
    assert net.gate(0, 3, 6) == pytest.approx(edge_weight(net, 0, 3, 6), rel=1e-5)


def test_arch_step_reaches_beta_alpha_none_of_live_edges_only():
    net = make_pcdarts().train()
    net.mask_edge(1, 1, 3)
    net.activate(Activation(None, learn_beta=True, learn_alpha=True))
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    for key, gates in net.gates.items():
        # a node's edge weights sum to 1: with a single live input there is nothing to learn
        choice = gates.beta_mask.bool() & (gates.beta_mask.sum(1, keepdim=True) >= 2)
        assert torch.equal(gates.beta.grad != 0, choice), key
        assert torch.equal(gates.alpha.grad != 0, gates.alpha_mask.bool()), key
        assert torch.equal(net.none_logits[key].grad != 0, gates.beta_mask.bool()), key
    net.zero_grad(set_to_none=True)
    net.activate(Activation(None))
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    assert all(p.grad is None for p in net.arch_parameters())


def test_width_not_divisible_by_k_is_an_error_at_build():
    with pytest.raises(ValueError, match=r"16 channels needs a K that divides it, got K=3"):
        make_pcdarts(width=16, k=3)
    with pytest.raises(ConfigError, match="divisible by search.pc_k=4; got 6"):
        load_config(None, ["strategy=pcdarts", "model.width=6"])
    load_config(None, ["strategy=ifnas", "model.width=6"])  # only pcdarts cares


def test_recomputed_partial_channel_ops_give_the_same_gradients(monkeypatch):
    calls = []
    real = stage_module.checkpoint
    monkeypatch.setattr(
        stage_module, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    grads = []
    for recompute in (False, True):
        torch.manual_seed(0)
        macro = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=8)
        net = PCDartsSupernet(LChainSpace(3, (6, 4)), macro, k=4, recompute_full=recompute)
        net.activate(Activation(None, learn_beta=True, learn_alpha=True))
        torch.manual_seed(1)
        net(torch.randn(4, 1, 8, 8)).logsumexp(1).sum().backward()
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
        assert bool(calls) == recompute
    assert len(grads[0]) == len(grads[1])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
