"""Space sizes: the code's counts against the paper's formula, brute force, and Table 1."""

import itertools

import pytest

from ifnas.space.counting import lchain_size, lchain_stage_size, scientific
from ifnas.space.lchain import LChainSpace


def paper_formula(n: int, L: int) -> int:
    """Section 3.2 as printed: (2^2-1)(2^4-1)...(2^(2(L-1))-1) (2^(2L)-1)^(N-L) for N nodes.

    The paper counts the N - 1 nodes after the stage input; with fewer than L of them the
    product stops early.
    """
    nodes = n - 1
    size = 1
    for j in range(1, min(L, nodes) + 1):
        size *= 2 ** (2 * j) - 1
    return size * (2 ** (2 * L) - 1) ** max(nodes - L, 0)


def brute_force_stage(n: int, L: int) -> int:
    """Enumerate every subset of the stage's (edge, op) pairs; count those that give every node
    at least one input."""
    pairs = [(j, i, o) for j in range(1, n) for i in range(max(0, j - L), j) for o in range(2)]
    count = 0
    for keep in itertools.product((False, True), repeat=len(pairs)):
        fed = {j for (j, _, _), k in zip(pairs, keep, strict=True) if k}
        count += fed == set(range(1, n))
    return count


@pytest.mark.parametrize("L", [1, 2, 3, 4, 6, 8, 20])
@pytest.mark.parametrize("n", [2, 3, 5, 18, 20, 64])
def test_stage_size_matches_paper_formula(n, L):
    assert lchain_stage_size(n, L) == paper_formula(n, L)


@pytest.mark.parametrize("n,L", [(2, 1), (3, 1), (3, 2), (4, 2), (4, 3), (5, 2)])
def test_stage_size_matches_enumeration(n, L):
    assert lchain_stage_size(n, L) == brute_force_stage(n, L)


@pytest.mark.parametrize("L,table", [(4, "1.8e116"), (6, "7.5e163"), (8, "1.6e204")])
def test_table1_to_two_digits(L, table):
    size = lchain_size(LChainSpace(L))
    assert size == paper_formula(18, L) * paper_formula(20, L) * paper_formula(18, L)
    assert scientific(size) == table


def test_L1_is_a_chain_of_three_choices_per_node():
    # L = 1: each of the 17 + 19 + 17 nodes picks a non-empty subset of two ops.
    assert lchain_size(LChainSpace(1)) == 3 ** (17 + 19 + 17)


def test_sizes_are_exact_integers():
    size = lchain_size(LChainSpace(8))
    assert isinstance(size, int)
    assert len(str(size)) == 205


@pytest.mark.parametrize(
    "value,text",
    [(999, "1.0e3"), (1049, "1.0e3"), (1050, "1.1e3"), (7, "7.0e0"), (123456, "1.2e5")],
)
def test_scientific_rounds_like_decimal_arithmetic(value, text):
    assert scientific(value) == text


@pytest.mark.parametrize("L", [0, -1, 1.5, True])
def test_L_below_one_is_an_error(L):
    with pytest.raises(ValueError, match="L must be an integer >= 1"):
        LChainSpace(L)


@pytest.mark.parametrize("stages", [(), (1,), (18, 0)])
def test_bad_stage_sizes_are_errors(stages):
    with pytest.raises(ValueError, match="stage"):
        LChainSpace(4, stages)
