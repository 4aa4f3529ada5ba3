"""Reachability inside a stage, shared by the supernet's liveness and the genotype checks."""

from collections.abc import Iterable, Mapping


def alive_nodes(n: int, sources: Mapping[int, Iterable[int]]) -> set[int]:
    """Nodes of a stage of `n` nodes that lie on some path from node 0 to node `n - 1`.

    Args:
        n: node count of the stage.
        sources: for each node `j`, the start nodes `i < j` of its edges.

    Returns the empty set when node `n - 1` cannot be reached from node 0.
    """
    reached = {0}
    for j in range(1, n):
        if any(i in reached for i in sources.get(j, ())):
            reached.add(j)
    if n - 1 not in reached:
        return set()

    alive = {n - 1}
    for j in range(n - 1, 0, -1):
        if j in alive:
            alive.update(i for i in sources.get(j, ()) if i in reached)
    return alive
