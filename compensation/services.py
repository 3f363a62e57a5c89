"""Writes for tariffs. (Ledger postings have their own module, ``compensation.ledger``.)"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import Tariff, UsageUnit
from optout.services import CLOCK_SKEW
from registry.audit import Actor, audit_record
from registry.errors import InvalidInput, InvalidState
from registry.models import WorkKind
from registry.services import require_staff

# DECIMAL(24, 12): twelve digits before the point, twelve after.
_RATE_MAX = Decimal(10) ** 12


def _rate_clean(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float | bool):
        raise InvalidInput(_('Give the rate as an exact decimal, e.g. "0.0005".'), field="rate_krw")
    try:
        rate = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidInput(_("The rate is not a number."), field="rate_krw") from None
    if not rate.is_finite() or rate < 0 or rate >= _RATE_MAX:
        raise InvalidInput(_("The rate is a number from 0 to 999,999,999,999."), field="rate_krw")
    exponent = rate.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -12 and rate != rate.quantize(Decimal("1e-12")):
        raise InvalidInput(_("The rate has at most 12 decimal places."), field="rate_krw")
    return rate.quantize(Decimal("1e-12"))


def _starts_at(value: datetime | None) -> datetime:
    now = timezone.now()
    if value is None:
        return now
    if timezone.is_naive(value):
        raise InvalidInput(_("Give the time with its offset, e.g. 2026-12-01T00:00:00+09:00."), field="effective_from")
    if value < now - CLOCK_SKEW:
        # Uses already priced must stay priced as they were: a tariff never starts in the past.
        raise InvalidInput(
            _("This time is in the past; history cannot be rewritten."), code="in_the_past", field="effective_from"
        )
    return max(value, now)


def tariff_set(
    *, actor: Actor, kind: str, unit: str, rate_krw: Decimal | int | str, effective_from: datetime | None = None
) -> Tariff:
    """Staff set the rate in KRW per unit for a work kind, from now or a later instant."""
    require_staff(actor)
    if kind not in WorkKind.values:
        raise InvalidInput(_("Unknown work kind."), code="invalid_choice", field="kind")
    if unit not in UsageUnit.values:
        raise InvalidInput(_("Unknown unit."), code="invalid_choice", field="unit")
    rate = _rate_clean(rate_krw)
    starts = _starts_at(effective_from)
    try:
        with transaction.atomic():
            tariff = Tariff.objects.create(
                kind=kind,
                unit=unit,
                rate_krw=rate,
                effective_from=starts,
                created_by=actor.person,
            )
            audit_record(
                code="compensation.tariff.set",
                actor=actor,
                target=tariff,
                data={
                    "kind": kind,
                    "unit": unit,
                    "rate_krw": format(rate.normalize(), "f"),
                    "effective_from": starts.isoformat(),
                },
            )
    except IntegrityError:
        raise InvalidState(
            _("A tariff for this kind and unit already starts at this instant."), code="tariff_exists"
        ) from None
    return tariff
