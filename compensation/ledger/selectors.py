"""Reads of the ledger. Balances are sums of lines, computed by the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from compensation.models import (
    Account,
    LedgerLine,
)
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
