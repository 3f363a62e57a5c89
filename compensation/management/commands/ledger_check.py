"""Verify the ledger's invariants over every entry, set-based; exit non-zero naming what breaks them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
from django.utils.translation import gettext as _

from compensation.ledger.checks import check_offenders, ledger_checks, subject_count
from compensation.models import Account, LedgerEntry, LedgerLine

SHOWN = 50


class Command(BaseCommand):
    help = (
        "Check every ledger invariant over the whole ledger, manifest lines and escrow releases included; "
        "exit 1 and list what breaks each failed check."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total = LedgerLine.objects.aggregate(total=Sum("amount_micro"))["total"] or 0
        self.stdout.write(
            _("Ledger: %(entries)s entries, %(lines)s lines, %(accounts)s accounts; all balances sum to %(total)s µ₩.")
            % {
                "entries": f"{LedgerEntry.objects.count():,}",
                "lines": f"{LedgerLine.objects.count():,}",
                "accounts": f"{Account.objects.count():,}",
                "total": f"{total:,}",
            }
        )
        failures: list[str] = []
        for check in ledger_checks():
            count, ids = check_offenders(check, limit=SHOWN)
            if count == 0:
                passed = _("ok")
                self.stdout.write(f"  {passed:<6}  {check.name}: {check.description}")
                continue
            shown = ", ".join(str(i) for i in ids)
            if count > len(ids):
                shown += " " + _("(first %(shown)s of %(count)s)") % {"shown": len(ids), "count": f"{count:,}"}
            failed = _("FAILED")
            self.stdout.write(f"  {failed:<6}  {check.name}: {subject_count(check.subject, count)}: {shown}")
            failures.append(f"{check.name}: {shown}")
        if total != 0 and not failures:
            failures.append(_("conservation: all balances sum to %(total)s µ₩, not 0") % {"total": f"{total:,}"})
        if failures:
            raise CommandError(_("ledger check failed; offenders by check:") + "\n" + "\n".join(failures))
        self.stdout.write(self.style.SUCCESS(_("Ledger OK.")))
