"""The cell-based micro spaces of DARTS and GOLD-NAS: structure, sizes, IF groups (Table 1, 4.5).

A cell has two input nodes, the outputs of the two cells before it, and `nodes` intermediate
nodes (4); an intermediate node may take inputs from both input nodes and from every
intermediate node before it, and the cell's output concatenates the intermediate nodes. We
number a cell's nodes `0` (the cell two back), `1` (the previous cell), `2 .. nodes + 1`
(intermediate), so node `j >= 2` has the candidate inputs `0 .. j - 1` and edges are `(i, j)`.

- DARTS (`darts_cell`, Liu et al., 2019): one normal and one reduction cell, each shared by
  every cell of its kind; an intermediate node keeps exactly two inputs, each with one of the
  7 ops that are not `none`: `prod_j C(j, 2) * 7^2` per cell, squared for the two cells.
- GOLD-NAS (`goldnas_cell`, Bi et al., 2020): 14 cells, each searched on its own; an
  intermediate node keeps any non-empty subset of its `(input, op)` pairs, with 2 ops:
  `prod_j (2^(2 j) - 1)` per cell, to the 14th power.

Searching them (section 4.5) uses the L-chain's two ops, `sep_conv_3x3` and `skip_connect`.

Interleaving-free sampling inside a cell. The cell's nodes form a chain `0, 1, .., nodes + 1`;
its backbone is the pre-1 edges `(j - 1, j)`. Every intermediate node can read node 0, so the
long edges `(0, j)` and `(0, j')` of any two intermediate nodes interleave (their intervals
share `(0, min(j, j'))`): a sub-supernet may hold the long edges of one intermediate node per
cell only. Hence `nodes` groups, `G_lam = {lam + 2}`, and `S_lam` is the backbone plus every
edge into node `lam + 2`, in every cell at once. Interleaving is counted inside a cell: edges of
consecutive cells meet only through the cells' fixed inputs and concatenated outputs, which
are not searched (the paper's cells "have a protection mechanism", section 4.5).
"""

import math
from dataclasses import dataclass

from ifnas.space.lchain import OPS

DARTS_OPS = 7  # DARTS' 8 candidates without `none`
CELL_KINDS = ("normal", "reduce")
CELL_SPACES = ("darts_cell", "goldnas_cell")


def darts_cell_size(nodes: int = 4, num_ops: int = DARTS_OPS) -> int:
    """Cells of the DARTS space: node `j` picks 2 of its `j` inputs and an op for each."""
    return math.prod(math.comb(j, 2) * num_ops**2 for j in range(2, nodes + 2))


def darts_space_size(nodes: int = 4, num_ops: int = DARTS_OPS) -> int:
    """The DARTS space: a normal and a reduction cell (1.1e18, Table 1)."""
    return darts_cell_size(nodes, num_ops) ** 2


def goldnas_cell_size(nodes: int = 4, num_ops: int = len(OPS)) -> int:
    """Cells of the GOLD-NAS space: node `j` keeps a non-empty subset of `num_ops * j` pairs."""
    return math.prod(2 ** (num_ops * j) - 1 for j in range(2, nodes + 2))


def goldnas_space_size(cells: int = 14, nodes: int = 4, num_ops: int = len(OPS)) -> int:
    """The GOLD-NAS space: `cells` independent cells (3.1e117 for 14, Table 1)."""
    return goldnas_cell_size(nodes, num_ops) ** cells


@dataclass(frozen=True)
class CellSpace:
    """A cell network: cells per stage, a reduction cell between stages, `nodes` per cell.

    Args:
        kind: `darts_cell` (one normal and one reduction genotype, shared) or `goldnas_cell`
            (one genotype per cell).
        cells: normal cells of each stage; a reduction cell joins consecutive stages (DARTS'
            8 cells are `(2, 2, 2)`, GOLD-NAS' 14 are `(4, 4, 4)`).
        nodes: intermediate nodes of a cell (4).
    """

    kind: str
    cells: tuple[int, ...] = (2, 2, 2)
    nodes: int = 4

    def __post_init__(self):
        if self.kind not in CELL_SPACES:
            raise ValueError(f"kind must be one of {list(CELL_SPACES)}, got {self.kind!r}")
        cells = tuple(self.cells)
        if not cells or any(not isinstance(c, int) or c < 0 for c in cells):
            raise ValueError(f"cells must list a count >= 0 of normal cells per stage, got {cells}")
        if not isinstance(self.nodes, int) or self.nodes < 1:
            raise ValueError(f"nodes must be an integer >= 1, got {self.nodes!r}")
        object.__setattr__(self, "cells", cells)

    @property
    def L(self) -> int:
        """Number of groups of interleaving-free sampling: one per intermediate node."""
        return self.nodes

    def layout(self) -> tuple[str, ...]:
        """The kind of every cell of the network, in order."""
        kinds = []
        for s, count in enumerate(self.cells):
            if s > 0:
                kinds.append("reduce")
            kinds.extend(["normal"] * count)
        return tuple(kinds)

    def genotype_slot(self, cell: int) -> int:
        """Which searched cell genotype cell `cell` of the layout uses."""
        if self.kind == "darts_cell":
            return CELL_KINDS.index(self.layout()[cell])
        return cell

    def num_slots(self) -> int:
        """Searched cell genotypes: 2 (normal, reduce) in DARTS, one per cell in GOLD-NAS."""
        return len(CELL_KINDS) if self.kind == "darts_cell" else len(self.layout())

    def slot_kind(self, slot: int) -> str:
        if self.kind == "darts_cell":
            return CELL_KINDS[slot]
        return self.layout()[slot]

    def edges(self) -> list[tuple[int, int]]:
        """Candidate edges `(i, j)` of a cell, ordered by end node then start node."""
        return [(i, j) for j in range(2, self.nodes + 2) for i in range(j)]

    def group_node(self, lam: int) -> int:
        """The one node of `G_lam`."""
        if not 0 <= lam < self.nodes:
            raise ValueError(f"group index lam must be in [0, {self.nodes}), got {lam}")
        return lam + 2

    def sub_supernet_edges(self, lam: int) -> list[tuple[int, int]]:
        """Edges of `S_lam` in a cell: the backbone and every edge into node `lam + 2`."""
        j = self.group_node(lam)
        return [(a, b) for a, b in self.edges() if b - a == 1 or b == j]

    def size(self, num_ops: int | None = None) -> int:
        """Architectures of this space with `num_ops` ops per edge (its own: 7 or 2)."""
        if self.kind == "darts_cell":
            return darts_space_size(self.nodes, num_ops or DARTS_OPS)
        return goldnas_space_size(len(self.layout()), self.nodes, num_ops or len(OPS))
