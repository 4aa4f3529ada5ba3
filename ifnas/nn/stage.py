"""A stage of the L-chain network: its op modules and the execution of a plan of edges.

The supernet and the derived network share this code: both run a stage as a list of node
steps, each summing its inputs' op outputs through a mixing function.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ifnas.nn.ops import SEP_CONV, SKIP, SepConv3x3

Mix = Callable[[Sequence[torch.Tensor], torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class NodeStep:
    """One node of a plan: its `(input, op)` pairs and the sources freed once it is computed."""

    node: int
    inputs: tuple[tuple[int, str], ...]
    release: tuple[int, ...]


def schedule(node_inputs: Mapping[int, Iterable[tuple[int, str]]]) -> tuple[NodeStep, ...]:
    """Order the nodes and note after which step each source's tensors are no longer read.

    Dropping a node's output (and its ReLU) after its last reader lets autograd free whatever
    backward does not need.
    """
    order = sorted(node_inputs)
    inputs = {j: tuple(node_inputs[j]) for j in order}
    last_reader = {}
    for k, j in enumerate(order):
        for i, _ in inputs[j]:
            last_reader[i] = k
    releases = [[] for _ in order]
    for i, k in last_reader.items():
        releases[k].append(i)
    return tuple(NodeStep(j, inputs[j], tuple(sorted(releases[k]))) for k, j in enumerate(order))


class StageOps(nn.Module):
    """The parametric ops of a stage's edges, keyed `"{i}_{j}"` then by op name.

    `skip_connect` has no module: it reads the source node's output as it is.
    """

    def __init__(self, edges: Iterable[tuple[int, int]], channels: int):
        super().__init__()
        self.ops = nn.ModuleDict(
            {f"{i}_{j}": nn.ModuleDict({SEP_CONV: SepConv3x3(channels)}) for i, j in edges}
        )

    def run(
        self,
        x: torch.Tensor,
        steps: Sequence[NodeStep],
        weights: Sequence[torch.Tensor | None],
        mix: Mix,
        recompute: bool = False,
    ) -> torch.Tensor:
        """Compute the stage output from its input `x` by running `steps` in order.

        Each node applies the ReLU of its output once for all its outgoing `sep_conv_3x3`
        edges, and `mix(tensors, weights[k])` sums the op outputs of step `k`. With
        `recompute`, each op keeps only its input for backward and runs again there
        (activation checkpointing): a fraction of the memory for about a third more time.
        """
        states = {0: x}
        relus = {}
        for step, w in zip(steps, weights, strict=True):
            states[step.node] = self.node_output(step, states, relus, w, mix, recompute)
            for i in step.release:
                states.pop(i, None)
                relus.pop(i, None)
        return states[steps[-1].node]

    def node_output(
        self,
        step: NodeStep,
        states: dict[int, torch.Tensor],
        relus: dict[int, torch.Tensor],
        weights: torch.Tensor | None,
        mix: Mix,
        recompute: bool = False,
    ) -> torch.Tensor:
        """One node: `mix` of its inputs' op outputs; `relus` caches each source's ReLU."""
        tensors = []
        for i, op in step.inputs:
            if op == SKIP:
                tensors.append(states[i])
                continue
            r = relus.get(i)
            if r is None:
                r = relus[i] = F.relu(states[i])
            tensors.append(run_op(self.ops[f"{i}_{step.node}"][op], r, recompute))
        return mix(tensors, weights)


def run_op(module: nn.Module, x: torch.Tensor, recompute: bool = False) -> torch.Tensor:
    """`module(x)`; with `recompute`, keeping only `x` for backward, where it runs again.

    The reentrant form of `checkpoint` costs less per op than the default (about 15% of a
    full-supernet step at L = 8 on CPU) but gives parameters no gradients when `x` needs none,
    and refuses `torch.autograd.grad`; the search calls `backward` only, so it takes the
    reentrant form whenever `x` carries a gradient.
    """
    if not recompute:
        return module(x)
    return checkpoint(module, x, use_reentrant=x.requires_grad)
