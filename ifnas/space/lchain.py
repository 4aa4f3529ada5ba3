"""The L-chain macro space (section 3.2 of the paper).

A stage is a chain of nodes `0..N-1`; node `j >= 1` may take an input from each of its `L`
precursors `max(0, j - L) <= i < j`, and every such edge carries two candidate ops,
`sep_conv_3x3` and `skip_connect`. Stages are joined by fixed stride-2 reductions.
"""

from dataclasses import dataclass

OPS: tuple[str, ...] = ("sep_conv_3x3", "skip_connect")

DEFAULT_STAGES: tuple[int, ...] = (18, 20, 18)


@dataclass(frozen=True)
class LChainSpace:
    """The L-chain space: `L` precursors per node and the node count of each stage.

    Args:
        L: how many precursors a node may connect to (the paper studies 4, 6 and 8).
        stages: node count `N` of each stage, the stage input (node 0) and output included.
    """

    L: int
    stages: tuple[int, ...] = DEFAULT_STAGES

    def __post_init__(self):
        if not isinstance(self.L, int) or isinstance(self.L, bool) or self.L < 1:
            raise ValueError(f"L must be an integer >= 1, got {self.L!r}")
        stages = tuple(self.stages)
        if not stages:
            raise ValueError("stages must name at least one stage")
        for s, n in enumerate(stages):
            if not isinstance(n, int) or isinstance(n, bool) or n < 2:
                raise ValueError(
                    f"stages[{s}] must be an integer >= 2 (input and output node), got {n!r}"
                )
        object.__setattr__(self, "stages", stages)

    def precursors(self, j: int) -> range:
        """Candidate inputs `i` of node `j`: `max(0, j - L) <= i < j`."""
        return range(max(0, j - self.L), j)

    def edges(self, stage: int) -> list[tuple[int, int]]:
        """Every candidate edge `(i, j)` of a stage, ordered by end node then start node."""
        n = self.stages[stage]
        return [(i, j) for j in range(1, n) for i in self.precursors(j)]

    def num_edges(self, stage: int) -> int:
        return len(self.edges(stage))
