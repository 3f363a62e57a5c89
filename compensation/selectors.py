"""Reads of the ledger and tariffs. Balances are sums of lines, computed by the database."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from compensation.models import Account, LedgerLine, Tariff
from registry.models import Party


def account_balance(*, account: Account, until: datetime | None = None) -> int:
    """The account's balance in micro-won (debits positive), over entries effective before ``until``."""
    lines = LedgerLine.objects.filter(account=account)
    if until is not None:
        lines = lines.filter(entry__effective_at__lt=until)
    total = lines.aggregate(total=Sum("amount_micro"))["total"]
    return int(total or 0)


def party_balances(
    *, party: Party, period_start: datetime | None = None, period_end: datetime | None = None
) -> dict[str, Any]:
    """A party's balances in micro-won by account kind, and by month of ``effective_at`` (local time).

    The period is half-open, ``[period_start, period_end)``, like settlement periods. Two queries.
    """
    lines = LedgerLine.objects.filter(account__party=party)
    if period_start is not None:
        lines = lines.filter(entry__effective_at__gte=period_start)
    if period_end is not None:
        lines = lines.filter(entry__effective_at__lt=period_end)
    by_kind: dict[str, int] = {
        kind: int(total)
        for kind, total in lines.values("account__kind")
        .annotate(total=Sum("amount_micro"))
        .order_by("account__kind")
        .values_list("account__kind", "total")
    }
    months: dict[str, dict[str, int]] = {}
    for month, kind, total in (
        lines.annotate(month=TruncMonth("entry__effective_at", tzinfo=timezone.get_current_timezone()))
        .values("month", "account__kind")
        .annotate(total=Sum("amount_micro"))
        .order_by("month", "account__kind")
        .values_list("month", "account__kind", "total")
    ):
        months.setdefault(f"{timezone.localtime(month):%Y-%m}", {})[kind] = int(total)
    return {
        "party": party.pk,
        "period_start": period_start,
        "period_end": period_end,
        "by_kind": by_kind,
        "by_month": [{"month": month, "by_kind": kinds} for month, kinds in months.items()],
    }


# --- Tariffs -------------------------------------------------------------------------------


def tariff_list(*, kind: str | None = None, unit: str | None = None) -> QuerySet[Tariff]:
    tariffs = Tariff.objects.select_related("created_by")
    if kind:
        tariffs = tariffs.filter(kind=kind)
    if unit:
        tariffs = tariffs.filter(unit=unit)
    return tariffs.order_by("kind", "unit", "-effective_from", "-id")


def _pairs_filter(pairs: Iterable[tuple[str, str]]) -> Q:
    condition = Q(pk__in=[])
    for kind, unit in set(pairs):
        condition |= Q(kind=kind, unit=unit)
    return condition


def tariffs_in_force(*, pairs: Iterable[tuple[str, str]], at: datetime) -> dict[tuple[str, str], Tariff]:
    """For each ``(work kind, unit)``, the tariff in force at ``at`` (the latest started at or before it).

    One query; a pair without a tariff in force is absent (its uses are unpriced, never free).
    """
    in_force: dict[tuple[str, str], Tariff] = {}
    for tariff in Tariff.objects.filter(_pairs_filter(pairs), effective_from__lte=at).order_by(
        "kind", "unit", "-effective_from"
    ):
        in_force.setdefault((tariff.kind, tariff.unit), tariff)
    return in_force


@dataclass(frozen=True)
class TariffSchedule:
    """Every tariff of some pairs, for pricing many uses at different instants without more queries."""

    starts: dict[tuple[str, str], list[datetime]]
    tariffs: dict[tuple[str, str], list[Tariff]]

    def at(self, kind: str, unit: str, at: datetime) -> Tariff | None:
        starts = self.starts.get((kind, unit), [])
        index = bisect.bisect_right(starts, at)
        return self.tariffs[(kind, unit)][index - 1] if index else None


def tariff_schedule(*, pairs: Iterable[tuple[str, str]]) -> TariffSchedule:
    """All tariffs of ``pairs`` in one query, ordered by start, to look up the one in force at any instant."""
    starts: dict[tuple[str, str], list[datetime]] = {}
    tariffs: dict[tuple[str, str], list[Tariff]] = {}
    for tariff in Tariff.objects.filter(_pairs_filter(pairs)).order_by("kind", "unit", "effective_from"):
        starts.setdefault((tariff.kind, tariff.unit), []).append(tariff.effective_from)
        tariffs.setdefault((tariff.kind, tariff.unit), []).append(tariff)
    return TariffSchedule(starts=starts, tariffs=tariffs)
