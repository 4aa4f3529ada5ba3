"""Pruned gates: exactly 0, moved by nothing, pruned for good (DESIGN.md section 4)."""

import torch

from ifnas.config import load_config
from ifnas.data import load_data, make_loader
from ifnas.search.loop import SearchLoop
from ifnas.search.pruning import prune
from tests.conftest import make_supernet


def tiny_loop(net):
    cfg = load_config(
        None,
        [
            "search.weight_warmup_epochs=0",
            "search.alpha_delay_epochs=0",
            "search.step_iters=1",
            "search.momentum=0.9",
            "search.weight_decay=0.01",
            "search.arch_momentum=0.9",
            "search.epochs=4",
            "search.budget_madds=1K",
            "search.mu_growth=1.0",
        ],
    )
    data = load_data(cfg.data)
    loader = make_loader(torch.utils.data.Subset(data.train, range(256)), 64, True, 0)
    return SearchLoop(net, cfg.search, loader, torch.device("cpu"))


def test_pruned_gate_is_zero_frozen_and_survives_save_and_load():
    net = make_supernet(L=3, stages=(7, 6), seed=5)
    loop = tiny_loop(net)
    loop.train_epoch()  # every group learns once per cycle: momentum is now non-zero

    gates = net.group_gates(0, 1)  # nodes 1 and 4 of stage 0; edge (2, 4) is row 1, l = 2
    assert loop.arch_optimizer.state[gates.beta]["momentum_buffer"][1, 1].item() != 0
    with torch.no_grad():
        gates.beta[1, 1] = -10.0
    loop._prune()
    assert (0, 2, 4) in [tuple(e) for e in loop.prune_events[-1]["edges"]]
    frozen_logit = gates.beta[1, 1].item()
    frozen_alpha = gates.alpha[1, 1].clone()
    op = net.stages[0].ops["2_4"]["sep_conv_3x3"]
    frozen_weights = [p.detach().clone() for p in op.parameters()]
    calls = []
    op.register_forward_hook(lambda *_: calls.append(1))

    loop.train_epoch()
    assert gates.beta[1, 1].item() == frozen_logit
    assert torch.equal(gates.alpha[1, 1], frozen_alpha)
    assert all(torch.equal(a, b) for a, b in zip(op.parameters(), frozen_weights, strict=True))
    assert not calls
    assert net.gate(0, 2, 4) == 0.0
    assert all(net.gate(0, 2, 4, o) == 0.0 for o in ("sep_conv_3x3", "skip_connect"))

    reloaded = make_supernet(L=3, stages=(7, 6), seed=9)
    reloaded.load_state_dict(net.state_dict())
    reloaded.invalidate()
    assert reloaded.gate(0, 2, 4) == 0.0
    assert 2 not in {i for i, _ in reloaded.live_inputs(0)[4]}
    loop2 = tiny_loop(reloaded)
    loop2.load_state_dict(loop.state_dict())
    loop2.train_epoch()
    assert reloaded.group_gates(0, 1).beta[1, 1].item() == frozen_logit


def test_without_clearing_the_state_momentum_would_move_it():
    # The control for the test above: momentum alone moves a logit whose gradient is zero.
    net = make_supernet(L=3, stages=(7, 6), seed=5)
    loop = tiny_loop(net)
    loop.train_epoch()
    gates = net.group_gates(0, 1)
    before = gates.beta[1, 1].item()
    loop.arch_optimizer.zero_grad()
    gates.beta.grad = torch.zeros_like(gates.beta)
    loop.arch_optimizer.step()
    assert gates.beta[1, 1].item() != before


def test_op_pruned_alone_keeps_its_edge():
    net = make_supernet(seed=1)
    gates = net.group_gates(1, 2)  # stage 1 nodes 2, 5
    with torch.no_grad():
        gates.alpha[0, 0, 1] = -9.0  # edge (1, 2), skip_connect
    report = prune(net, 0.01)
    assert report.ops == [(1, 1, 2, "skip_connect")]
    assert net.live_inputs(1)[2] == ((0, "sep_conv_3x3"), (0, "skip_connect"), (1, "sep_conv_3x3"))
    assert net.gate(1, 1, 2) > 0


def test_nothing_below_threshold_prunes_nothing():
    net = make_supernet(seed=2)
    before = {s: net.live_inputs(s) for s in range(2)}
    assert not prune(net, 0.01)
    assert {s: net.live_inputs(s) for s in range(2)} == before
