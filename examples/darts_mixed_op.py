"""Switching a DARTS `MixedOp` to the fused op: one line in `forward`.

DARTS (Liu et al., 2019) mixes the candidate ops of an edge as `sum(w * op(x))`, which builds
one product and one partial sum per op and keeps each product for backward. `weighted_sum` does
the same arithmetic in one pass and keeps only what backward needs.

Run it: `python examples/darts_mixed_op.py` prints the largest difference between the two
edges' outputs and gradients (zero up to float32 rounding).
"""

import torch
import torch.nn.functional as F
from torch import nn

import ifnas_kernels

PRIMITIVES = ("none", "skip_connect", "sep_conv_3x3", "avg_pool_3x3")


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class SepConv(nn.Module):
    def __init__(self, C: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C, affine=False),
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, padding=1, groups=C, bias=False),
            nn.Conv2d(C, C, 1, bias=False),
            nn.BatchNorm2d(C, affine=False),
        )

    def forward(self, x):
        return self.op(x)


def make_op(name: str, C: int) -> nn.Module:
    return {
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "sep_conv_3x3": lambda: SepConv(C),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    }[name]()


class MixedOp(nn.Module):
    """The DARTS edge as the reference code writes it."""

    def __init__(self, C: int):
        super().__init__()
        self._ops = nn.ModuleList(make_op(name, C) for name in PRIMITIVES)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self._ops, strict=True))


class FusedMixedOp(MixedOp):
    """The same edge through `ifnas_kernels.weighted_sum`."""

    def forward(self, x, weights):
        return ifnas_kernels.weighted_sum([op(x) for op in self._ops], weights)


def main() -> None:
    torch.manual_seed(0)
    C = 8
    original = MixedOp(C)
    fused = FusedMixedOp(C)
    fused.load_state_dict(original.state_dict())
    x = torch.randn(4, C, 16, 16, requires_grad=True)
    alpha = torch.randn(len(PRIMITIVES), requires_grad=True)

    outputs, grads = [], []
    for edge in (original, fused):
        weights = F.softmax(alpha, dim=-1)
        y = edge(x, weights)
        outputs.append(y)
        grads.append(torch.autograd.grad((y * y).sum(), [x, alpha]))
    print("max |output difference|:", (outputs[0] - outputs[1]).abs().max().item())
    for name, a, b in zip(("x", "alpha"), *grads, strict=True):
        print(f"max |grad {name} difference|:", (a - b).abs().max().item())


if __name__ == "__main__":
    main()
