"""Interleaving, groups and sub-supernets (sections 3.3 and 3.4)."""

import itertools

import numpy as np
import pytest

from ifnas.space.interleave import group_nodes, group_of, interleave, sub_supernet_edges
from ifnas.space.lchain import LChainSpace


def interleave_by_definition(e1, e2) -> bool:
    """The paper's words: both span >= 2 nodes, different end nodes, and some integer d with
    a < d + 1/2 < b and a' < d + 1/2 < b'."""
    (a, b), (a2, b2) = e1, e2
    if b - a < 2 or b2 - a2 < 2 or b == b2:
        return False
    return any(a < d + 0.5 < b and a2 < d + 0.5 < b2 for d in range(-1, max(b, b2) + 1))


def test_predicate_matches_the_definition_on_every_pair_of_small_edges():
    edges = [(a, b) for b in range(1, 12) for a in range(b)]
    for e1, e2 in itertools.product(edges, repeat=2):
        assert interleave(e1, e2) == interleave_by_definition(e1, e2), (e1, e2)


def test_paper_examples():
    # Figure 1's added edges (1, 4), (2, 6), (3, 7) interleave one another.
    assert interleave((1, 4), (3, 7))
    assert interleave((2, 6), (3, 7))
    assert not interleave((1, 4), (4, 7))  # touching ends do not overlap
    assert not interleave((0, 8), (1, 8))  # same end node
    assert not interleave((3, 4), (0, 8))  # a pre-1 edge never interleaves


def _interleaving_pairs(edges: np.ndarray) -> int:
    a, b = edges[:, 0][:, None], edges[:, 1][:, None]
    a2, b2 = edges[:, 0][None, :], edges[:, 1][None, :]
    both_long = (b - a >= 2) & (b2 - a2 >= 2)
    return int((both_long & (b != b2) & (np.maximum(a, a2) < np.minimum(b, b2))).sum())


def test_sub_supernets_are_interleaving_free_and_cover_every_edge():
    """For every L <= 8 and stage size <= 64 (section 3.4's guarantee)."""
    for L in range(1, 9):
        for n in range(2, 65):
            space = LChainSpace(L, (n,))
            covered = set()
            for lam in range(L):
                edges = sub_supernet_edges(space, 0, lam)
                assert len(set(edges)) == len(edges)
                assert _interleaving_pairs(np.array(edges).reshape(-1, 2)) == 0, (L, n, lam)
                covered.update(edges)
            assert covered == set(space.edges(0)), (L, n)


def test_vectorised_check_finds_interleaving_when_there_is_some():
    # The check above must be able to fail: the full 4-chain stage has interleaving pairs.
    edges = np.array(LChainSpace(4, (10,)).edges(0))
    assert _interleaving_pairs(edges) > 0


def test_groups_partition_the_nodes():
    for L in range(1, 9):
        for n in (2, 5, 18, 20, 33):
            groups = [group_nodes(n, L, lam) for lam in range(L)]
            assert sorted(j for g in groups for j in g) == list(range(1, n))
            for lam, g in enumerate(groups):
                assert all(group_of(j, L) == lam for j in g)
                assert all(b - a == L for a, b in zip(g, g[1:], strict=False))


def test_group_errors():
    with pytest.raises(ValueError, match="stage input"):
        group_of(0, 4)
    with pytest.raises(ValueError, match="lam"):
        group_nodes(10, 4, 4)


def test_edges_of_the_space():
    space = LChainSpace(3, (5,))
    assert space.edges(0) == [
        (0, 1),
        (0, 2),
        (1, 2),
        (0, 3),
        (1, 3),
        (2, 3),
        (1, 4),
        (2, 4),
        (3, 4),
    ]
    # G_1 = {1, 4}: the backbone plus every edge into nodes 1 and 4.
    assert sub_supernet_edges(space, 0, 1) == [(0, 1), (1, 2), (2, 3), (1, 4), (2, 4), (3, 4)]
