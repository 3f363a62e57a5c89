"""Closed settlement periods, as the ledger sees them.

Settlements run in the order of their periods, and a settlement closes the ledger up to the end of its
period when it starts running: the books are closed through that instant. A posting dated before it (a
chunk of a manifest submitted before the period ended, a re-pricing, a backdated correction) would change
statements already written, so the ledger moves it to the open period: it is dated now, and its source
says which date it was meant for and which settlement closed it. The one exception is a running
settlement's own payouts, dated inside its period. The database refuses anything else (migration 0006).

The order between postings and a settlement that starts is kept by an advisory lock: every posting holds
it shared until its transaction commits; a settlement takes it exclusively to close its period, so it
waits for postings in flight, and every posting after it sees the period closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from compensation.models import Settlement, SettlementStatus
from core.locks import advisory_lock

_LOCK = "compensation.periods"
CLOSED_STATUSES = (SettlementStatus.RUNNING.value, SettlementStatus.SETTLED.value)


def period_lock(*, exclusive: bool) -> None:
    """Hold the period lock until the end of this transaction (PostgreSQL; SQLite has one writer)."""
    advisory_lock(_LOCK, shared=not exclusive)


@dataclass(frozen=True)
class ClosedBooks:
    """The books are closed before ``through``, by the latest closed settlement."""

    settlement_id: int
    through: datetime
    # The period of the latest settlement while it runs: its own payouts may still be dated inside it.
    running_period: tuple[datetime, datetime] | None

    def refuses(self, *, effective_at: datetime, kind: str, settlement: object) -> bool:
        if effective_at >= self.through:
            return False
        own_payout = (
            self.running_period is not None
            and kind == "payout"
            and settlement == self.settlement_id
            and self.running_period[0] <= effective_at < self.running_period[1]
        )
        return not own_payout


def books_closed() -> ClosedBooks | None:
    """Where the books are closed through, if any settlement has closed its period: one query."""
    latest = (
        # A settlement that failed after writing its statements keeps its period closed: they stand for it.
        Settlement.objects.filter(Q(status__in=CLOSED_STATUSES) | ~Q(step=""))
        .order_by("-period_end")
        .values_list("pk", "period_start", "period_end", "status")
        .first()
    )
    if latest is None:
        return None
    pk, start, end, status = latest
    return ClosedBooks(
        settlement_id=pk, through=end, running_period=(start, end) if status == SettlementStatus.RUNNING else None
    )
