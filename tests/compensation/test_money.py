from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import MICRO, micro_to_won, price_micro, price_micro_scaled, rate_in_pico_won, units_in_micro


def test_a_token_at_half_a_thousandth_of_a_won_is_500_micro_won() -> None:
    assert price_micro(units=1, rate=Decimal("0.0005")) == 500
    assert price_micro(units=1_000_000, rate=Decimal("0.0005")) == 500 * MICRO


def test_rounding_is_half_even_at_the_micro_won() -> None:
    rate = Decimal("0.0000005")  # half a micro-won per unit
    assert price_micro(units=1, rate=rate) == 0  # 0.5 → 0
    assert price_micro(units=3, rate=rate) == 2  # 1.5 → 2
    assert price_micro(units=5, rate=rate) == 2  # 2.5 → 2
    assert price_micro(units=Decimal("1.000001"), rate=rate) == 1  # just above half rounds up


def test_large_products_are_not_rounded_by_the_default_decimal_precision() -> None:
    # 10^12 units at the largest rate with twelve decimals: 36 significant digits before rounding.
    rate = Decimal("999999999999.999999999999")
    assert price_micro(units=10**12, rate=rate) == 999999999999999999999999 * 10**6


def test_float_is_refused() -> None:
    with pytest.raises(TypeError):
        price_micro(units=1.5, rate=Decimal("1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        price_micro(units=1, rate=0.0005)  # type: ignore[arg-type]


@given(units=st.integers(min_value=0, max_value=10**12), rate=st.decimals(min_value=0, max_value=10**6, places=12))
def test_price_is_within_half_a_micro_won_of_exact(units: int, rate: Decimal) -> None:
    price = price_micro(units=units, rate=rate)
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal(units) * rate * MICRO
    assert abs(Decimal(price) - exact) <= Decimal("0.5")
    assert price_micro(units=-units, rate=rate) == -price


def test_micro_to_won_is_exact() -> None:
    assert micro_to_won(1_500_000) == Decimal("1.5")
    assert micro_to_won(-1) == Decimal("-0.000001")


@given(
    units=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e15"), places=6),
    rate=st.decimals(min_value=Decimal(0), max_value=Decimal("999999"), places=12),
)
def test_integer_pricing_equals_decimal_pricing(units: Decimal, rate: Decimal) -> None:
    expected = price_micro(units=units, rate=rate)
    assert price_micro_scaled(units_micro=units_in_micro(units), rate_pico=rate_in_pico_won(rate)) == expected


def test_integer_pricing_rounds_half_to_even() -> None:
    # 0.5 µ₩ and 1.5 µ₩ and 2.5 µ₩: to 0, 2, 2.
    rate = Decimal("0.0000005")
    assert [price_micro_scaled(units_micro=n * 10**6, rate_pico=rate_in_pico_won(rate)) for n in (1, 3, 5)] == [0, 2, 2]
