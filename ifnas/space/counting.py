"""Exact sizes of the search spaces, as Python integers (the paper's Table 1)."""

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext

from ifnas.space.lchain import OPS, LChainSpace


def lchain_stage_size(n: int, L: int, num_ops: int = len(OPS)) -> int:
    """Architectures of one L-chain stage of `n` nodes.

    Node `j` chooses any non-empty subset of its `num_ops * min(j, L)` candidate (edge, op)
    pairs, so the count is `prod_{j=1}^{n-1} (2^(num_ops * min(j, L)) - 1)` (section 3.2).
    """
    size = 1
    for j in range(1, n):
        size *= 2 ** (num_ops * min(j, L)) - 1
    return size


def lchain_size(space: LChainSpace) -> int:
    """Architectures of the whole L-chain space: the product over its stages."""
    return math.prod(lchain_stage_size(n, space.L) for n in space.stages)


def scientific(value: int, digits: int = 2) -> str:
    """Format a huge integer as `1.8e116`, rounding exactly (a float would overflow)."""
    with localcontext() as context:
        context.rounding = ROUND_HALF_UP
        mantissa, exponent = f"{Decimal(value):.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"
