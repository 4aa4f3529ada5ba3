"""The DARTS and GOLD-NAS cell spaces: sizes by brute force, Table 1, interleaving-free groups."""

import itertools

import pytest

from ifnas.space.cells import (
    CellSpace,
    darts_cell_size,
    darts_space_size,
    goldnas_cell_size,
    goldnas_space_size,
)
from ifnas.space.counting import scientific
from ifnas.space.interleave import interleave


def darts_cells_by_enumeration(nodes, num_ops):
    """Every cell where node j picks an ordered-free pair of distinct inputs and an op each."""
    per_node = []
    for j in range(2, nodes + 2):
        choices = set()
        for a, b in itertools.combinations(range(j), 2):
            for oa, ob in itertools.product(range(num_ops), repeat=2):
                choices.add(frozenset([(a, oa), (b, ob)]))
        per_node.append(choices)
    return sum(1 for _ in itertools.product(*per_node))


def goldnas_cells_by_enumeration(nodes, num_ops):
    total = 1
    for j in range(2, nodes + 2):
        pairs = list(itertools.product(range(j), range(num_ops)))
        subsets = sum(1 for r in range(1, len(pairs) + 1) for _ in itertools.combinations(pairs, r))
        total *= subsets
    return total


@pytest.mark.parametrize("nodes,num_ops", [(1, 1), (2, 3), (3, 2), (2, 7)])
def test_darts_cells_counted_by_enumeration(nodes, num_ops):
    assert darts_cell_size(nodes, num_ops) == darts_cells_by_enumeration(nodes, num_ops)


@pytest.mark.parametrize("nodes,num_ops", [(1, 2), (2, 2), (3, 1), (2, 3)])
def test_goldnas_cells_counted_by_enumeration(nodes, num_ops):
    assert goldnas_cell_size(nodes, num_ops) == goldnas_cells_by_enumeration(nodes, num_ops)


def test_table1_cell_spaces():
    assert scientific(darts_space_size()) == "1.1e18"
    assert scientific(goldnas_space_size()) == "3.1e117"
    assert CellSpace("darts_cell").size() == darts_space_size()
    assert CellSpace("goldnas_cell", (4, 4, 4)).size() == goldnas_space_size(14)


def test_layout_and_slots():
    space = CellSpace("darts_cell", (2, 1, 3))
    assert space.layout() == ("normal",) * 2 + ("reduce", "normal", "reduce") + ("normal",) * 3
    assert [space.genotype_slot(c) for c in range(8)] == [0, 0, 1, 0, 1, 0, 0, 0]
    assert space.num_slots() == 2
    gold = CellSpace("goldnas_cell", (1, 1))
    assert gold.num_slots() == 3 and [gold.slot_kind(k) for k in range(3)] == [
        "normal",
        "reduce",
        "normal",
    ]


@pytest.mark.parametrize("nodes", range(1, 9))
def test_sub_supernets_are_interleaving_free_and_cover_every_edge(nodes):
    space = CellSpace("goldnas_cell", (1,), nodes)
    learned = set()
    for lam in range(space.L):
        edges = space.sub_supernet_edges(lam)
        for e, f in itertools.combinations(edges, 2):
            assert not interleave(e, f), (lam, e, f)
        learned |= {(i, j) for i, j in edges if j == space.group_node(lam)}
    assert learned == set(space.edges())


def test_two_intermediate_nodes_cannot_share_a_group():
    """Their edges from node 0 always interleave: one node per group is forced."""
    space = CellSpace("darts_cell", (1,), 4)
    for j, k in itertools.combinations(range(2, space.nodes + 2), 2):
        assert interleave((0, j), (0, k))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kind": "nasnet"}, "kind must be one of"),
        ({"kind": "darts_cell", "cells": (2, -1)}, "cells must list"),
        ({"kind": "darts_cell", "nodes": 0}, "nodes must be an integer >= 1"),
    ],
)
def test_bad_cell_spaces(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CellSpace(**kwargs)
