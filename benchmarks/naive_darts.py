"""The naive DARTS baseline: the L-chain supernet computed the way the DARTS reference code does.

Every edge of the full supernet runs at every step; each edge is a `MixedOp` whose ops are
summed as `sum(w * op(x))`; every `sep_conv_3x3` applies its own ReLU (DARTS' `SepConv` starts
with `nn.ReLU(inplace=False)`), and each node sums its edges' outputs with Python's `sum`. The
gates are IF-NAS's (`sigmoid(beta) * sigmoid(alpha)`), so this network computes the same
function as `ifnas.nn.supernet.Supernet` with every edge active; only the execution differs.

This is a baseline for the benchmarks, not a feature of the package.
"""

import torch
from torch import nn

from ifnas.nn.head import Head
from ifnas.nn.macro import MacroConfig
from ifnas.nn.reduction import Reduction
from ifnas.nn.stem import Stem
from ifnas.space.lchain import LChainSpace


class NaiveSepConv(nn.Module):
    """DARTS' `SepConv`: `ReLU, dw 3x3, pw 1x1, BN` twice, ReLUs not in place."""

    def __init__(self, channels: int):
        super().__init__()
        C = channels
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C),
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C),
        )

    def forward(self, x):
        return self.op(x)


class NaiveMixedOp(nn.Module):
    """DARTS' `MixedOp`: `sum(w * op(x) for w, op in zip(weights, ops))`."""

    def __init__(self, channels: int):
        super().__init__()
        self._ops = nn.ModuleList([NaiveSepConv(channels), nn.Identity()])

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops, strict=True))


class NaiveDartsSupernet(nn.Module):
    """The full L-chain supernet with naive mixing; gates per edge `(N, L)` and op `(N, L, 2)`."""

    def __init__(self, space: LChainSpace, macro: MacroConfig):
        super().__init__()
        self.space = space
        num_stages = len(space.stages)
        widths = macro.stage_widths(num_stages)
        self.stem = Stem(macro.in_channels, macro.width, macro.stem_strides)
        self.reductions = nn.ModuleList(Reduction(widths[s - 1]) for s in range(1, num_stages))
        self.head = Head(widths[-1], macro.num_classes)
        self.cells = nn.ModuleList(
            nn.ModuleDict({f"{i}_{j}": NaiveMixedOp(widths[s]) for i, j in space.edges(s)})
            for s in range(num_stages)
        )
        self.betas = nn.ParameterList(torch.zeros(n, space.L) for n in space.stages)
        self.alphas = nn.ParameterList(torch.zeros(n, space.L, 2) for n in space.stages)

    def arch_parameters(self):
        return [*self.betas, *self.alphas]

    def weight_parameters(self):
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x):
        x = self.stem(x)
        for s, cell in enumerate(self.cells):
            if s > 0:
                x = self.reductions[s - 1](x)
            gates = torch.sigmoid(self.betas[s])[..., None] * torch.sigmoid(self.alphas[s])
            states = [x]
            for j in range(1, self.space.stages[s]):
                states.append(
                    sum(
                        cell[f"{i}_{j}"](states[i], gates[j, j - i - 1])
                        for i in self.space.precursors(j)
                    )
                )
            x = states[-1]
        return self.head(x)
