"""Progressive pruning with hard masks (section 3.5).

Whenever a live gate drops below the threshold (0.01 in the paper) its mask goes to 0 for
good: the logit is left as it is, the gate is exactly 0 from then on, it takes no part in the
forward pass, and its optimizer state is cleared so momentum cannot move it again. A node
that loses its last input dies, and so do the edges out of it.

One guard the paper does not state: a gate whose pruning would cut the last path from a
stage's input to its output is kept (and logged), since no network could be derived after it.
"""

import logging
from dataclasses import dataclass, field

import torch

from ifnas.nn.supernet import Supernet
from ifnas.space._graph import alive_nodes
from ifnas.space.lchain import OPS

_logger = logging.getLogger(__name__)


@dataclass
class PruneReport:
    """What one call of `prune` removed, as `(stage, i, j)` edges and `(stage, i, j, op)` ops."""

    edges: list[tuple[int, int, int]] = field(default_factory=list)
    ops: list[tuple[int, int, int, str]] = field(default_factory=list)
    dead_node_edges: list[tuple[int, int, int]] = field(default_factory=list)
    guarded: list[tuple] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.edges or self.ops or self.dead_node_edges)


@torch.no_grad()
def _below_threshold(supernet: Supernet, threshold: float) -> list[tuple[float, tuple]]:
    """Live edges and ops whose gate is under `threshold`, weakest first."""
    found = []
    L = supernet.space.L
    for s in range(len(supernet.space.stages)):
        for lam in range(L):
            gates = supernet.group_gates(s, lam)
            edge_gate = (torch.sigmoid(gates.beta) * gates.beta_mask).tolist()
            op_gate = (torch.sigmoid(gates.alpha) * gates.alpha_mask).tolist()
            edge_mask = gates.beta_mask.tolist()
            op_mask = gates.alpha_mask.tolist()
            for r, j in enumerate(gates.nodes):
                for l in range(L):
                    i = j - l - 1
                    if not edge_mask[r][l]:
                        continue
                    if edge_gate[r][l] < threshold:
                        found.append((edge_gate[r][l], (s, i, j)))
                    for o, op in enumerate(OPS):
                        if op_mask[r][l][o] and op_gate[r][l][o] < threshold:
                            found.append((op_gate[r][l][o], (s, i, j, op)))
    found.sort(key=lambda item: item[0])
    return found


def output_reachable_without(supernet: Supernet, item: tuple) -> bool:
    """Whether stage `item[0]` keeps a live path to its output once `item` is removed.

    `item` is an edge `(stage, i, j)` or an op `(stage, i, j, op)`.
    """
    s = item[0]
    n = supernet.space.stages[s]
    sources = {}
    for j, pairs in supernet.live_inputs(s).items():
        kept = [
            (i, op)
            for i, op in pairs
            if not (len(item) == 3 and (i, j) == item[1:])
            and not (len(item) == 4 and (i, j, op) == item[1:])
        ]
        sources[j] = [i for i, _ in kept]
    return n - 1 in alive_nodes(n, sources)


@torch.no_grad()
def _any_below_threshold(supernet: Supernet, threshold: float) -> bool:
    """One reduction over every gate: the common case (nothing to prune) costs one sync."""
    lowest = []
    for gates in supernet.gates.values():
        if gates.beta.numel():
            lowest.append(torch.where(gates.beta_mask.bool(), gates.beta, torch.inf).min())
            lowest.append(torch.where(gates.alpha_mask.bool(), gates.alpha, torch.inf).min())
    return bool(torch.sigmoid(torch.stack(lowest).min()) < threshold)


def prune(supernet: Supernet, threshold: float) -> PruneReport:
    """Mask every live gate below `threshold`, then every edge touching a dead node."""
    report = PruneReport()
    if not _any_below_threshold(supernet, threshold):
        return report
    for value, item in _below_threshold(supernet, threshold):
        s, i, j = item[:3]
        live = supernet.live_inputs(s).get(j, ())
        if len(item) == 3 and not any(p[0] == i for p in live):
            continue  # already gone with its node
        if len(item) == 4 and (i, item[3]) not in live:
            continue
        if not output_reachable_without(supernet, item):
            report.guarded.append(item)
            _logger.warning(
                "kept %s (gate %.4f): it carries the last path of stage %d to its output",
                item,
                value,
                s,
            )
            continue
        if len(item) == 3:
            supernet.mask_edge(s, i, j)
            report.edges.append(item)
        else:
            supernet.mask_op(s, i, j, item[3])
            report.ops.append(item)
    if report.edges or report.ops:
        report.dead_node_edges = supernet.kill_dead_nodes()
    return report


@torch.no_grad()
def clear_pruned_state(optimizer: torch.optim.Optimizer, supernet: Supernet) -> None:
    """Zero the optimizer state (momentum, moments) of every masked gate.

    A masked gate gets exactly zero gradient; with its state zeroed too, no later step of SGD
    (with momentum) or Adam moves its logit.
    """
    for gates in supernet.gates.values():
        for param, mask in ((gates.beta, gates.beta_mask), (gates.alpha, gates.alpha_mask)):
            for value in optimizer.state.get(param, {}).values():
                if torch.is_tensor(value) and value.shape == mask.shape:
                    value.mul_(mask)
