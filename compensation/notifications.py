"""What compensation tells holders and labs: escrow released, uses of refused works, statements, payouts,
manifests processed or failed, invoices and payout details changed. Each is keyed by the ledger or job row it
tells about, so a retried task or a step run twice records nothing new."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Sum
from django.utils import formats, timezone

from compensation.models import (
    ConsolidatedStatement,
    Invoice,
    ManifestLine,
    Outcome,
    Settlement,
    Statement,
    StatementRecipient,
    StatementRole,
    UsageManifest,
)
from core.models import NotificationKind
from registry.models import Party, Work
from registry.notifications import parties_notify, party_notify


def _period(settlement: Settlement) -> str:
    first = timezone.localtime(settlement.period_start).date()
    last = timezone.localtime(settlement.period_end - timedelta(microseconds=1)).date()
    return f"{formats.date_format(first, 'Y-m-d')} ~ {formats.date_format(last, 'Y-m-d')}"


def escrow_released_notify(*, work: Work, entry_id: int, credits: dict[int, int]) -> None:
    """Tell each holder the release credited (``credits``: holder id -> micro-won)."""
    for holder_id, amount in sorted(credits.items()):
        if amount > 0:
            party_notify(
                party_id=holder_id,
                kind=NotificationKind.ESCROW_RELEASED,
                key=f"release:{entry_id}",
                context={"work_id": work.pk, "work_title": work.title, "amount_micro": amount, "entry": entry_id},
            )


def manifest_processed_notify(*, manifest: UsageManifest) -> None:
    """Tell the lab its manifest is processed, and each holder whose refused works it used (violations)."""
    party_notify(
        party_id=manifest.lab_id,
        kind=NotificationKind.MANIFEST_PROCESSED,
        key=f"manifest:{manifest.pk}:processed",
        context={
            "manifest_pk": manifest.pk,
            "manifest": manifest.manifest_id,
            "model": manifest.model,
            "lines": manifest.lines_total,
        },
    )
    violations = (
        ManifestLine.objects.filter(manifest=manifest, outcome=Outcome.REFUSED_AT_USE, refusal__isnull=False)
        .order_by()
        .values("refusal__holder_id")
        .annotate(lines=Count("pk"), amount=Sum("violation_micro"))
    )
    contexts: dict[int, dict[str, Any]] = defaultdict(dict)
    for row in violations:
        contexts[row["refusal__holder_id"]] = {
            "manifest_pk": manifest.pk,
            "manifest": manifest.manifest_id,
            "lab": manifest.lab.name,
            "lines": row["lines"],
            "amount_micro": int(row["amount"] or 0),
        }
    if contexts:
        parties_notify(
            contexts=contexts, kind=NotificationKind.VIOLATION_RECORDED, key=f"manifest:{manifest.pk}:violations"
        )


def manifest_failed_notify(*, manifest_pk: int) -> None:
    manifest = UsageManifest.objects.filter(pk=manifest_pk).first()
    if manifest is None:
        return
    party_notify(
        party_id=manifest.lab_id,
        kind=NotificationKind.MANIFEST_FAILED,
        # A failed manifest retried by staff may fail again: each failure is told (the attempt count keys it).
        key=f"manifest:{manifest.pk}:failed:{manifest.finished_at.isoformat() if manifest.finished_at else ''}",
        context={
            "manifest_pk": manifest.pk,
            "manifest": manifest.manifest_id,
            "model": manifest.model,
            "reason": manifest.failure_reason or manifest.failure_code,
        },
    )


def settlement_settled_notify(*, settlement: Settlement) -> None:
    """Tell every holder its statement was sent to that it is ready, every agent that its consolidated statement is,
    whoever was paid of their payout (an agent once, for all its members), and every lab with an invoice that it
    is ready: in the transaction that marks the settlement settled.

    Statements written before mandates had recipients were sent to their holders."""
    period = _period(settlement)
    statements = {}
    payouts: dict[int, dict[str, Any]] = {}
    sent_to_member = set(
        StatementRecipient.objects.filter(statement__settlement=settlement, role=StatementRole.MEMBER).values_list(
            "statement_id", flat=True
        )
    )
    has_recipients = StatementRecipient.objects.filter(statement__settlement=settlement).exists()
    for statement in Statement.objects.filter(settlement=settlement).only(
        "pk", "holder_id", "payee_id", "due_micro", "payout_micro", "withheld_micro"
    ):
        if statement.pk in sent_to_member or not has_recipients:
            statements[statement.holder_id] = {
                "statement": statement.pk,
                "period": period,
                "due_micro": statement.due_micro,
                "payout_micro": statement.payout_micro,
            }
        if statement.payout_micro > 0:
            payee = statement.payee_id or statement.holder_id
            slot = payouts.setdefault(
                payee, {"statement": statement.pk, "period": period, "payout_micro": 0, "withheld_micro": 0}
            )
            slot["payout_micro"] += statement.payout_micro
            slot["withheld_micro"] += statement.withheld_micro
    parties_notify(
        contexts=statements, kind=NotificationKind.STATEMENT_READY, key=f"settlement:{settlement.pk}:statement"
    )
    consolidated = {
        row.agent_id: {
            "consolidated": row.pk,
            "period": period,
            "members": row.members,
            "due_micro": row.due_micro,
            "payout_micro": row.payout_micro,
            "paid_to_agent_micro": row.paid_to_agent_micro,
        }
        for row in ConsolidatedStatement.objects.filter(settlement=settlement)
    }
    parties_notify(
        contexts=consolidated,
        kind=NotificationKind.CONSOLIDATED_STATEMENT_READY,
        key=f"settlement:{settlement.pk}:consolidated",
    )
    parties_notify(contexts=payouts, kind=NotificationKind.PAYOUT_MADE, key=f"settlement:{settlement.pk}:payout")
    invoices = {
        invoice.lab_id: {
            "invoice": invoice.pk,
            "number": invoice.number,
            "period": period,
            "due_micro": invoice.amount_due_won * 1_000_000,
        }
        for invoice in Invoice.objects.filter(settlement=settlement).only("pk", "lab_id", "number", "amount_due_won")
    }
    parties_notify(contexts=invoices, kind=NotificationKind.INVOICE_READY, key=f"settlement:{settlement.pk}:invoice")


def payout_profile_changed_notify(
    *, party_id: int, changed_at: datetime | None = None, event_id: int | None = None
) -> int:
    """Tell a holder its payout details changed (sent by whoever changes them: ``payout_profile_changed``); keyed
    by the change's audit event when given, else by its time."""
    party = Party.objects.filter(pk=party_id).first()
    if party is None:
        return 0
    at = changed_at or timezone.now()
    return party_notify(
        party_id=party_id,
        kind=NotificationKind.PAYOUT_PROFILE_CHANGED,
        key=f"payout_profile:changed:{event_id if event_id is not None else at.isoformat()}",
        context={"party": party.name, "changed_at": formats.date_format(timezone.localtime(at), "Y-m-d H:i")},
    )
