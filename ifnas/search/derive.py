"""Derivation of the final architecture from a pruned supernet (section 3.5)."""

import torch

from ifnas.genotype import Genotype, StageGenotype
from ifnas.nn.supernet import Supernet

KEEP_MODES = ("all", "keep_one")


@torch.no_grad()
def derive(supernet: Supernet, keep: str = "all") -> Genotype:
    """The genotype of the supernet's live architecture.

    Args:
        keep: `"all"` keeps every live `(edge, op)` (the paper's main mode); `"keep_one"` keeps
            the single strongest `(edge, op)` of each node, by `sigmoid(beta) * sigmoid(alpha)`
            (the paper's Table 3), then drops the nodes that no longer reach the output.
    """
    if keep not in KEEP_MODES:
        raise ValueError(f"keep must be one of {list(KEEP_MODES)}, got {keep!r}")
    stages = []
    for s, n in enumerate(supernet.space.stages):
        live = supernet.live_inputs(s)
        if keep == "all":
            stages.append(StageGenotype(n, dict(live)))
            continue

        best = {}
        for j, pairs in live.items():
            # Strongest gate product; ties go to the nearer input.
            best[j] = max(
                pairs,
                key=lambda p, j=j: (
                    supernet.gate(s, p[0], j) * supernet.gate(s, p[0], j, p[1]),
                    p[0],
                ),
            )
        kept = {n - 1}
        for j in range(n - 1, 0, -1):
            if j in kept:
                kept.add(best[j][0])
        stages.append(StageGenotype(n, {j: (best[j],) for j in sorted(kept) if j >= 1}))
    return Genotype(L=supernet.space.L, macro=supernet.macro, stages=tuple(stages))
