"""DARTS: softmax mixing against the formula, gradients, the bi-level loop, derivation."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from ifnas.config import load_config
from ifnas.data import make_loader
from ifnas.metrics import genotype_cost
from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Activation
from ifnas.search.pruning import output_reachable_without
from ifnas.search.strategies.darts import DartsLoop, DartsSupernet, split_for_architecture
from ifnas.search.to_budget import derive_within_budget, pair_strengths, prune_to_budget
from ifnas.space.lchain import OPS, LChainSpace
from tests.conftest import op_output, reference_forward

MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)


def make_darts(L=3, stages=(7, 6), seed=0):
    torch.manual_seed(seed)
    net = DartsSupernet(LChainSpace(L, stages), MACRO)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.normal_(0, 1.5)
    return net.eval()


def darts_weight(net, s, i, j, op):
    """The softmax of DARTS over {sep, skip, none} written out with math.exp."""
    lam, _ = net._slot[(s, j)]
    gates = net.group_gates(s, lam)
    r, l = gates.nodes.index(j), j - i - 1
    live = [o for o in range(len(OPS)) if gates.alpha_mask[r, l, o]]
    exps = {OPS[o]: math.exp(gates.alpha[r, l, o].item()) for o in live}
    none = math.exp(net.none_logits[f"s{s}_g{lam}"][r, l].item())
    return exps[op] / (sum(exps.values()) + none)


def test_forward_is_the_softmax_mix():
    net = make_darts()
    net.mask_op(0, 2, 4, "skip_connect")  # the softmax renormalizes over what is left
    x = torch.randn(3, 1, 8, 8)

    def node(s, j, pairs, states, stage):
        return sum(
            darts_weight(net, s, i, j, op) * op_output(stage, i, j, op, states[i])
            for i, op in pairs
        )

    with torch.no_grad():
        torch.testing.assert_close(net(x), reference_forward(net, x, node), rtol=1e-4, atol=1e-5)
    assert net.gate(0, 2, 4, "sep_conv_3x3") == pytest.approx(
        darts_weight(net, 0, 2, 4, "sep_conv_3x3"), rel=1e-5
    )
    assert net.gate(0, 2, 4, "skip_connect") == 0.0
    assert net.gate(0, 2, 4) == 1.0  # DARTS has no edge weights


def test_arch_step_reaches_alpha_and_none_only():
    net = make_darts().train()
    net.mask_op(1, 1, 3, "sep_conv_3x3")
    net.activate(Activation(None, learn_beta=False, learn_alpha=True))
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    for key, gates in net.gates.items():
        assert gates.beta.grad is None, key
        none_grad = net.none_logits[key].grad
        # every existing edge and every live op gets a gradient; nothing else does
        assert torch.equal(none_grad != 0, gates.beta_mask.bool()), key
        assert torch.equal(gates.alpha.grad != 0, gates.alpha_mask.bool()), key
    assert {id(p) for p in net.arch_parameters()}.isdisjoint(
        {id(p) for p in net.weight_parameters()}
    )
    assert not any(p is g.beta for p in net.arch_parameters() for g in net.gates.values())


def test_weight_step_reaches_no_gate():
    net = make_darts().train()
    net.activate(Activation(None))
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    assert all(p.grad is None for p in net.arch_parameters())


def test_split_is_fixed_disjoint_and_complete():
    data = TensorDataset(torch.arange(101))
    w1, a1 = split_for_architecture(data, 0.5)
    torch.manual_seed(123)  # the run's seed does not move the split
    w2, a2 = split_for_architecture(data, 0.5)
    assert w1.indices == w2.indices and a1.indices == a2.indices
    assert len(a1) == 50 and sorted(w1.indices + a1.indices) == list(range(101))
    with pytest.raises(ValueError, match="empty part"):
        split_for_architecture(TensorDataset(torch.arange(3)), 0.01)


def test_loop_learns_architecture_only_after_the_warm_up(tmp_path):
    cfg = load_config(None, ["search.weight_warmup_epochs=1", "search.darts_arch_lr=0.01"]).search
    torch.manual_seed(0)
    images, labels = torch.randn(96, 1, 8, 8), torch.randint(0, 10, (96,))
    net = make_darts(L=2, stages=(4, 3)).train()
    train = make_loader(TensorDataset(images[:48], labels[:48]), 16, True, 0)
    arch = make_loader(TensorDataset(images[48:], labels[48:]), 16, True, 0)
    loop = DartsLoop(net, cfg, train, arch, torch.device("cpu"))
    before = [p.detach().clone() for p in net.arch_parameters()]
    betas = [g.beta.detach().clone() for g in net.gates.values()]
    loop.train_epoch()
    assert all(torch.equal(a, p) for a, p in zip(before, net.arch_parameters(), strict=True))
    loop.train_epoch()
    assert all(not torch.equal(a, p) for a, p in zip(before, net.arch_parameters(), strict=True))
    assert all(torch.equal(b, g.beta) for b, g in zip(betas, net.gates.values(), strict=True))
    assert not loop.stops_at_budget and loop.global_iter == 2 * len(train)


class _Loop:
    """What derivation reads of a search loop."""

    def __init__(self, net, budget):
        from ifnas.metrics import MaddsTable

        self.supernet, self.budget = net, budget
        self.table = MaddsTable(net.macro, len(net.space.stages))
        self.madds = self.retained_madds()

    def retained_madds(self):
        return self.table.of_sep_counts(
            [
                sum(
                    op == "sep_conv_3x3"
                    for p in self.supernet.live_inputs(s).values()
                    for _, op in p
                )
                for s in range(len(self.supernet.space.stages))
            ]
        )


@pytest.mark.parametrize("budget", [40_000, 55_000, 70_000])
def test_derivation_removes_the_weakest_until_the_budget_holds(budget):
    net = make_darts(L=3, stages=(7, 6), seed=2)
    strength = {pair: w for w, pair in pair_strengths(net)}
    loop = _Loop(net, budget)
    assert loop.madds > budget
    removed = prune_to_budget(net, budget, loop.retained_madds)
    genotype = derive_within_budget(loop, "all")
    assert genotype_cost(genotype)["madds"] == loop.madds <= budget

    # Weakest first; whatever weaker pair is still live carries its stage's last path.
    order = [strength[p] for p in removed]
    assert order == sorted(order)
    live = {(s, i, j, op) for s in range(2) for j, ps in net.live_inputs(s).items() for i, op in ps}
    assert live.isdisjoint(removed)
    for pair in live:
        if strength[pair] < order[-1]:
            assert not output_reachable_without(net, pair), pair


def test_unreachable_budget_leaves_the_last_paths(caplog):
    net = make_darts(seed=2)
    loop = _Loop(net, 1)
    genotype = derive_within_budget(loop, "all")
    assert "cannot be met" in caplog.text
    for s, stage in enumerate(genotype.stages):
        # every remaining pair is a bridge: nothing more could go
        for j, pairs in stage.inputs.items():
            for i, op in pairs:
                assert not output_reachable_without(net, (s, i, j, op))


def test_keep_one_keeps_each_nodes_strongest_pair():
    net = make_darts(seed=4)
    genotype = derive_within_budget(_Loop(net, 10**9), "keep_one")
    for s, stage in enumerate(genotype.stages):
        for j, ((i, op),) in stage.inputs.items():
            best = max(
                net.live_inputs(s)[j], key=lambda p, j=j: darts_weight(net, s, p[0], j, p[1])
            )
            assert (i, op) == best
