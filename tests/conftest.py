"""Shared fixtures: tiny spaces and networks that run in milliseconds on a CPU."""

import pytest
import torch

from ifnas.nn.macro import MacroConfig
from ifnas.nn.supernet import Supernet
from ifnas.space.lchain import LChainSpace


@pytest.fixture
def tiny_macro() -> MacroConfig:
    return MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4, stem_strides=(1,))


def make_supernet(L=3, stages=(7, 6), macro=None, seed=0, **kwargs) -> Supernet:
    """A small supernet with fixed weights (seeded) on the CPU."""
    torch.manual_seed(seed)
    macro = macro or MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)
    return Supernet(LChainSpace(L, tuple(stages)), macro, **kwargs)


@pytest.fixture
def supernet() -> Supernet:
    return make_supernet()


def reference_forward(net, x, node):
    """Logits of `net` with every live edge active, each node computed by `node`.

    `node(s, j, pairs, states, stage)` returns node `j` of stage `s` from the outputs `states`
    of the nodes before it; stem, reductions and head are `net`'s own. An independent,
    unplanned execution to test a supernet's mixing against.
    """
    x = net.stem(x)
    for s, stage in enumerate(net.stages):
        if s > 0:
            x = net.reductions[s - 1](x)
        live = net.live_inputs(s)
        states = {0: x}
        for j in range(1, net.space.stages[s]):
            if j in live:
                states[j] = node(s, j, live[j], states, stage)
        x = states[net.space.stages[s] - 1]
    return net.head(x)


def op_output(stage, i, j, op, x):
    """What op `op` of edge `(i, j)` makes of its source's output `x` (ReLU before sep_conv)."""
    if op == "skip_connect":
        return x
    return stage.ops[f"{i}_{j}"][op](torch.relu(x))
