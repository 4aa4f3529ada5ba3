"""The L-chain supernet with edge gates `beta`, op gates `alpha` and hard pruning masks.

Node `j >= 1` of a stage computes (DESIGN.md section 4)::

    x_j = sum_{live (i, j)} sum_{live o} sigmoid(beta[i, j]) * sigmoid(alpha[i, j, o]) * o(x_i)

over the edges active in the current step. `beta` and `alpha` are stored per stage and per
group `G_lam` (`gates["s{stage}_g{lam}"]`), one row per node of the group and one column per
precursor distance `l = j - i`; a separate parameter per group lets a sub-supernet step update
its own group only, while the optimizer's momentum of the other groups waits untouched.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ifnas.nn.head import Head
from ifnas.nn.macro import MacroConfig
from ifnas.nn.mixing import get_mixing
from ifnas.nn.reduction import Reduction
from ifnas.nn.stage import NodeStep, StageOps, schedule
from ifnas.nn.stem import Stem
from ifnas.space._graph import alive_nodes
from ifnas.space.interleave import group_nodes
from ifnas.space.lchain import OPS, LChainSpace

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activation:
    """Which edges take part in a step and which architecture parameters learn in it.

    Args:
        group: `None` runs every live edge (the warm-up step, or a step without IF sampling);
            `lam` runs the sub-supernet `S_lam`: the backbone plus every live edge into `G_lam`.
        learn_beta: whether the edge gates of the learning groups get gradients.
        learn_alpha: whether the op gates of the learning groups get gradients.
        interleaved: live edges `(stage, i, j)` with `j` outside `G_lam` added to `S_lam` with
            their gates frozen: the interleaving ablation of the paper's Table 5 and Figure 1
            (`ifnas.search.interleaved`). Empty for IF-NAS itself.

    The learning groups are `G_lam` alone in `S_lam`, and every group when `group` is `None`.
    """

    group: int | None = None
    learn_beta: bool = False
    learn_alpha: bool = False
    interleaved: tuple[tuple[int, int, int], ...] = ()

    def learns(self, lam: int) -> bool:
        return self.group is None or self.group == lam


class GroupGates(nn.Module):
    """`beta` (rows, L) and `alpha` (rows, L, ops) of the nodes of one group in one stage.

    Masks are buffers, so pruning survives `state_dict` round trips: 1 for a live gate, 0 for a
    pruned one or for a precursor distance that does not exist (`l > j`).
    """

    def __init__(self, nodes: list[int], L: int, beta_init: float, alpha_init: float):
        super().__init__()
        self.nodes = tuple(nodes)
        rows = len(nodes)
        self.beta = nn.Parameter(torch.full((rows, L), float(beta_init)))
        self.alpha = nn.Parameter(torch.full((rows, L, len(OPS)), float(alpha_init)))
        exists = torch.tensor([[float(l + 1 <= j) for l in range(L)] for j in nodes])
        exists = exists.reshape(rows, L)
        self.register_buffer("beta_mask", exists.clone())
        self.register_buffer("alpha_mask", exists[..., None].repeat(1, 1, len(OPS)))


@dataclass(frozen=True)
class _StagePlan:
    steps: tuple[NodeStep, ...]
    gate_index: tuple[torch.Tensor, ...]  # per step: flat indices into the stage's gate tensor


class Supernet(nn.Module):
    """The weight-sharing network of the L-chain space.

    Args:
        space: `L` and the node count of each stage.
        macro: input, stem, widths and classes.
        beta_init: initial edge gate logit (gate `sigmoid(beta_init)`).
        alpha_init: initial op gate logit.
        mixing: `"fused"` sums through `ifnas_kernels.weighted_sum`, `"naive"` with DARTS'
            `sum(w * op(x))`.
        recompute_full: in training steps on every live edge (the warm-up steps, the peak of
            an IF cycle's memory) recompute each op's activations in backward instead of
            keeping them. A recomputed op updates its BN running statistics twice; the search
            re-estimates them before every validation (`recalibrate_batchnorm`) anyway.

    Only active edges run: an edge that is pruned, or outside the current sub-supernet, costs
    nothing, and nodes whose output reaches nothing active are skipped.
    """

    def __init__(
        self,
        space: LChainSpace,
        macro: MacroConfig,
        beta_init: float = 0.0,
        alpha_init: float = 0.0,
        mixing: str = "fused",
        recompute_full: bool = False,
    ):
        super().__init__()
        self.space = space
        self.macro = macro
        num_stages = len(space.stages)
        macro.stage_resolutions(num_stages)
        widths = macro.stage_widths(num_stages)
        self.mix = get_mixing(mixing)
        self.mixing = mixing
        self.recompute_full = recompute_full

        self.stem = Stem(macro.in_channels, macro.width, macro.stem_strides)
        self.stages = nn.ModuleList(
            self.make_stage_ops(space.edges(s), widths[s]) for s in range(num_stages)
        )
        self.reductions = nn.ModuleList(Reduction(widths[s - 1]) for s in range(1, num_stages))
        self.head = Head(widths[-1], macro.num_classes)

        L = space.L
        self.gates = nn.ModuleDict()
        self._slot = {}  # (stage, node) -> (lam, row inside the stage's concatenated gates)
        for s, n in enumerate(space.stages):
            offset = 0
            for lam in range(L):
                nodes = group_nodes(n, L, lam)
                self.gates[f"s{s}_g{lam}"] = GroupGates(nodes, L, beta_init, alpha_init)
                for r, j in enumerate(nodes):
                    self._slot[(s, j)] = (lam, offset + r)
                offset += len(nodes)

        self._activation = Activation()
        self._plans: dict[int | None, list[_StagePlan]] = {}
        self._live: list[dict[int, tuple[tuple[int, str], ...]]] | None = None

    def make_stage_ops(self, edges: list[tuple[int, int]], channels: int) -> StageOps:
        """The ops of one stage (PC-DARTS builds partial-channel ones instead)."""
        return StageOps(edges, channels)

    # ---- parameters ------------------------------------------------------------------------

    def group_gates(self, stage: int, lam: int) -> GroupGates:
        return self.gates[f"s{stage}_g{lam}"]

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        """`beta` and `alpha` of every group (the architecture parameters)."""
        for gates in self.gates.values():
            yield gates.beta
            yield gates.alpha

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter but the architecture's: convolutions, BN and the classifier."""
        arch = {id(p) for p in self.arch_parameters()}
        return (p for p in self.parameters() if id(p) not in arch)

    # ---- activation and plans --------------------------------------------------------------

    @property
    def activation(self) -> Activation:
        return self._activation

    def activate(self, activation: Activation) -> None:
        """Choose the edges of the next steps and which gates learn (see `Activation`)."""
        if activation.group is not None and not 0 <= activation.group < self.space.L:
            raise ValueError(
                f"group must be None or in [0, {self.space.L}), got {activation.group}"
            )
        if activation.interleaved and activation.group is None:
            raise ValueError("interleaved edges are added to a sub-supernet: group must be set")
        self._activation = activation

    def _apply(self, fn, recurse=True):
        # Plans hold index tensors on the parameters' device; rebuild them after a move.
        self._plans = {}
        return super()._apply(fn, recurse)

    def invalidate(self) -> None:
        """Forget cached plans and live sets; call after changing a mask."""
        self._plans = {}
        self._live = None

    def live_inputs(self, stage: int) -> dict[int, tuple[tuple[int, str], ...]]:
        """Live `(input, op)` pairs of every node with at least one, read from the masks."""
        if self._live is None:
            self._live = [self._read_live(s) for s in range(len(self.space.stages))]
        return self._live[stage]

    def _read_live(self, stage: int) -> dict[int, tuple[tuple[int, str], ...]]:
        L = self.space.L
        live = {}
        for lam in range(L):
            gates = self.group_gates(stage, lam)
            edge_mask = gates.beta_mask.tolist()
            op_mask = gates.alpha_mask.tolist()
            for r, j in enumerate(gates.nodes):
                pairs = [
                    (j - l - 1, op)
                    for l in range(L)
                    if edge_mask[r][l]
                    for o, op in enumerate(OPS)
                    if op_mask[r][l][o]
                ]
                if pairs:
                    live[j] = tuple(sorted(pairs))
        return live

    def _plan(self) -> list[_StagePlan]:
        group, interleaved = self._activation.group, self._activation.interleaved
        key = (group, interleaved) if interleaved else group
        plans = self._plans.get(key)
        if plans is None:
            if len(self._plans) > 64:  # interleaved edges are drawn anew every step
                self._plans = {}
            plans = self._plans[key] = [
                self._build_plan(s, group, tuple((i, j) for t, i, j in interleaved if t == s))
                for s in range(len(self.space.stages))
            ]
        return plans

    def _build_plan(
        self, stage: int, group: int | None, interleaved: tuple[tuple[int, int], ...] = ()
    ) -> _StagePlan:
        n, L = self.space.stages[stage], self.space.L
        live = self.live_inputs(stage)
        if n - 1 not in live:
            raise RuntimeError(f"stage {stage} has no live path to its output node {n - 1}")

        active = {}
        for j, pairs in live.items():
            if group is None or j % L == group:
                active[j] = pairs
            else:
                # Outside G_lam a node runs on its backbone: the nearest live input edge.
                nearest = max(i for i, _ in pairs)
                active[j] = tuple(p for p in pairs if p[0] == nearest)
        for i, j in interleaved:
            added = tuple(p for p in live.get(j, ()) if p[0] == i)
            if not added or (group is not None and j % L == group):
                raise ValueError(
                    f"interleaved edge ({i}, {j}) of stage {stage} must be live and end "
                    f"outside G_{group}"
                )
            active[j] = tuple(sorted(set(active[j]) | set(added)))

        needed = {n - 1}
        for j in range(n - 1, 0, -1):
            if j in needed:
                needed.update(i for i, _ in active[j])
        steps = schedule({j: active[j] for j in needed if j >= 1})

        device = self.gates[f"s{stage}_g0"].beta.device
        gate_index = []
        for step in steps:
            _, row = self._slot[(stage, step.node)]
            flat = [
                (row * L + step.node - i - 1) * len(OPS) + OPS.index(op) for i, op in step.inputs
            ]
            gate_index.append(torch.tensor(flat, dtype=torch.long, device=device))
        return _StagePlan(steps, tuple(gate_index))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch `x` (B, in_channels, H, W) through the active edges."""
        plans = self._plan()
        recompute = (
            self.recompute_full
            and self._activation.group is None
            and self.training
            and torch.is_grad_enabled()
        )
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s > 0:
                x = self.reductions[s - 1](x)
            weights = self.step_weights(s, plans[s].gate_index)
            x = stage.run(x, plans[s].steps, weights, self.mix, recompute)
        return self.head(x)

    def step_weights(self, stage: int, gate_index: tuple[torch.Tensor, ...]) -> list:
        """What each node step of a plan hands its mix: the gates of its `(input, op)` pairs."""
        gate = self.stage_gates(stage)
        return [gate[index] for index in gate_index]

    # ---- gates -----------------------------------------------------------------------------

    def stage_logits(self, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`beta` (rows, L) and `alpha` (rows, L, ops) of a stage, groups concatenated in order.

        A group's logits are detached unless it learns in the current activation, so frozen
        gates take part in the forward pass as constants.
        """
        act = self._activation
        betas, alphas = [], []
        for lam in range(self.space.L):
            gates = self.group_gates(stage, lam)
            learns = act.learns(lam)
            betas.append(gates.beta if learns and act.learn_beta else gates.beta.detach())
            alphas.append(gates.alpha if learns and act.learn_alpha else gates.alpha.detach())
        return torch.cat(betas), torch.cat(alphas)

    def stage_gates(self, stage: int) -> torch.Tensor:
        """Gate of every `(edge, op)` of a stage, flat, in the order the plans index:
        `sigmoid(beta)[..., None] * sigmoid(alpha)` over `stage_logits`.

        Other parameterizations of the same space (DARTS' softmax, say) override this.
        """
        beta, alpha = self.stage_logits(stage)
        return (torch.sigmoid(beta)[..., None] * torch.sigmoid(alpha)).reshape(-1)

    def stage_masks(self, stage: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge and op masks of a stage, in the layout of `stage_logits`."""
        groups = [self.group_gates(stage, lam) for lam in range(self.space.L)]
        return (torch.cat([g.beta_mask for g in groups]), torch.cat([g.alpha_mask for g in groups]))

    @torch.no_grad()
    def gate(self, stage: int, i: int, j: int, op: str | None = None) -> float:
        """Edge gate `sigmoid(beta[i, j])`, or op gate `sigmoid(alpha[i, j, op])`; 0 if pruned."""
        gates, r, l = self._locate(stage, i, j)
        if op is None:
            return float(torch.sigmoid(gates.beta[r, l]) * gates.beta_mask[r, l])
        o = OPS.index(op)
        return float(torch.sigmoid(gates.alpha[r, l, o]) * gates.alpha_mask[r, l, o])

    # ---- masks -----------------------------------------------------------------------------

    def _locate(self, stage: int, i: int, j: int) -> tuple[GroupGates, int, int]:
        if not (
            0 <= stage < len(self.space.stages)
            and 1 <= j < self.space.stages[stage]
            and max(0, j - self.space.L) <= i < j
        ):
            raise ValueError(f"({i}, {j}) is not an edge of stage {stage} in this space")
        lam, _ = self._slot[(stage, j)]
        gates = self.group_gates(stage, lam)
        return gates, gates.nodes.index(j), j - i - 1

    @torch.no_grad()
    def mask_edge(self, stage: int, i: int, j: int) -> None:
        """Prune edge `(i, j)` and both its ops for good."""
        gates, r, l = self._locate(stage, i, j)
        gates.beta_mask[r, l] = 0
        gates.alpha_mask[r, l] = 0
        self.invalidate()

    @torch.no_grad()
    def mask_op(self, stage: int, i: int, j: int, op: str) -> None:
        """Prune op `op` of edge `(i, j)`; the edge goes with its last live op."""
        gates, r, l = self._locate(stage, i, j)
        gates.alpha_mask[r, l, OPS.index(op)] = 0
        if not gates.alpha_mask[r, l].any():
            gates.beta_mask[r, l] = 0
        self.invalidate()

    def kill_dead_nodes(self) -> list[tuple[int, int, int]]:
        """Prune every edge touching a dead node; return them as `(stage, i, j)`.

        A node is alive when it lies on a live path from the stage input to the stage output.
        A node whose inputs were all pruned dies, and so do the edges out of it; so does a
        node that feeds nothing alive, since its output could never reach the classifier.
        """
        killed = []
        for s, n in enumerate(self.space.stages):
            live = self.live_inputs(s)
            alive = alive_nodes(n, {j: [i for i, _ in pairs] for j, pairs in live.items()})
            if n - 1 not in alive:
                raise RuntimeError(f"stage {s} lost its last path from input to output")
            for j, pairs in live.items():
                for i in sorted({i for i, _ in pairs}):
                    if i not in alive or j not in alive:
                        killed.append((s, i, j))
        for s, i, j in killed:
            self.mask_edge(s, i, j)
        return killed
