"""Settlement runs: close a period, account for it per holder (statements) and per lab (invoices), pay.

A run has four steps, each committed on its own so that its progress can be read while it runs and a
retried task continues after the last finished step:

1. **close**: the period closes (status ``running``); from here the ledger moves postings dated inside it
   to the open period (settlement/periods.py), so every later step reads the same frozen set of entries.
2. **statements**: per holder, the payable's opening balance, its movement in the period by kind, each
   traced to the manifest lines (allocations), distributions and adjustments behind it; the payout in
   whole won, never more than the holder is due (the sub-won rest stays on its payable), withholding, and
   what is carried forward: that rest, or all of it under the payout threshold.
3. **invoices**: per lab, the receivable's movement by manifest and outcome, violations apart.
4. **payouts**: one payout entry per paid holder, dated inside the period, and the status ``settled``.

Any failure marks the settlement ``failed`` with a code (the shared job lifecycle, ``core.jobs``). Before
step 2 commits that reopens the period; after it, the period stays closed, because the statements already
stand for its frozen entries. Staff retry a failed settlement (or ask for the same period again): the run
continues after the last finished step.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import partial
from time import monotonic
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.errors import SettlementError
from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import (
    SETTLEMENT_JOB,
    USE_ROW,
    AccountKind,
    CarryReason,
    ConsolidatedStatement,
    DistributionShare,
    EntryKind,
    Invoice,
    InvoiceLine,
    InvoiceSection,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    Outcome,
    PayoutBasis,
    Settlement,
    SettlementStatus,
    Statement,
    StatementLine,
    StatementLineKind,
    StatementRecipient,
    StatementRole,
    UsageManifest,
)
from compensation.notifications import settlement_settled_notify
from compensation.payments.services import lab_payments_apply
from compensation.payouts.selectors import (
    payout_basis_on,
    profile_tax_statuses,
    verified_profiles,
    withholding_rates_on,
)
from compensation.settlement.mandates import MemberMandates, period_mandates
from compensation.settlement.periods import period_lock
from core.actors import Actor, require_staff
from core.errors import InvalidInput
from core.jobs import job_chunk_commit, job_publish_on_commit, job_retry, job_run
from core.money import MICRO
from core.sql import json_array_elements, sql_literal, sql_literals
from registry.audit import audit_record

logger = logging.getLogger(__name__)

_BATCH = 5_000
# What a holder's payable moved by, per entry kind, as the statement names it.
_HOLDER_COLUMNS: dict[str, str] = {
    EntryKind.ACCRUAL.value: "accrued",
    EntryKind.RELEASE.value: "released",
    EntryKind.DISTRIBUTION.value: "distributed",
    EntryKind.ADJUSTMENT.value: "adjustments",
    EntryKind.REVERSAL.value: "adjustments",
}


# --- Creating ----------------------------------------------------------------------------------


def period_bounds(*, first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """The half-open instants of the days ``first_day`` to ``last_day`` (inclusive), in the registry's zone."""
    zone = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(first_day, time.min), zone)
    end = timezone.make_aware(datetime.combine(last_day + timedelta(days=1), time.min), zone)
    return start, end


def settlement_create(*, actor: Actor, first_day: date, last_day: date) -> tuple[Settlement, bool]:
    """Create the settlement of the days ``first_day`` to ``last_day`` and queue its run; staff only.

    The same period again answers with the existing settlement (queued again unless it is settled) and
    creates nothing; a period that overlaps another settlement's is refused (``settlement_overlap``).
    """
    require_staff(actor)
    if last_day < first_day:
        raise InvalidInput(_("period_end is before period_start."), code="invalid_period", field="period_end")
    start, end = period_bounds(first_day=first_day, last_day=last_day)
    if end > timezone.now():
        raise InvalidInput(
            _("A period can only be settled once it is over."), code="period_not_over", field="period_end"
        )
    with transaction.atomic():
        existing = Settlement.objects.select_for_update().filter(period_start=start, period_end=end).first()
        if existing is not None:
            if existing.status == SettlementStatus.FAILED:
                existing = job_retry(actor=actor, kind=SETTLEMENT_JOB, job_id=existing.pk)
            elif existing.status != SettlementStatus.SETTLED:
                job_publish_on_commit(kind=SETTLEMENT_JOB, job_id=existing.pk)
            return existing, False
        overlapping = Settlement.objects.filter(period_start__lt=end, period_end__gt=start).first()
        if overlapping is not None:
            raise _overlap(overlapping)
        later = Settlement.objects.filter(period_end__gt=start).order_by("period_start").first()
        if later is not None:
            # Its statements' opening balances already include this period: settling it now would change them.
            raise SettlementError(
                _("Periods are settled in order, and a later period has a settlement already."),
                code="settlement_out_of_order",
                extra={"settlement": later.pk},
            )
        try:
            with transaction.atomic():
                settlement = Settlement.objects.create(
                    period_start=start,
                    period_end=end,
                    payout_threshold_micro=settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW * MICRO,
                    # Withholding is per holder now (its statement's tax status and rate); 0 here.
                    withholding_bp=0,
                    created_by=actor.person,
                )
        except IntegrityError:
            # The exclusion constraint or the order trigger: another request created a settlement meanwhile.
            overlapping = Settlement.objects.filter(period_end__gt=start).order_by("period_start").first()
            raise _overlap(overlapping) from None
        audit_record(
            code="compensation.settlement.created",
            actor=actor,
            target=settlement,
            data={"period_start": start.isoformat(), "period_end": end.isoformat()},
        )
        # The outbox: published after commit; if the broker is down, the sweep publishes it later.
        job_publish_on_commit(kind=SETTLEMENT_JOB, job_id=settlement.pk)
    return settlement, True


def _overlap(other: Settlement | None) -> SettlementError:
    return SettlementError(
        _("Another settlement already covers part of this period."),
        code="settlement_overlap",
        extra={"settlement": other.pk if other is not None else None},
    )


# --- Running -----------------------------------------------------------------------------------


def settlement_run(*, settlement_id: int) -> Settlement:
    """Run (or continue) a settlement to the end; safe to call any number of times, concurrently too. A
    failure is recorded on the settlement with its code; a failure before the statements reopens the period."""
    job_run(kind=SETTLEMENT_JOB, job_id=settlement_id, work=_steps_run, on_start=_close)
    return Settlement.objects.get(pk=settlement_id)


def _steps_run(settlement: Settlement) -> None:
    _step(settlement.pk, "", "statements", _statements_build)
    _step(settlement.pk, "statements", "invoices", _invoices_build)
    _step(settlement.pk, "invoices", "payouts", _payouts_post)


def _close(settlement: Settlement) -> None:
    """Close the period as the run starts (in the claim's transaction, the settlement locked)."""
    # Waits for postings in flight; every posting after this commit sees the period closed.
    period_lock(exclusive=True)
    if not settlement.step:
        Settlement.objects.filter(pk=settlement.pk).update(progress={"step": "closed"})


def _step(settlement_id: int, after: str, name: str, build: Callable[[Settlement], dict[str, Any]]) -> None:
    # The step is the settlement's cursor: each one commits with it, and one done by an earlier or concurrent
    # run (the cursor has moved past ``after``) is skipped.
    step = partial(_step_build, settlement_id, name, build)
    job_chunk_commit(kind=SETTLEMENT_JOB, job_id=settlement_id, cursor=after, advance_to=name, apply=step)


def _step_build(settlement_id: int, name: str, build: Callable[[Settlement], dict[str, Any]]) -> dict[str, Any]:
    settlement = Settlement.objects.get(pk=settlement_id)  # locked by job_chunk_commit
    began = monotonic()
    progress = build(settlement)
    settlement.step = name
    seconds = {**settlement.progress.get("seconds", {}), name: round(monotonic() - began, 1)}
    settlement.progress = {**settlement.progress, **progress, "step": name, "seconds": seconds}
    if name != "payouts":
        return {"progress": settlement.progress}
    settlement.status = SettlementStatus.SETTLED
    settlement.settled_at = timezone.now()
    settlement.totals = settlement_totals(settlement=settlement)
    audit_record(
        code="compensation.settlement.settled", actor=Actor.system(), target=settlement, data=settlement.totals
    )
    settlement_settled_notify(settlement=settlement)
    return {
        "progress": settlement.progress,
        "status": settlement.status,
        "settled_at": settlement.settled_at,
        "totals": settlement.totals,
        "heartbeat_at": None,
    }


def _period_entries(settlement: Settlement) -> dict[int, str]:
    """``{entry id: kind}`` of every entry effective in the period: the frozen snapshot."""
    return dict(
        LedgerEntry.objects.filter(effective_at__gte=settlement.period_start, effective_at__lt=settlement.period_end)
        .order_by()
        .values_list("pk", "kind")
    )


def _party_sums(kind: str, condition: Q, by_entry_kind: bool) -> dict[Any, int]:
    fields = ["account__party_id", "entry__kind"] if by_entry_kind else ["account__party_id"]
    rows = (
        LedgerLine.objects.filter(condition, account__kind=kind)
        .values(*fields)
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list(*fields, "total")
    )
    if by_entry_kind:
        return {(party, entry_kind): int(total) for party, entry_kind, total in rows}
    return {party: int(total) for party, total in rows}


def _in_period(settlement: Settlement) -> Q:
    return Q(entry__effective_at__gte=settlement.period_start, entry__effective_at__lt=settlement.period_end)


@dataclass
class _Holder:
    opening: int = 0
    columns: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lines: dict[tuple[str, int | None, int | None, int | None, int | None], list[int]] = field(default_factory=dict)

    def add_line(
        self,
        kind: str,
        amount: int,
        *,
        work: int | None = None,
        lab: int | None = None,
        manifest: int | None = None,
        entry: int | None = None,
        lines: int = 1,
    ) -> None:
        slot = self.lines.setdefault((kind, work, lab, manifest, entry), [0, 0])
        slot[0] += lines
        slot[1] += amount


def _statements_build(settlement: Settlement) -> dict[str, Any]:
    entries = _period_entries(settlement)
    opening = _party_sums(AccountKind.HOLDER_PAYABLE, Q(entry__effective_at__lt=settlement.period_start), False)
    movement = _party_sums(AccountKind.HOLDER_PAYABLE, _in_period(settlement), True)
    holders: dict[int, _Holder] = defaultdict(_Holder)
    for party, amount in opening.items():
        holders[party].opening = -amount
    for (party, entry_kind), amount in movement.items():
        column = _HOLDER_COLUMNS.get(entry_kind)
        if column is None:
            raise SettlementError(
                _("The period holds a %(kind)s entry for a holder before it was settled.") % {"kind": entry_kind},
                code="settlement_inconsistent",
                extra={"holder": party},
            )
        holders[party].columns[column] += -amount
    _trace_distributions(settlement, holders)
    _trace_adjustments(settlement, entries, holders)
    mandates = period_mandates(
        period_start=settlement.period_start, period_end=settlement.period_end, member_ids=sorted(holders)
    )
    statements = _statements_price(settlement, holders, mandates)
    Statement.objects.bulk_create(statements, batch_size=_BATCH)
    consolidated = _recipients_write(settlement, statements, mandates)
    by_holder = {statement.holder_id: statement.pk for statement in statements}
    rows = [
        StatementLine(
            statement_id=by_holder[party],
            kind=kind,
            work_id=work,
            lab_id=lab,
            manifest_id=manifest,
            entry_id=entry,
            lines=count,
            amount_micro=amount,
        )
        for party, holder in holders.items()
        if party in by_holder
        for (kind, work, lab, manifest, entry), (count, amount) in holder.lines.items()
        if amount or count
    ]
    StatementLine.objects.bulk_create(rows, batch_size=_BATCH)
    traced_lines = _allocation_lines_insert(settlement)
    _statements_verify(settlement, statements)
    return {
        "holders": len(statements),
        "statement_lines": len(rows) + traced_lines,
        "entries": len(entries),
        "consolidated_statements": consolidated,
    }


def _recipients_write(settlement: Settlement, statements: list[Statement], mandates: dict[int, MemberMandates]) -> int:
    """Who each statement is sent to (``compensation.settlement.mandates``), and each agent's consolidated
    statement: the sums of its members' statements. Returns how many consolidated statements were written."""
    recipients: list[StatementRecipient] = []
    by_agent: dict[int, list[Statement]] = defaultdict(list)
    for statement in statements:
        said = mandates.get(statement.holder_id, MemberMandates())
        if said.member_receives:
            recipients.append(
                StatementRecipient(statement=statement, party_id=statement.holder_id, role=StatementRole.MEMBER)
            )
        for agent, mandate in said.agents:
            recipients.append(
                StatementRecipient(statement=statement, party_id=agent, role=StatementRole.AGENT, mandate_id=mandate)
            )
            by_agent[agent].append(statement)
    StatementRecipient.objects.bulk_create(recipients, batch_size=_BATCH)
    consolidated = [
        ConsolidatedStatement(
            settlement=settlement,
            agent_id=agent,
            members=len(members),
            opening_micro=sum(s.opening_micro for s in members),
            earned_micro=sum(s.due_micro - s.opening_micro for s in members),
            due_micro=sum(s.due_micro for s in members),
            payout_micro=sum(s.payout_micro for s in members),
            withheld_micro=sum(s.withheld_micro for s in members),
            carried_forward_micro=sum(s.carried_forward_micro for s in members),
            paid_to_agent_micro=sum(s.payout_micro for s in members if s.payee_id == agent),
        )
        for agent, members in sorted(by_agent.items())
    ]
    ConsolidatedStatement.objects.bulk_create(consolidated, batch_size=_BATCH)
    return len(consolidated)


# Accruals and releases per holder, work (and side of a recording's use, with the other side's work), lab and
# manifest, from the manifest lines' allocations
# (``[holder, claim, micro-won, entry]``): every part whose entry is an accrual or a release of the period.
# One statement for any number of lines; the same SQL on PostgreSQL and SQLite but for the JSON function.
_ACCRUAL = sql_literal(EntryKind.ACCRUAL)
_TRACED_KINDS = sql_literals([EntryKind.ACCRUAL, EntryKind.RELEASE])
_ALLOCATION_LINES = f"""
    INSERT INTO compensation_statementline
           (statement_id, kind, work_id, side, other_work_id, lab_id, manifest_id, entry_id, lines, amount_micro)
    SELECT statement.id, entry.kind, line.work_id, line.side, line.other_work_id, manifest.lab_id, line.manifest_id,
           NULL, COUNT(*), SUM(CAST(part.value ->> 2 AS BIGINT))
      FROM compensation_manifestline line
     CROSS JOIN {{elements}}(line.allocation) AS part
      JOIN compensation_ledgerentry entry ON entry.id = CAST(part.value ->> 3 AS BIGINT)
      JOIN compensation_usagemanifest manifest ON manifest.id = line.manifest_id
      JOIN compensation_statement statement
        ON statement.settlement_id = %(settlement)s AND statement.holder_id = CAST(part.value ->> 0 AS BIGINT)
     WHERE (line.released_micro > 0 OR line.manifest_id IN (
                SELECT CAST(accrual.source ->> 'manifest' AS BIGINT)
                  FROM compensation_ledgerentry accrual
                 WHERE accrual.kind = {_ACCRUAL}
                   AND accrual.effective_at >= %(start)s AND accrual.effective_at < %(end)s))
       AND entry.kind IN ({_TRACED_KINDS}) AND entry.effective_at >= %(start)s AND entry.effective_at < %(end)s
     GROUP BY statement.id, entry.kind, line.work_id, line.side, line.other_work_id, manifest.lab_id,
              line.manifest_id
"""  # noqa: S608  (constants only)


def _allocation_lines_insert(settlement: Settlement) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            _ALLOCATION_LINES.format(elements=json_array_elements(connection)),
            {"settlement": settlement.pk, "start": settlement.period_start, "end": settlement.period_end},
        )
        return int(cursor.rowcount)


def _statements_verify(settlement: Settlement, statements: list[Statement]) -> None:
    """Every statement's lines add up, kind by kind, to what its holder's payable moved by in the ledger."""
    traced: dict[tuple[int, str], int] = {
        (statement, kind): int(total)
        for statement, kind, total in StatementLine.objects.filter(statement__settlement=settlement)
        .values("statement_id", "kind")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("statement_id", "kind", "total")
    }
    for statement in statements:
        for kind, ledger in (
            (StatementLineKind.ACCRUAL, statement.accrued_micro),
            (StatementLineKind.RELEASE, statement.released_micro),
            (StatementLineKind.DISTRIBUTION, statement.distributed_micro),
            (StatementLineKind.ADJUSTMENT, statement.adjustments_micro),
        ):
            found = traced.get((statement.pk, kind.value), 0)
            if found != ledger:
                raise SettlementError(
                    _("The ledger and the manifest lines disagree on what a holder earned; run ledger_check."),
                    code="settlement_untraced",
                    extra={"holder": statement.holder_id, "kind": kind.value, "ledger": ledger, "traced": found},
                )


def _trace_distributions(settlement: Settlement, holders: dict[int, _Holder]) -> None:
    for holder, lab, entry, amount in (
        DistributionShare.objects.filter(
            entry__effective_at__gte=settlement.period_start, entry__effective_at__lt=settlement.period_end
        )
        .order_by()
        .values_list("holder_id", "lab_id", "entry_id", "amount_micro")
    ):
        holders[holder].add_line(StatementLineKind.DISTRIBUTION, amount, lab=lab, entry=entry, lines=0)


def _trace_adjustments(settlement: Settlement, entries: dict[int, str], holders: dict[int, _Holder]) -> None:
    adjusting = frozenset(pk for pk, kind in entries.items() if kind in (EntryKind.ADJUSTMENT, EntryKind.REVERSAL))
    if not adjusting:
        return
    for party, entry, amount in (
        LedgerLine.objects.filter(entry__id__any_of=adjusting, account__kind=AccountKind.HOLDER_PAYABLE)
        .values("account__party_id", "entry_id")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("account__party_id", "entry_id", "total")
    ):
        holders[party].add_line(StatementLineKind.ADJUSTMENT, -int(amount), entry=entry, lines=0)


def _statements_price(
    settlement: Settlement, holders: dict[int, _Holder], mandates: dict[int, MemberMandates]
) -> list[Statement]:
    """Statements with payouts: every holder due at least the threshold (and one won) is paid the whole won
    of what it is due, rounded down, so no holder is ever paid more than its payable holds. The sub-won
    rest stays on the payable and is carried forward, to be paid once it adds up to a won in a later period.

    Only holders with a verified payout profile are paid; the others carry everything forward, and the statement
    says why (``carry_reason``). Withholding is the rate of the profile's tax status in force on the period's
    last day. On the cash basis (the staff policy in force that day) a holder is paid at most what the labs have
    paid of what it earned from them (``_cash_available``).

    Under a mandate with the power to receive payouts (``mandates``) the payout goes to the agent: the agent's
    profile must be verified, and the withholding is the member's tax status when it has a profile of its own.
    """
    last_day = settlement.last_day
    basis = payout_basis_on(day=last_day)
    rates = withholding_rates_on(day=last_day)
    payees = {party: said.payee for party, said in mandates.items() if said.payee is not None}
    profiles = verified_profiles(holder_ids=sorted({*holders, *(agent for agent, _m in payees.values())}))
    own_tax_status = profile_tax_statuses(holder_ids=sorted(payees))
    available = _cash_available(settlement, sorted(holders)) if basis == PayoutBasis.CASH else {}
    statements = []
    for party in sorted(holders):
        holder = holders[party]
        due = holder.opening + sum(holder.columns.values())
        if not (holder.opening or due or any(holder.columns.values()) or holder.lines):
            continue
        payee, payout_mandate = payees.get(party, (party, None))
        payable = min(due, max(available.get(party, 0), 0)) if basis == PayoutBasis.CASH else due
        minimum = max(settlement.payout_threshold_micro, MICRO)
        reason = CarryReason.NONE
        if due > 0 and payable < minimum:
            # Nothing is paid: on the cash basis because the labs have not paid enough yet, unless even the
            # whole due would stay under the threshold.
            held_by_cash = basis == PayoutBasis.CASH and due >= minimum
            reason = CarryReason.AWAITING_LAB_PAYMENTS if held_by_cash else CarryReason.BELOW_THRESHOLD
        elif due > 0 and payee not in profiles:
            reason = CarryReason.NO_VERIFIED_PROFILE
        elif basis == PayoutBasis.CASH and payable < due and due - payable >= MICRO:
            reason = CarryReason.AWAITING_LAB_PAYMENTS
        paid = due > 0 and payable >= minimum and payee in profiles
        gross = payable // MICRO if paid else 0
        tax_status = (own_tax_status.get(party) or profiles[payee]) if payee in profiles else ""
        rate = rates.get(tax_status, 0) if paid else 0
        withheld = gross * rate // 10_000
        payout = (gross - withheld) * MICRO
        closing = due - gross * MICRO
        statements.append(
            Statement(
                settlement=settlement,
                holder_id=party,
                opening_micro=holder.opening,
                accrued_micro=holder.columns.get("accrued", 0),
                released_micro=holder.columns.get("released", 0),
                distributed_micro=holder.columns.get("distributed", 0),
                adjustments_micro=holder.columns.get("adjustments", 0),
                due_micro=due,
                payout_micro=payout,
                withheld_micro=withheld * MICRO,
                rounding_micro=0,
                carried_forward_micro=closing,
                closing_micro=closing,
                basis=basis,
                tax_status=tax_status,
                withholding_bp=rate,
                carry_reason=reason,
                payee_id=payee,
                payout_mandate_id=payout_mandate,
            )
        )
    return statements


# Cash basis: what each holder earned from each lab through the period's end, from the manifest lines'
# allocations (accruals and releases) and the market-share distributions. One statement for any number of lines.
_EARNED_BY_LAB = f"""
    SELECT CAST(part.value ->> 0 AS BIGINT) AS holder, manifest.lab_id, SUM(CAST(part.value ->> 2 AS BIGINT))
      FROM compensation_manifestline line
     CROSS JOIN {{elements}}(line.allocation) AS part
      JOIN compensation_ledgerentry entry ON entry.id = CAST(part.value ->> 3 AS BIGINT)
      JOIN compensation_usagemanifest manifest ON manifest.id = line.manifest_id
     WHERE part.value ->> 0 IS NOT NULL AND entry.kind IN ({_TRACED_KINDS}) AND entry.effective_at < %(end)s
     GROUP BY CAST(part.value ->> 0 AS BIGINT), manifest.lab_id
"""  # noqa: S608  (constants only)


def _cash_available(settlement: Settlement, holder_ids: list[int]) -> dict[int, int]:
    """Per holder, the micro-won the cash basis lets it be paid through this period: for each lab, what the holder
    earned from it times the part of everything the lab was billed that it has paid (at most all of it), plus
    what no lab stands behind (staff adjustments), minus what earlier payouts already took from its payable.
    Rounded down to the micro-won, so the holders of a lab are never paid more than the lab paid.
    """
    end = settlement.period_end
    earned: dict[int, dict[int | None, Fraction]] = defaultdict(lambda: defaultdict(Fraction))
    with connection.cursor() as cursor:
        cursor.execute(_EARNED_BY_LAB.format(elements=json_array_elements(connection)), {"end": end})
        for holder, lab, amount in cursor.fetchall():
            earned[int(holder)][int(lab)] += int(amount)
    for holder, lab, amount in (
        DistributionShare.objects.filter(entry__effective_at__lt=end)
        .values("holder_id", "lab_id")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("holder_id", "lab_id", "total")
    ):
        earned[holder][lab] += int(amount)
    # Lab-less movements of payables: adjustments and reversals by staff, paid like accruals.
    for holder, amount in (
        LedgerLine.objects.filter(
            account__kind=AccountKind.HOLDER_PAYABLE,
            entry__kind__in=[EntryKind.ADJUSTMENT, EntryKind.REVERSAL],
            entry__effective_at__lt=end,
        )
        .values("account__party_id")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("account__party_id", "total")
    ):
        earned[holder][None] += -int(amount)
    receivable = LedgerLine.objects.filter(account__kind=AccountKind.LAB_RECEIVABLE, entry__effective_at__lt=end)
    billed = {
        lab: int(total)
        for lab, total in receivable.exclude(entry__kind=EntryKind.PAYMENT)
        .values("account__party_id")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("account__party_id", "total")
    }
    paid = {
        lab: -int(total)
        for lab, total in receivable.filter(entry__kind=EntryKind.PAYMENT)
        .values("account__party_id")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("account__party_id", "total")
    }
    paid_out = _party_sums(
        AccountKind.HOLDER_PAYABLE, Q(entry__kind=EntryKind.PAYOUT, entry__effective_at__lt=end), False
    )
    available: dict[int, int] = {}
    for holder in holder_ids:
        total = Fraction(0)
        for lab, amount in earned.get(holder, {}).items():
            if lab is None:
                total += amount
                continue
            owed = billed.get(lab, 0)
            share = min(Fraction(paid.get(lab, 0), owed), Fraction(1)) if owed > 0 else Fraction(1)
            total += amount * max(share, Fraction(0))
        available[holder] = math.floor(total) - paid_out.get(holder, 0)
    return available


def _invoices_build(settlement: Settlement) -> dict[str, Any]:
    entries = _period_entries(settlement)
    accrual_ids = frozenset(pk for pk, kind in entries.items() if kind == EntryKind.ACCRUAL)
    opening = _party_sums(AccountKind.LAB_RECEIVABLE, Q(entry__effective_at__lt=settlement.period_start), False)
    movement = _party_sums(AccountKind.LAB_RECEIVABLE, _in_period(settlement), True)
    usage: dict[int, list[InvoiceLine]] = defaultdict(list)
    period_lines = Q(entry__id__any_of=accrual_ids) | Q(
        entry__isnull=True,
        manifest__created_at__gte=settlement.period_start,
        manifest__created_at__lt=settlement.period_end,
    )
    by_outcome = list(
        ManifestLine.objects.filter(period_lines)
        .values("manifest_id", "outcome")
        # Uses, not rows: a split line counts once, under its recording side's outcome (``USE_ROW``).
        .annotate(count=Count("pk", filter=USE_ROW), amount=Sum("amount_micro"))
        .order_by("manifest_id", "outcome")
        .values_list("manifest_id", "outcome", "count", "amount")
    )
    violation_rows = list(
        ManifestLine.objects.filter(entry__id__any_of=accrual_ids, outcome=Outcome.REFUSED_AT_USE)
        .values("manifest_id", "work_id", "refusal_id")
        .annotate(count=Count("pk"), amount=Sum("violation_micro"))
        .order_by("manifest_id", "work_id", "refusal_id")
        .values_list("manifest_id", "work_id", "refusal_id", "count", "amount")
    )
    manifests = {
        pk: (lab, model, version)
        for pk, lab, model, version in UsageManifest.objects.filter(
            pk__any_of=frozenset(row[0] for row in by_outcome)
        ).values_list("pk", "lab_id", "model", "model_version")
    }
    for manifest, outcome, count, amount in by_outcome:
        lab, model, version = manifests[manifest]
        usage[lab].append(
            InvoiceLine(
                section=InvoiceSection.USAGE,
                manifest_id=manifest,
                model=model,
                model_version=version,
                outcome=outcome,
                lines=count,
                amount_micro=int(amount or 0),
            )
        )
    # Violations are accrued lines, so their manifests are among those above.
    for manifest, work, refusal, count, amount in violation_rows:
        lab, model, version = manifests[manifest]
        usage[lab].append(
            InvoiceLine(
                section=InvoiceSection.VIOLATION,
                manifest_id=manifest,
                model=model,
                model_version=version,
                outcome=Outcome.REFUSED_AT_USE,
                work_id=work,
                refusal_id=refusal,
                lines=count,
                amount_micro=int(amount or 0),
            )
        )
    adjusting = frozenset(pk for pk, kind in entries.items() if kind in (EntryKind.ADJUSTMENT, EntryKind.REVERSAL))
    for lab, entry, amount in (
        LedgerLine.objects.filter(entry__id__any_of=adjusting, account__kind=AccountKind.LAB_RECEIVABLE)
        .values("account__party_id", "entry_id")
        .annotate(total=Sum("amount_micro"))
        .order_by("account__party_id", "entry_id")
        .values_list("account__party_id", "entry_id", "total")
    ):
        usage[lab].append(InvoiceLine(section=InvoiceSection.ADJUSTMENT, entry_id=entry, amount_micro=int(amount)))
    labs = sorted(set(opening) | {party for party, _kind in movement} | set(usage))
    due_on = settlement.last_day + timedelta(days=settings.INVOICE_PAYMENT_DAYS)
    invoices: list[Invoice] = []
    for lab in labs:
        lines = usage.get(lab, [])
        accrued = movement.get((lab, EntryKind.ACCRUAL), 0)
        payments = movement.get((lab, EntryKind.PAYMENT), 0)
        adjustments = sum(
            amount
            for (party, kind), amount in movement.items()
            if party == lab and kind not in (EntryKind.ACCRUAL, EntryKind.PAYMENT)
        )
        billed = sum(line.amount_micro for line in lines if line.section == InvoiceSection.USAGE)
        violations = sum(line.amount_micro for line in lines if line.section == InvoiceSection.VIOLATION)
        if billed != accrued:
            raise SettlementError(
                _("The ledger and the manifest lines disagree on what a lab owes; run ledger_check."),
                code="settlement_untraced",
                extra={"lab": lab, "ledger": accrued, "traced": billed},
            )
        total = accrued + adjustments
        if not (opening.get(lab) or total or lines or payments):
            continue
        invoices.append(
            Invoice(
                settlement=settlement,
                lab_id=lab,
                number=f"INV-{timezone.localtime(settlement.period_start):%Y%m}-{settlement.pk:04d}-{lab:06d}",
                opening_micro=opening.get(lab, 0),
                compensation_micro=accrued - violations,
                violations_micro=violations,
                adjustments_micro=adjustments,
                total_micro=total,
                closing_micro=opening.get(lab, 0) + total + payments,
                amount_due_won=int((Decimal(total) / MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP)),
                payments_micro=payments,
                due_on=due_on,
            )
        )
    Invoice.objects.bulk_create(invoices, batch_size=_BATCH)
    # What labs paid ahead (or beyond earlier invoices) pays the new invoices now, in this step's transaction.
    for lab in sorted({invoice.lab_id for invoice in invoices if invoice.amount_due_won > 0}):
        lab_payments_apply(lab_id=lab)
    rows = []
    for invoice in invoices:
        for line in usage.get(invoice.lab_id, []):
            line.invoice = invoice
            rows.append(line)
    InvoiceLine.objects.bulk_create(rows, batch_size=_BATCH)
    return {"labs": len(invoices), "invoice_lines": len(rows)}


def _payouts_post(settlement: Settlement) -> dict[str, Any]:
    statements = list(
        Statement.objects.filter(settlement=settlement, payout_entry__isnull=True)
        .filter(Q(payout_micro__gt=0) | Q(withheld_micro__gt=0))
        .order_by("holder_id")
    )
    if not statements:
        return {"payouts": 0}
    keys: dict[str | int, AccountKey] = {
        "payouts": AccountKey(AccountKind.PAYOUTS),
        "withholding": AccountKey(AccountKind.WITHHOLDING),
        "rounding": AccountKey(AccountKind.ROUNDING),
        **{s.holder_id: AccountKey(AccountKind.HOLDER_PAYABLE, s.holder_id) for s in statements},
    }
    accounts = accounts_ensure(keys=keys.values())
    # The last instant of the period: a payout belongs to the period it settles.
    paid_at = settlement.period_end - timedelta(microseconds=1)
    postings = []
    for statement in statements:
        # The payable gives up what leaves it (payout and withholding), never the carried sub-won rest.
        # A statement priced before payouts were rounded down has a rounding part: the rounding account bears it.
        lines = [
            (accounts[keys[statement.holder_id]].pk, statement.due_micro - statement.closing_micro),
            (accounts[keys["payouts"]].pk, -statement.payout_micro),
            (accounts[keys["withholding"]].pk, -statement.withheld_micro),
            (accounts[keys["rounding"]].pk, -statement.rounding_micro),
        ]
        postings.append(
            Posting(
                idempotency_key=f"settlement:{settlement.pk}:payout:{statement.holder_id}",
                kind=EntryKind.PAYOUT,
                effective_at=paid_at,
                lines=[(account, amount) for account, amount in lines if amount],
                memo=f"payout of settlement {settlement.pk}",
                # For whom (the holder, whose payable pays) and to whom (its agent under a mandate, or itself).
                source={
                    "settlement": settlement.pk,
                    "statement": statement.pk,
                    "holder": statement.holder_id,
                    "payee": statement.payee_id or statement.holder_id,
                    "mandate": statement.payout_mandate_id,
                },
            )
        )
    ledger_post_entries(postings=postings)
    with connection.cursor() as cursor:
        # One statement: the payout entries are found by their idempotency keys.
        cursor.execute(
            """
            UPDATE compensation_statement SET payout_entry_id = e.id
              FROM compensation_ledgerentry e
             WHERE compensation_statement.settlement_id = %(settlement)s
               AND (compensation_statement.payout_micro > 0 OR compensation_statement.withheld_micro > 0)
               AND e.idempotency_key = 'settlement:' || %(settlement)s || ':payout:' || compensation_statement.holder_id
            """,
            {"settlement": settlement.pk},
        )
    return {"payouts": len(statements)}


def settlement_totals(*, settlement: Settlement) -> dict[str, Any]:
    """The run's totals in micro-won, from its statements and invoices (stored when it settles)."""
    holders = Statement.objects.filter(settlement=settlement).aggregate(
        holders=Count("pk"),
        opening=Sum("opening_micro"),
        accrued=Sum("accrued_micro"),
        released=Sum("released_micro"),
        distributed=Sum("distributed_micro"),
        adjustments=Sum("adjustments_micro"),
        due=Sum("due_micro"),
        payout=Sum("payout_micro"),
        withheld=Sum("withheld_micro"),
        rounding=Sum("rounding_micro"),
        carried_forward=Sum("carried_forward_micro"),
        paid_holders=Count("pk", filter=Q(payout_entry__isnull=False)),
    )
    labs = Invoice.objects.filter(settlement=settlement).aggregate(
        labs=Count("pk"),
        compensation=Sum("compensation_micro"),
        violations=Sum("violations_micro"),
        lab_adjustments=Sum("adjustments_micro"),
        invoiced=Sum("total_micro"),
        amount_due_won=Sum("amount_due_won"),
    )
    return {key: int(value or 0) for key, value in {**holders, **labs}.items()}
