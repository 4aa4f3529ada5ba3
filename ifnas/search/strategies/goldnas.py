"""GOLD-NAS-style search: one-level sigmoid gates, progressive pruning, no IF sampling.

GOLD-NAS (Bi et al., 2020) optimizes sigmoid-gated ops in one level and prunes the weak ones
gradually under a resource constraint whose weight adapts as the search goes. Read as "the
IF-NAS algorithm without IF sampling", a GOLD-NAS-style search would be `wo_if` exactly. To make
`goldnas` a baseline of its own, it keeps everything of `wo_if` (every live edge in every step,
the same gates, thresholds, pruning, budget stop and schedule) but replaces IF-NAS's eq. 3 by
GOLD-NAS's own sparsity pressure, a resource-aware penalty:

    R = goldnas_mu * mu_scale * sum_{live (i, j, o)} c(o) * g(i, j, o),
    c(sep_conv_3x3 in stage s) = madds_s / max_s' madds_s' + goldnas_skip_cost,
    c(skip_connect) = goldnas_skip_cost,

with `g` the gate the forward pass uses (`sigmoid(beta) * sigmoid(alpha)`). Costlier ops are
pushed down harder; the constant term pushes free ops too, as GOLD-NAS adds one so that
skip connections do not survive for nothing. The weight adapts like `mu_scale` of the other
one-level strategies: it grows by `mu_growth` after every cycle (`(L + 1) * step_iters`
iterations) in which nothing was pruned. GOLD-NAS also lowers it when too much is pruned at
once; we do not, since the search ends at the budget rather than tracing a Pareto front.
"""

import torch

from ifnas.nn.supernet import Supernet
from ifnas.search.loop import SearchLoop
from ifnas.search.strategies.base import Strategy


def resource_penalty(
    supernet: Supernet, sep_costs: list[float], skip_cost: float, mu: float
) -> torch.Tensor:
    """`mu * sum c(o) * gate` over the live `(edge, op)` pairs (see the module docstring).

    Args:
        sep_costs: cost of a `sep_conv_3x3` in each stage, before `skip_cost` is added.
        skip_cost: cost every op pays on top of its own.
    """
    terms = []
    for s in range(len(supernet.space.stages)):
        _, alpha_mask = supernet.stage_masks(s)
        gates = supernet.stage_gates(s).reshape(alpha_mask.shape)
        cost = torch.tensor([sep_costs[s], 0.0], device=gates.device) + skip_cost
        terms.append((alpha_mask * gates * cost).sum())
    return mu * torch.stack(terms).sum()


class GoldNASLoop(SearchLoop):
    """`SearchLoop` without IF sampling whose regularizer is `resource_penalty`."""

    def __init__(self, supernet, cfg, train_loader, device, writer=None):
        super().__init__(supernet, cfg, train_loader, device, writer, interleaving_free=False)
        per_sep = self.madds_table.per_sep
        self.sep_costs = [m / max(per_sep) for m in per_sep]

    def regularizer(self) -> torch.Tensor:
        return resource_penalty(
            self.supernet,
            self.sep_costs,
            self.cfg.goldnas_skip_cost,
            self.mu_scale * self.cfg.goldnas_mu,
        )


class GoldNAS(Strategy):
    name = "goldnas"

    def build_loop(self, supernet, cfg, train_loader, device, writer=None):
        return GoldNASLoop(supernet, cfg.search, train_loader, device, writer)
