"""Setting tariffs: the rate in KRW per unit of a work kind's use, from an instant on. A tariff starts in the
past only where none was in force; it then prices the lines recorded without one
(``compensation.usage.services.usage_reprice``, queued on commit). The tariffs in force are read by
``compensation.usage.selectors``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import Tariff, UsageUnit
from core.actors import Actor, require_staff
from core.dates import CLOCK_SKEW
from core.errors import InvalidInput, InvalidState
from core.locks import advisory_lock
from registry.audit import audit_record
from registry.models import WorkKind

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


def _starts_at(value: datetime | None, *, kind: str, unit: str) -> datetime:
    now = timezone.now()
    if value is None:
        return now
    if timezone.is_naive(value):
        raise InvalidInput(_("Give the time with its offset, e.g. 2026-12-01T00:00:00+09:00."), field="effective_from")
    if value >= now - CLOCK_SKEW:
        return max(value, now)
    # Uses already priced must stay priced as they were, so a tariff starts in the past only where no
    # tariff was in force: before the first one of its kind and unit. That prices the uses recorded as
    # unpriced, and nothing else.
    if Tariff.objects.filter(kind=kind, unit=unit, effective_from__lte=value).exists():
        raise InvalidInput(
            _(
                "This time is in the past and a tariff was already in force then; history cannot be rewritten. "
                "A tariff may start in the past only before the first one of its kind and unit."
            ),
            code="in_the_past",
            field="effective_from",
        )
    return value


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
    try:
        with transaction.atomic():
            # Serialises changes to one kind and unit, so two backdated tariffs cannot both claim one gap.
            advisory_lock(f"tariff:{kind}:{unit}")
            starts = _starts_at(effective_from, kind=kind, unit=unit)
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
            if starts < timezone.now():
                tariff_id = tariff.pk
                transaction.on_commit(lambda: _enqueue_reprice(tariff_id))
    except IntegrityError:
        raise InvalidState(
            _("A tariff for this kind and unit already starts at this instant."), code="tariff_exists"
        ) from None
    return tariff


def _enqueue_reprice(tariff_id: int) -> None:
    from compensation.tasks import usage_reprice  # tasks imports the services

    usage_reprice.delay(tariff_id)
