"""Verify the ledger's invariants over every entry, set-based; exit non-zero naming offending entries."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Sum

from compensation.models import Account, LedgerEntry, LedgerLine

SHOWN = 50

# Each check is one query yielding the ids of the entries that break it.
CHECKS: list[tuple[str, str, str]] = [
    (
        "balanced",
        "every entry has at least two lines summing to zero",
        """
        SELECT e.id AS id
          FROM compensation_ledgerentry e LEFT JOIN compensation_ledgerline l ON l.entry_id = e.id
         GROUP BY e.id
        HAVING COUNT(l.id) < 2 OR COALESCE(SUM(l.amount_micro), 0) <> 0
        """,
    ),
    (
        "no_zero_lines",
        "no line moves zero",
        "SELECT DISTINCT entry_id AS id FROM compensation_ledgerline WHERE amount_micro = 0",
    ),
    (
        "reversal_kind",
        "reversals, and only reversals, name the entry they reverse",
        """
        SELECT id FROM compensation_ledgerentry
         WHERE (kind = 'reversal' AND reverses_id IS NULL) OR (kind <> 'reversal' AND reverses_id IS NOT NULL)
        """,
    ),
    (
        "reversals_net_to_zero",
        "each reversal and the entry it reverses net to zero on every account",
        """
        SELECT DISTINCT reversal_id AS id FROM (
            SELECT r.id AS reversal_id, l.account_id, l.amount_micro
              FROM compensation_ledgerentry r JOIN compensation_ledgerline l ON l.entry_id = r.id
             WHERE r.reverses_id IS NOT NULL
            UNION ALL
            SELECT r.id, l.account_id, l.amount_micro
              FROM compensation_ledgerentry r JOIN compensation_ledgerline l ON l.entry_id = r.reverses_id
             WHERE r.reverses_id IS NOT NULL
        ) pairs
         GROUP BY reversal_id, account_id
        HAVING SUM(amount_micro) <> 0
        """,
    ),
    (
        "reversed_at_most_once",
        "no entry is reversed twice",
        """
        SELECT reverses_id AS id FROM compensation_ledgerentry
         WHERE reverses_id IS NOT NULL
         GROUP BY reverses_id
        HAVING COUNT(*) > 1
        """,
    ),
]


def _offenders(sql: str) -> tuple[int, list[int]]:
    """How many entries a check names, and the first few, in one pass (``COUNT(*) OVER ()``)."""
    with connection.cursor() as cursor:
        # Only the constant checks above reach this SQL; nothing comes from outside.
        cursor.execute(f"SELECT id, COUNT(*) OVER () FROM ({sql}) offending ORDER BY id LIMIT {SHOWN}")  # noqa: S608
        rows = cursor.fetchall()
    return (int(rows[0][1]) if rows else 0), [int(row[0]) for row in rows]


class Command(BaseCommand):
    help = "Check every ledger invariant over the whole ledger; exit 1 and list offending entries if one fails."

    def handle(self, *args: Any, **options: Any) -> None:
        total = LedgerLine.objects.aggregate(total=Sum("amount_micro"))["total"] or 0
        self.stdout.write(
            f"Ledger: {LedgerEntry.objects.count():,} entries, {LedgerLine.objects.count():,} lines, "
            f"{Account.objects.count():,} accounts; all balances sum to {total:,} µ₩."
        )
        failures: list[str] = []
        for name, description, sql in CHECKS:
            count, ids = _offenders(sql)
            if count == 0:
                self.stdout.write(f"  ok      {name}: {description}")
                continue
            shown = ", ".join(str(i) for i in ids) + (f" (first {SHOWN} of {count:,})" if count > len(ids) else "")
            self.stdout.write(f"  FAILED  {name}: {count:,} entries: {shown}")
            failures.append(f"{name}: {shown}")
        if total != 0 and not failures:
            failures.append(f"conservation: all balances sum to {total:,} µ₩, not 0")
        if failures:
            raise CommandError("ledger check failed; offending entries by check:\n" + "\n".join(failures))
        self.stdout.write(self.style.SUCCESS("Ledger OK."))
