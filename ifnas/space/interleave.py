"""Interleaved edges, the groups `G_lam` and the sub-supernets `S_lam` (sections 3.3 and 3.4).

Two edges `(a, b)` and `(a2, b2)`, both spanning at least two nodes and ending at different
nodes, interleave when their open intervals meet: `max(a, a2) < min(b, b2)`. Grouping the nodes
`j >= 1` by `j % L` gives `L` groups; the sub-supernet `S_lam` keeps the backbone (every pre-1
edge) and every edge that ends in `G_lam`. Two nodes of one group lie at least `L` apart and an
edge spans at most `L` nodes, so no two edges of `S_lam` with different end nodes interleave.
"""

from ifnas.space.lchain import LChainSpace

Edge = tuple[int, int]


def interleave(edge: Edge, other: Edge) -> bool:
    """True when `edge` and `other` interleave (section 3.3).

    Pre-1 edges (spanning one node) and edges with the same end node never interleave.
    """
    a, b = edge
    a2, b2 = other
    if b - a < 2 or b2 - a2 < 2 or b == b2:
        return False
    return max(a, a2) < min(b, b2)


def group_of(j: int, L: int) -> int:
    """Index `lam` of the group `G_lam` holding node `j >= 1`: `j % L`."""
    if j < 1:
        raise ValueError(f"node {j} is a stage input and belongs to no group")
    return j % L


def group_nodes(n: int, L: int, lam: int) -> list[int]:
    """Nodes of a stage of `n` nodes in `G_lam`, in increasing order."""
    if not 0 <= lam < L:
        raise ValueError(f"group index lam must be in [0, {L}), got {lam}")
    return [j for j in range(1, n) if j % L == lam]


def sub_supernet_edges(space: LChainSpace, stage: int, lam: int) -> list[Edge]:
    """Edges of `S_lam` in a stage of the full space: the backbone and every edge into `G_lam`.

    This is the structural definition on the unpruned space. During a search the supernet
    substitutes, for a node whose pre-1 edge was pruned, its nearest live input edge as its
    backbone (`ifnas.nn.supernet`).
    """
    in_group = set(group_nodes(space.stages[stage], space.L, lam))
    return [(i, j) for i, j in space.edges(stage) if j - i == 1 or j in in_group]
