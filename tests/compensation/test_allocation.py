"""Largest-remainder splitting: parts sum exactly to the total, each within one unit of its share."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compensation.ledger.allocation import allocate_largest_remainder

totals = st.integers(min_value=-(10**15), max_value=10**15)
weight_lists = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30).filter(any)


@given(total=totals, weights=weight_lists)
def test_parts_sum_exactly_to_the_total(total: int, weights: list[int]) -> None:
    assert sum(allocate_largest_remainder(total=total, weights=weights)) == total


@given(total=totals, weights=weight_lists)
def test_each_part_is_within_one_unit_of_its_exact_share(total: int, weights: list[int]) -> None:
    parts = allocate_largest_remainder(total=total, weights=weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Fraction(total * weight, sum(weights))) < 1


@given(total=totals, weights=weight_lists)
def test_zero_weights_get_nothing(total: int, weights: list[int]) -> None:
    parts = allocate_largest_remainder(total=total, weights=weights)
    assert all(part == 0 for part, weight in zip(parts, weights, strict=True) if weight == 0)


@given(total=totals, weights=weight_lists)
def test_a_negative_total_mirrors_the_positive_one(total: int, weights: list[int]) -> None:
    # A reversal of an allocation negates every part exactly.
    assert allocate_largest_remainder(total=-total, weights=weights) == [
        -part for part in allocate_largest_remainder(total=total, weights=weights)
    ]


@given(total=totals, weights=weight_lists)
def test_deterministic(total: int, weights: list[int]) -> None:
    first = allocate_largest_remainder(total=total, weights=list(weights))
    assert allocate_largest_remainder(total=total, weights=list(weights)) == first


@given(total=st.integers(min_value=0, max_value=10**15), weights=weight_lists)
def test_a_larger_weight_never_gets_less(total: int, weights: list[int]) -> None:
    parts = allocate_largest_remainder(total=total, weights=weights)
    for i, (part_i, weight_i) in enumerate(zip(parts, weights, strict=True)):
        for part_j, weight_j in zip(parts[i + 1 :], weights[i + 1 :], strict=True):
            if weight_i > weight_j:
                assert part_i >= part_j
            elif weight_i < weight_j:
                assert part_i <= part_j
            else:
                assert abs(part_i - part_j) <= 1


def test_ties_go_to_the_lower_index() -> None:
    assert allocate_largest_remainder(total=2, weights=[1, 1, 1]) == [1, 1, 0]
    assert allocate_largest_remainder(total=-2, weights=[1, 1, 1]) == [-1, -1, 0]
    assert allocate_largest_remainder(total=100, weights=[1, 1, 1]) == [34, 33, 33]


def test_largest_remainders_get_the_leftover_units() -> None:
    # Exact shares 4.2857, 2.8571, 2.8571 (of 10 by 6000/4000/4000 bp): floors 4, 2, 2; two units left,
    # the two .8571s get them.
    assert allocate_largest_remainder(total=10, weights=[6000, 4000, 4000]) == [4, 3, 3]


def test_all_zero_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        allocate_largest_remainder(total=10, weights=[0, 0])
    with pytest.raises(ValueError, match="positive"):
        allocate_largest_remainder(total=10, weights=[])


def test_negative_weights_and_floats_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        allocate_largest_remainder(total=10, weights=[3, -1])
    with pytest.raises(TypeError):
        allocate_largest_remainder(total=10.0, weights=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        allocate_largest_remainder(total=10, weights=[0.5, 0.5])  # type: ignore[list-item]
