"""Networks of the cell spaces (`ifnas.space.cells`): the cell supernet and the derived network.

The layout is DARTS': a stem; the cells of `CellSpace.layout()`; global pooling and a
classifier. Cell `k` reads the outputs of cells `k - 2` and `k - 1` (the stem's for the first
cells), each brought to the cell's `C` channels by `ReLU, conv 1x1, BN` (by a factorized
reduction when the cell two back has twice the resolution). Node `j >= 2` sums the ops of its
inputs; the cell outputs the concatenation of its intermediate nodes (`nodes * C` channels).
In a reduction cell the edges from the two inputs have stride 2 (`sep_conv_3x3` strides its
first depthwise convolution, `skip_connect` becomes a factorized reduction) and `C` doubles.
As in the L-chain stages, each source node's ReLU is computed once for all its ops.

The supernet gates every `(edge, op)` with `sigmoid(beta[i, j]) * sigmoid(alpha[i, j, o])`,
stored per searched cell and per intermediate node (`gates["c{slot}_n{j}"]`) so that a
sub-supernet step updates its own group only. Group `G_lam` is node `lam + 2` of every cell;
in `S_lam` the other nodes run on their nearest live input (`ifnas.space.cells`).
"""

import logging
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ifnas.cell_genotype import CellGenotype
from ifnas.nn.head import Head
from ifnas.nn.macro import MacroConfig
from ifnas.nn.mixing import get_mixing, unit_mix
from ifnas.nn.ops import SEP_CONV, SepConv3x3
from ifnas.nn.stage import NodeStep, run_op
from ifnas.nn.stem import Stem
from ifnas.nn.supernet import Activation
from ifnas.space.cells import CellSpace
from ifnas.space.lchain import OPS

_logger = logging.getLogger(__name__)


class ReLUConvBN(nn.Sequential):
    """`ReLU, conv 1x1, BN`: a cell input brought to the cell's channels."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(in_channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )


class FactorizedReduce(nn.Module):
    """Stride-2 `conv 1x1` on the map and on the map shifted by a pixel, concatenated, BN.

    Args:
        relu: apply a ReLU first (`False` when the caller passes the shared ReLU).
    """

    def __init__(self, in_channels: int, channels: int, relu: bool = False):
        super().__init__()
        if channels % 2:
            raise ValueError(f"a factorized reduction needs an even channel count, got {channels}")
        self.relu = relu
        self.conv1 = nn.Conv2d(in_channels, channels // 2, 1, stride=2, bias=False)
        self.conv2 = nn.Conv2d(in_channels, channels // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        if self.relu:
            x = F.relu(x)
        return self.bn(torch.cat([self.conv1(x), self.conv2(x[:, :, 1:, 1:])], dim=1))


class CellOps(nn.Module):
    """The modules of one cell: its two input projections and the ops of its `(i, j, op)`.

    An identity `skip_connect` has no module.
    """

    def __init__(
        self,
        pairs: Iterable[tuple[int, int, str]],
        channels: int,
        in_channels: tuple[int, int],
        reduce: bool,
        reduce_prev: bool,
        nodes: int,
    ):
        super().__init__()
        C = channels
        c_pp, c_p = in_channels
        self.preprocess0 = (
            FactorizedReduce(c_pp, C, relu=True) if reduce_prev else ReLUConvBN(c_pp, C)
        )
        self.preprocess1 = ReLUConvBN(c_p, C)
        ops: dict[str, dict[str, nn.Module]] = {}
        for i, j, op in pairs:
            stride = 2 if reduce and i < 2 else 1
            if op == SEP_CONV:
                module = SepConv3x3(C, stride)
            elif stride == 2:
                module = FactorizedReduce(C, C)
            else:
                continue
            ops.setdefault(f"{i}_{j}", {})[op] = module
        self.ops = nn.ModuleDict({key: nn.ModuleDict(m) for key, m in ops.items()})
        self.nodes = nodes

    def forward(
        self, s0, s1, steps: Sequence[NodeStep], weights: Sequence, mix, recompute: bool = False
    ) -> torch.Tensor:
        """The cell's output; `recompute` as in `StageOps.run`."""
        states = {0: self.preprocess0(s0), 1: self.preprocess1(s1)}
        relus: dict[int, torch.Tensor] = {}
        for step, w in zip(steps, weights, strict=True):
            tensors = []
            for i, op in step.inputs:
                edge = self.ops[f"{i}_{step.node}"] if f"{i}_{step.node}" in self.ops else {}
                if op not in edge:
                    tensors.append(states[i])  # identity skip_connect
                    continue
                r = relus.get(i)
                if r is None:
                    r = relus[i] = F.relu(states[i])
                tensors.append(run_op(edge[op], r, recompute))
            states[step.node] = mix(tensors, w)
        return torch.cat([states[j] for j in range(2, self.nodes + 2)], dim=1)


def _cells(space: CellSpace, macro: MacroConfig, pairs_of) -> tuple[nn.ModuleList, int]:
    """The cells of the layout, with `pairs_of(cell)` their `(i, j, op)`; and the last width."""
    macro.stage_resolutions(len(space.cells))
    layout = space.layout()
    C = macro.width
    c_pp = c_p = macro.width
    cells = nn.ModuleList()
    for k, kind in enumerate(layout):
        reduce = kind == "reduce"
        if reduce:
            C *= 2
        reduce_prev = k > 0 and layout[k - 1] == "reduce"
        cells.append(CellOps(pairs_of(k), C, (c_pp, c_p), reduce, reduce_prev, space.nodes))
        c_pp, c_p = c_p, space.nodes * C
    return cells, c_p


def _steps(inputs: dict[int, tuple[tuple[int, str], ...]]) -> tuple[NodeStep, ...]:
    return tuple(NodeStep(j, tuple(inputs[j]), ()) for j in sorted(inputs))


class CellNetwork(nn.Module):
    """The network a `CellGenotype` describes, inputs summed with weight 1."""

    def __init__(self, genotype: CellGenotype):
        super().__init__()
        space, macro = genotype.space, genotype.macro
        self.genotype = genotype
        self.slot_of = [space.genotype_slot(k) for k in range(len(space.layout()))]
        self.stem = Stem(macro.in_channels, macro.width, macro.stem_strides)
        self.cells, channels = _cells(
            space,
            macro,
            lambda k: [
                (i, j, op)
                for j, pairs in genotype.slots[self.slot_of[k]].items()
                for i, op in pairs
            ],
        )
        self.head = Head(channels, macro.num_classes)
        self._steps = [_steps(slot) for slot in genotype.slots]

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell, slot in zip(self.cells, self.slot_of, strict=True):
            steps = self._steps[slot]
            s0, s1 = s1, cell(s0, s1, steps, [None] * len(steps), unit_mix)
        return self.head(s1)


class NodeGates(nn.Module):
    """`beta` (inputs,) and `alpha` (inputs, ops) of one intermediate node of a searched cell,
    with their masks (buffers: pruning survives `state_dict`)."""

    def __init__(self, inputs: int, beta_init: float, alpha_init: float):
        super().__init__()
        self.beta = nn.Parameter(torch.full((inputs,), float(beta_init)))
        self.alpha = nn.Parameter(torch.full((inputs, len(OPS)), float(alpha_init)))
        self.register_buffer("beta_mask", torch.ones(inputs))
        self.register_buffer("alpha_mask", torch.ones(inputs, len(OPS)))


class CellSupernet(nn.Module):
    """The weight-sharing network of a cell space, with interleaving-free groups per cell.

    Args:
        space: the cell space (`darts_cell` shares its two cell genotypes over the cells of
            their kind, `goldnas_cell` searches every cell on its own).
        macro, beta_init, alpha_init, mixing, recompute_full: as for the L-chain `Supernet`.

    A node keeps at least `min_inputs` live inputs (2 in `darts_cell`, whose derived nodes
    keep two; 1 in `goldnas_cell`): the cells' outputs concatenate every intermediate node,
    so none may die.
    """

    def __init__(
        self,
        space: CellSpace,
        macro: MacroConfig,
        beta_init: float = 0.0,
        alpha_init: float = 0.0,
        mixing: str = "fused",
        recompute_full: bool = False,
    ):
        super().__init__()
        self.space = space
        self.macro = macro
        self.mix = get_mixing(mixing)
        self.mixing = mixing
        self.recompute_full = recompute_full
        self.min_inputs = 2 if space.kind == "darts_cell" else 1
        self.slot_of = [space.genotype_slot(k) for k in range(len(space.layout()))]

        all_pairs = [(i, j, op) for i, j in space.edges() for op in OPS]
        self.stem = Stem(macro.in_channels, macro.width, macro.stem_strides)
        self.cells, channels = _cells(space, macro, lambda k: all_pairs)
        self.head = Head(channels, macro.num_classes)
        self.gates = nn.ModuleDict(
            {
                f"c{slot}_n{j}": NodeGates(j, beta_init, alpha_init)
                for slot in range(space.num_slots())
                for j in range(2, space.nodes + 2)
            }
        )
        self._activation = Activation()
        self._plans: dict = {}
        self._live: list | None = None

    # ---- parameters and activation ---------------------------------------------------------

    def node_gates(self, slot: int, j: int) -> NodeGates:
        if not (0 <= slot < self.space.num_slots() and 2 <= j < self.space.nodes + 2):
            raise ValueError(f"node {j} of searched cell {slot} is not in this cell space")
        return self.gates[f"c{slot}_n{j}"]

    def arch_parameters(self):
        for gates in self.gates.values():
            yield gates.beta
            yield gates.alpha

    def weight_parameters(self):
        arch = {id(p) for p in self.arch_parameters()}
        return (p for p in self.parameters() if id(p) not in arch)

    @property
    def activation(self) -> Activation:
        return self._activation

    def activate(self, activation: Activation) -> None:
        """Choose the edges of the next steps and which gates learn (`Activation`; group `lam`
        is node `lam + 2` of every cell)."""
        if activation.group is not None and not 0 <= activation.group < self.space.L:
            raise ValueError(
                f"group must be None or in [0, {self.space.L}), got {activation.group}"
            )
        if activation.interleaved:
            raise ValueError("the interleaving ablation is implemented for the L-chain space")
        self._activation = activation

    def _apply(self, fn, recurse=True):
        self._plans = {}
        return super()._apply(fn, recurse)

    def invalidate(self) -> None:
        self._plans = {}
        self._live = None

    # ---- live inputs and plans -------------------------------------------------------------

    def live_inputs(self, slot: int) -> dict[int, tuple[tuple[int, str], ...]]:
        """Live `(input, op)` pairs of every intermediate node of a searched cell."""
        if self._live is None:
            self._live = [self._read_live(s) for s in range(self.space.num_slots())]
        return self._live[slot]

    def _read_live(self, slot: int) -> dict[int, tuple[tuple[int, str], ...]]:
        live = {}
        for j in range(2, self.space.nodes + 2):
            gates = self.node_gates(slot, j)
            edge_mask, op_mask = gates.beta_mask.tolist(), gates.alpha_mask.tolist()
            live[j] = tuple(
                (i, op)
                for i in range(j)
                if edge_mask[i]
                for o, op in enumerate(OPS)
                if op_mask[i][o]
            )
        return live

    def _plan(self) -> list[tuple[tuple[NodeStep, ...], tuple[torch.Tensor, ...]]]:
        group = self._activation.group
        plans = self._plans.get(group)
        if plans is None:
            plans = self._plans[group] = [
                self._build_plan(s, group) for s in range(self.space.num_slots())
            ]
        return plans

    def _build_plan(self, slot: int, group: int | None):
        active = {}
        for j, pairs in self.live_inputs(slot).items():
            if group is None or j == self.space.group_node(group):
                active[j] = pairs
            else:
                nearest = max(i for i, _ in pairs)
                active[j] = tuple(p for p in pairs if p[0] == nearest)
        steps = _steps(active)
        device = self.gates[f"c{slot}_n2"].beta.device
        index = tuple(
            torch.tensor(
                [i * len(OPS) + OPS.index(op) for i, op in step.inputs],
                dtype=torch.long,
                device=device,
            )
            for step in steps
        )
        return steps, index

    # ---- gates -----------------------------------------------------------------------------

    def node_logits(self, slot: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`beta` and `alpha` of a node, detached unless its group learns now."""
        act = self._activation
        gates = self.node_gates(slot, j)
        learns = act.group is None or self.space.group_node(act.group) == j
        beta = gates.beta if learns and act.learn_beta else gates.beta.detach()
        alpha = gates.alpha if learns and act.learn_alpha else gates.alpha.detach()
        return beta, alpha

    def node_weights(self, slot: int, j: int) -> torch.Tensor:
        """`sigmoid(beta)[:, None] * sigmoid(alpha)` of a node, flat, as the plans index."""
        beta, alpha = self.node_logits(slot, j)
        return (torch.sigmoid(beta)[:, None] * torch.sigmoid(alpha)).reshape(-1)

    @torch.no_grad()
    def gate(self, slot: int, i: int, j: int, op: str | None = None) -> float:
        gates = self.node_gates(slot, j)
        if op is None:
            return float(torch.sigmoid(gates.beta[i]) * gates.beta_mask[i])
        o = OPS.index(op)
        return float(torch.sigmoid(gates.alpha[i, o]) * gates.alpha_mask[i, o])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plans = self._plan()
        weights = []
        for slot, (steps, index) in enumerate(plans):
            per_node = {j: self.node_weights(slot, j) for j in range(2, self.space.nodes + 2)}
            weights.append([per_node[step.node][ix] for step, ix in zip(steps, index, strict=True)])
        recompute = (
            self.recompute_full
            and self._activation.group is None
            and self.training
            and torch.is_grad_enabled()
        )
        s0 = s1 = self.stem(x)
        for cell, slot in zip(self.cells, self.slot_of, strict=True):
            s0, s1 = s1, cell(s0, s1, plans[slot][0], weights[slot], self.mix, recompute)
        return self.head(s1)

    # ---- masks -----------------------------------------------------------------------------

    def can_remove(self, slot: int, i: int, j: int, op: str | None = None) -> bool:
        """Whether node `j` keeps `min_inputs` live inputs once edge `(i, j)` (or its op) goes."""
        live = self.live_inputs(slot)[j]
        left = [p for p in live if p[0] != i or (op is not None and p[1] != op)]
        return len({i2 for i2, _ in left}) >= self.min_inputs

    @torch.no_grad()
    def mask_edge(self, slot: int, i: int, j: int) -> None:
        gates = self.node_gates(slot, j)
        gates.beta_mask[i] = 0
        gates.alpha_mask[i] = 0
        self.invalidate()

    @torch.no_grad()
    def mask_op(self, slot: int, i: int, j: int, op: str) -> None:
        gates = self.node_gates(slot, j)
        gates.alpha_mask[i, OPS.index(op)] = 0
        if not gates.alpha_mask[i].any():
            gates.beta_mask[i] = 0
        self.invalidate()


class CellCosts:
    """MAdds of cell networks from a table: every op of every cell, plus the fixed layers.

    `fixed` counts the stem, the input projections of the cells and the classifier; a live
    `(i, j, op)` of cell `k` adds `op_madds[k][(i, j, op)]` (0 for an identity skip). Counted
    once with the flop counter on the meta device.
    """

    def __init__(self, space: CellSpace, macro: MacroConfig):
        from ifnas.metrics import count_madds

        self.space = space
        self.slot_of = [space.genotype_slot(k) for k in range(len(space.layout()))]
        with torch.device("meta"):
            net = CellSupernet(space, macro, mixing="naive")
        size = macro.stage_resolutions(len(space.cells))[0]
        channels = macro.width
        self.fixed = count_madds(net.stem, (macro.in_channels, macro.input_size, macro.input_size))
        self.op_madds: list[dict[tuple[int, int, str], int]] = []
        c_pp, c_p, r_pp, r_p = channels, channels, size, size
        for cell, kind in zip(net.cells, space.layout(), strict=True):
            self.fixed += count_madds(cell.preprocess0, (c_pp, r_pp, r_pp))
            self.fixed += count_madds(cell.preprocess1, (c_p, r_p, r_p))
            C = cell.preprocess1[1].out_channels
            r_out = r_p // 2 if kind == "reduce" else r_p
            costs = {}
            for i, j in space.edges():
                for op in OPS:
                    edge = cell.ops[f"{i}_{j}"] if f"{i}_{j}" in cell.ops else {}
                    r_in = r_p if i < 2 else r_out
                    costs[(i, j, op)] = count_madds(edge[op], (C, r_in, r_in)) if op in edge else 0
            self.op_madds.append(costs)
            c_pp, c_p, r_pp, r_p = c_p, space.nodes * C, r_p, r_out
        self.fixed += count_madds(net.head, (c_p, r_p, r_p))

    def of_slots(self, slots: Sequence[dict[int, Iterable[tuple[int, str]]]]) -> int:
        """MAdds of the network whose searched cells keep `slots[slot][j]` pairs."""
        return self.fixed + sum(
            costs[(i, j, op)]
            for costs, slot in zip(self.op_madds, self.slot_of, strict=True)
            for j, pairs in slots[slot].items()
            for i, op in pairs
        )

    def of_supernet(self, supernet: CellSupernet) -> int:
        return self.of_slots([supernet.live_inputs(s) for s in range(self.space.num_slots())])

    def smallest(self) -> int:
        """MAdds of the cheapest network of the space: each node keeps its `min_inputs`
        cheapest inputs (DARTS: 2, GOLD-NAS: 1), each with its cheapest op."""
        keep = 2 if self.space.kind == "darts_cell" else 1
        slots = []
        for slot in range(self.space.num_slots()):
            cells = [k for k, s in enumerate(self.slot_of) if s == slot]
            chosen = {}
            for j in range(2, self.space.nodes + 2):
                best = {
                    i: min(
                        OPS, key=lambda op, i=i: sum(self.op_madds[k][(i, j, op)] for k in cells)
                    )
                    for i in range(j)
                }
                cost = {i: sum(self.op_madds[k][(i, j, best[i])] for k in cells) for i in best}
                chosen[j] = tuple((i, best[i]) for i in sorted(cost, key=cost.get)[:keep])
            slots.append(chosen)
        return self.of_slots(slots)
