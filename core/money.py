"""Money: integer micro-won for amounts, exact ``Decimal`` for rates. Never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

# Accruals are kept in micro-won (1 won = 1,000,000 µ₩): a token priced at 0.0005 KRW is 500 µ₩, exactly.
MICRO = 1_000_000

# Rates are stored as DECIMAL(24, 12); products of units and rates get enough digits that nothing is
# rounded before the one rounding we mean (28 significant digits, Python's default, is not enough).
_PRECISION = 80


def price_micro(*, units: Decimal | int, rate: Decimal) -> int:
    """The price of ``units`` at ``rate`` KRW per unit, in whole micro-won, rounded half-even.

    Each line is rounded once, six decimal places below the won, so the error per line (at most
    0.5 µ₩) stays far below anything a payout can show; half-even rather than half-up because over
    millions of lines half-up drifts upward and half-even does not. Whole-won payouts round later,
    with the largest-remainder method and a rounding account.
    """
    if isinstance(units, float) or isinstance(rate, float) or isinstance(units, bool):
        raise TypeError("money is never float: pass Decimal or int")
    if not isinstance(rate, Decimal):
        raise TypeError("rate must be a Decimal")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        exact = Decimal(units) * rate * MICRO
        if not exact.is_finite():
            raise ValueError("units and rate must be finite")
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def micro_to_won(amount_micro: int) -> Decimal:
    """An amount in micro-won as exact won (for display and exports)."""
    return Decimal(amount_micro).scaleb(-6)


_PICO = 10**12


def rate_in_pico_won(rate: Decimal) -> int:
    """A rate (at most 12 decimal places, as stored) as an exact integer of 10⁻¹² won per unit."""
    scaled = rate.scaleb(12)
    if scaled != scaled.to_integral_value():
        raise ValueError("a rate has at most 12 decimal places")
    return int(scaled)


def units_in_micro(units: Decimal) -> int:
    """Units (at most 6 decimal places, as accepted in manifests) as an exact integer of millionths."""
    scaled = units.scaleb(6)
    if scaled != scaled.to_integral_value():
        raise ValueError("units have at most 6 decimal places")
    return int(scaled)


def price_micro_scaled(*, units_micro: int, rate_pico: int) -> int:
    """``price_micro`` in integer arithmetic, for the million-line path: the same result, rounded half-even.

    units * rate * 10^6 µ₩ = (units_micro / 10^6) * (rate_pico / 10^12) * 10^6 = units_micro * rate_pico / 10^12.
    """
    quotient, remainder = divmod(units_micro * rate_pico, _PICO)
    twice = 2 * remainder
    if twice > _PICO or (twice == _PICO and quotient % 2 == 1):
        quotient += 1
    return quotient
