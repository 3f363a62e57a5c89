"""Closed settlement periods, as the ledger sees them.

A settlement closes its period when it starts running. Postings dated inside a closed period (a chunk of
a manifest submitted before the period ended, a re-pricing, a correction) are moved to the open period:
they are dated now, and their source says which date they were meant for and which settlement closed it.
The database refuses anything else dated inside a closed period (migration 0006).

The order between postings and a settlement that starts is kept by an advisory lock: every posting holds
it shared until its transaction commits; a settlement takes it exclusively to close its period, so it
waits for postings in flight, and every posting after it sees the period closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from compensation.models import Settlement, SettlementStatus

_LOCK = "compensation.periods"
CLOSED_STATUSES = (SettlementStatus.RUNNING.value, SettlementStatus.SETTLED.value)


def period_lock(*, exclusive: bool) -> None:
    """Hold the period lock until the end of this transaction (PostgreSQL; SQLite has one writer)."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtext(%s))", [_LOCK])


@dataclass(frozen=True)
class ClosedPeriod:
    settlement_id: int
    start: datetime
    end: datetime
    status: str

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def closed_periods_covering(*, instants: Iterable[datetime]) -> list[ClosedPeriod]:
    """The closed periods that contain any of ``instants``: one query."""
    wanted = list(instants)
    if not wanted:
        return []
    rows = Settlement.objects.filter(
        status__in=CLOSED_STATUSES, period_start__lte=max(wanted), period_end__gt=min(wanted)
    ).values_list("pk", "period_start", "period_end", "status")
    periods = [ClosedPeriod(*row) for row in rows]
    return [period for period in periods if any(period.covers(instant) for instant in wanted)]
