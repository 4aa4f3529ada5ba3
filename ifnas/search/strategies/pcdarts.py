"""PC-DARTS in the L-chain space: partial channels and edge normalization (Xu et al., 2020).

Partial channels: on every edge only the first `C / K` channels of the source go through the
ops (DARTS' softmax mix of `sep_conv_3x3`, `skip_connect`, `none`); the other channels bypass
them; the two parts are concatenated and the channels shuffled in `K` groups. Edge
normalization: node `j` weighs each incoming edge by `softmax_i(beta[i, j])` over its live
inputs, which multiplies the whole edge output, the bypass included:

    x_j = sum_i w_ij * shuffle(cat(sum_o p_ijo * o(x_i[:C/K]), x_i[C/K:])),
    w_ij = softmax_{i'}(beta[i', j])_i,  p_ij = softmax(alpha[i, j, :], none[i, j]).

Both the concatenation and the shuffle are linear and the same on every edge into `j`, so we
mix first and shuffle once per node: `x_j = shuffle(cat(sum_io w_ij p_ijo o(x_i[:C/K]),
sum_i w_ij x_i[C/K:]))`, which is the same tensor with one shuffle instead of one per edge.

The search (first-order bi-level, `beta` learning with `alpha`) and the derivation (weakest
pairs removed until the budget holds, the strength of a pair being `w_ij * p_ijo`) are
DARTS' (`ifnas.search.strategies.darts`). The derived network uses every channel.
"""

import torch
import torch.nn.functional as F

from ifnas.nn.ops import SKIP
from ifnas.nn.stage import NodeStep, StageOps, run_op
from ifnas.search.strategies.darts import MASKED_LOGIT, Darts, DartsSupernet
from ifnas.space.lchain import OPS


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle: (B, groups * c, H, W) read as (groups, c), written as (c, groups)."""
    B, C, H, W = x.shape
    return x.view(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


class PartialStageOps(StageOps):
    """A stage's ops on `channels / k` channels, run as PC-DARTS' partial-channel edges.

    A step's weights are a pair: the weight of each `(input, op)` of the step (`w_ij * p_ijo`)
    and the edge weight `w_ij` of each of its pairs, from which the bypass takes one per input.
    """

    def __init__(self, edges, channels: int, k: int):
        if k < 1 or channels % k:
            raise ValueError(
                f"pcdarts sends 1/K of the channels through the ops: a stage of {channels} "
                f"channels needs a K that divides it, got K={k} (set model.width to a "
                f"multiple of search.pc_k)"
            )
        super().__init__(edges, channels // k)
        self.k = k

    def node_output(
        self, step: NodeStep, states, relus, weights, mix, recompute: bool = False
    ) -> torch.Tensor:
        pair_weights, edge_weights = weights
        part = []
        sources, first = [], []
        for n, (i, op) in enumerate(step.inputs):
            x = states[i]
            c = x.shape[1] // self.k
            if i not in sources:
                sources.append(i)
                first.append(n)
            if op == SKIP:
                part.append(x[:, :c])
                continue
            r = relus.get(i)
            if r is None:
                r = relus[i] = F.relu(x[:, :c])
            part.append(run_op(self.ops[f"{i}_{step.node}"][op], r, recompute))
        mixed = mix(part, pair_weights)
        if self.k == 1:
            return mixed
        c = mixed.shape[1]
        bypass = mix([states[i][:, c:] for i in sources], edge_weights[first])
        return channel_shuffle(torch.cat([mixed, bypass], dim=1), self.k)


class PCDartsSupernet(DartsSupernet):
    """DARTS' supernet with partial-channel stages and edge normalization (module docstring).

    Args:
        k: 1/k of the channels go through the ops; every stage width must be divisible by it.
    """

    learns_beta = True

    def __init__(
        self, space, macro, alpha_init=0.0, mixing="fused", k: int = 4, recompute_full=False
    ):
        self.k = k  # read by make_stage_ops during Supernet.__init__
        super().__init__(
            space, macro, alpha_init=alpha_init, mixing=mixing, recompute_full=recompute_full
        )

    def make_stage_ops(self, edges, channels):
        return PartialStageOps(edges, channels, self.k)

    def edge_weights(self, stage: int) -> torch.Tensor:
        """Edge normalization: softmax of `beta` over each node's live inputs (rows, L)."""
        beta, _ = self.stage_logits(stage)
        beta_mask, _ = self.stage_masks(stage)
        return torch.softmax(torch.where(beta_mask.bool(), beta, MASKED_LOGIT), dim=-1)

    def step_weights(self, stage, gate_index):
        pairs = self.stage_gates(stage)
        edges = self.edge_weights(stage).reshape(-1)
        return [(pairs[index], edges[index // len(OPS)]) for index in gate_index]


class PCDarts(Darts):
    name = "pcdarts"

    def build_supernet(self, cfg, space, macro):
        return PCDartsSupernet(
            space,
            macro,
            alpha_init=cfg.search.alpha_init,
            mixing=cfg.model.mixing,
            k=cfg.search.pc_k,
            recompute_full=cfg.search.recompute_full,
        )
