"""Splitting an integer amount into parts that sum to it exactly (largest-remainder / Hamilton)."""

from __future__ import annotations

from collections.abc import Sequence


def allocate_largest_remainder(*, total: int, weights: Sequence[int]) -> list[int]:
    """Parts of ``total`` proportional to ``weights``, summing exactly to ``total``.

    Each part is first the floor of its exact share; the units left over go, one each, to the parts
    with the largest remainders, ties to the lower index, so the result is deterministic. A zero weight
    gets 0. A negative total (a reversal) is split as its magnitude and negated, so reversing an
    allocation negates every part exactly.
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError("total must be an int")
    if any(isinstance(w, bool) or not isinstance(w, int) for w in weights):
        raise TypeError("weights must be ints")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("at least one weight must be positive")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    parts = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    # Fewer units are left than there are positive remainders, so a zero weight never gets one.
    left = magnitude - sum(parts)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return [sign * part for part in parts]
