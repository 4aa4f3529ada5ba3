"""Random search: seeded, uniform, within the budget, one random input per node."""

import pytest
import torch

from ifnas.config import load_config
from ifnas.metrics import genotype_cost
from ifnas.nn.macro import MacroConfig
from ifnas.search.strategies import get_strategy
from ifnas.space.lchain import LChainSpace
from tests.search.strategies.test_darts import _Loop

MACRO = MacroConfig(in_channels=1, num_classes=10, input_size=8, width=4)
SPACE = LChainSpace(3, (7, 6))


def draw(seed, keep="all", budget=50_000):
    cfg = load_config(None, ["strategy=random", f"seed={seed}"])
    strategy = get_strategy("random")
    net = strategy.build_supernet(cfg, SPACE, MACRO)
    return strategy.derive(_Loop(net, budget), keep)


def test_same_seed_same_architecture_other_seed_other():
    assert draw(0).to_json() == draw(0).to_json()
    assert len({draw(seed).to_json() for seed in range(5)}) == 5


@pytest.mark.parametrize("budget", [40_000, 60_000])
def test_derived_architecture_fits_the_budget(budget):
    for seed in range(3):
        assert genotype_cost(draw(seed, budget=budget))["madds"] <= budget


def test_keep_one_draws_one_random_input_per_node():
    # Node 5 of stage 1 (L = 3) has inputs 2, 3, 4 with 2 ops: all 6 pairs show up.
    drawn = [draw(seed, "keep_one") for seed in range(30)]
    assert all(len(p) == 1 for g in drawn for st in g.stages for p in st.inputs.values())
    assert len({g.stages[1].inputs[5][0] for g in drawn}) == 6


def test_strengths_are_uniform_and_edges_tied():
    cfg = load_config(None, ["strategy=random", "seed=7"])
    net = get_strategy("random").build_supernet(cfg, LChainSpace(4, (40, 40)), MACRO)
    ops = torch.cat([torch.sigmoid(g.alpha[g.alpha_mask.bool()]) for g in net.gates.values()])
    assert all((g.beta == 0).all() for g in net.gates.values())
    # Kolmogorov-Smirnov distance to U(0, 1), well under its 1% critical value
    values, _ = torch.sort(ops)
    n = len(values)
    grid = torch.arange(1, n + 1) / n
    assert (grid - values).abs().max().item() < 1.63 / n**0.5
