"""Money: integer micro-won for amounts, exact ``Decimal`` for rates. Never float."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

# Accruals are kept in micro-won (1 won = 1,000,000 µ₩): a token priced at 0.0005 KRW is 500 µ₩, exactly.
MICRO_WON = 1_000_000

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
        exact = Decimal(units) * rate * MICRO_WON
        if not exact.is_finite():
            raise ValueError("units and rate must be finite")
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def micro_to_won(amount_micro: int) -> Decimal:
    """An amount in micro-won as exact won (for display and exports)."""
    return Decimal(amount_micro).scaleb(-6)
