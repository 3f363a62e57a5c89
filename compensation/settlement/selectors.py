"""Reads of settlement: settlements, statements, invoices, distributions and a holder's earnings."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import (
    AccountKind,
    ConsolidatedStatement,
    EntryKind,
    Invoice,
    InvoiceLine,
    LedgerLine,
    ManifestLine,
    MarketShareDistribution,
    Settlement,
    SettlementStatus,
    Statement,
    StatementLine,
    StatementLineKind,
    StatementRecipient,
    StatementRole,
)
from core.actors import Actor, require_staff
from core.errors import NotFound
from registry.models import Party


def settlement_list(*, actor: Actor) -> QuerySet[Settlement]:
    require_staff(actor)
    return Settlement.objects.order_by("-period_start", "-pk")


def settlement_get(*, actor: Actor, settlement_pk: int) -> Settlement:
    require_staff(actor)
    settlement = Settlement.objects.filter(pk=settlement_pk).first()
    if settlement is None:
        raise NotFound(_("No such settlement."))
    return settlement


def statement_list_for_actor(
    *, actor: Actor, settlement_pk: int | None = None, member_pk: int | None = None
) -> QuerySet[Statement]:
    """Staff read every statement; a rights holder its own, of settled periods only (whoever else they were sent
    to); a society or agent those sent to it under its members' mandates (``compensation.settlement.mandates``).
    ``member_pk`` narrows to one holder's."""
    statements = Statement.objects.select_related("settlement", "holder", "payee").order_by(
        "-settlement__period_start", "holder_id"
    )
    if not actor.is_staff:
        if actor.party is None:
            return statements.none()
        sent_to_agent = StatementRecipient.objects.filter(party=actor.party, role=StatementRole.AGENT)
        statements = statements.filter(
            Q(holder=actor.party) | Q(pk__in=sent_to_agent.values("statement_id")),
            settlement__status=SettlementStatus.SETTLED,
        )
    if settlement_pk is not None:
        statements = statements.filter(settlement_id=settlement_pk)
    if member_pk is not None:
        statements = statements.filter(holder_id=member_pk)
    return statements


def statement_get_for_actor(*, actor: Actor, statement_pk: int) -> Statement:
    statement = statement_list_for_actor(actor=actor).filter(pk=statement_pk).first()
    if statement is None:
        raise NotFound(_("No such statement."))
    return statement


def statement_recipients(*, statement: Statement) -> QuerySet[StatementRecipient]:
    """Who the statement was sent to: the holder and its agents, as the mandates said."""
    return StatementRecipient.objects.filter(statement=statement).select_related("party").order_by("role", "party_id")


def consolidated_list_for_actor(*, actor: Actor, settlement_pk: int | None = None) -> QuerySet[ConsolidatedStatement]:
    """Staff read every consolidated statement; a society or agent its own, of settled periods only."""
    consolidated = ConsolidatedStatement.objects.select_related("settlement", "agent").order_by(
        "-settlement__period_start", "agent_id"
    )
    if not actor.is_staff:
        if actor.party is None:
            return consolidated.none()
        consolidated = consolidated.filter(agent=actor.party, settlement__status=SettlementStatus.SETTLED)
    if settlement_pk is not None:
        consolidated = consolidated.filter(settlement_id=settlement_pk)
    return consolidated


def consolidated_get_for_actor(*, actor: Actor, consolidated_pk: int) -> ConsolidatedStatement:
    consolidated = consolidated_list_for_actor(actor=actor).filter(pk=consolidated_pk).first()
    if consolidated is None:
        raise NotFound(_("No such consolidated statement."))
    return consolidated


def consolidated_members(*, consolidated: ConsolidatedStatement) -> QuerySet[Statement]:
    """The members' statements a consolidated statement sums, by member name."""
    sent = StatementRecipient.objects.filter(
        statement__settlement_id=consolidated.settlement_id, party_id=consolidated.agent_id, role=StatementRole.AGENT
    )
    return (
        Statement.objects.filter(pk__in=sent.values("statement_id"))
        .select_related("holder", "payee", "settlement")
        .order_by("holder__name", "holder_id")
    )


def consolidated_lines(*, consolidated: ConsolidatedStatement) -> QuerySet[StatementLine]:
    """Every line of the members' statements, member by member (for exports; one query, streamed)."""
    return (
        StatementLine.objects.filter(statement__in=consolidated_members(consolidated=consolidated).values("pk"))
        .select_related("work", "lab", "manifest", "statement__holder")
        .order_by("statement__holder__name", "statement__holder_id", "kind", "work_id", "lab_id", "manifest_id", "pk")
    )


def statement_lines(*, statement: Statement) -> QuerySet[StatementLine]:
    return StatementLine.objects.filter(statement=statement).select_related(
        "work", "other_work", "lab", "manifest", "entry"
    )


def statement_line_manifest_lines(*, line: StatementLine) -> QuerySet[ManifestLine]:
    """The manifest lines behind an accrual or release line of a statement: the trace to what was used."""
    if line.manifest_id is None:
        return ManifestLine.objects.none()
    lines = ManifestLine.objects.filter(manifest_id=line.manifest_id).order_by("line_no", "side")
    if line.work_id is None:
        return lines.filter(work__isnull=True)
    return lines.filter(work_id=line.work_id, side=line.side, other_work_id=line.other_work_id)


def invoice_list_for_actor(*, actor: Actor, settlement_pk: int | None = None) -> QuerySet[Invoice]:
    """Staff read every invoice; a lab its own, of settled periods only."""
    invoices = Invoice.objects.select_related("settlement", "lab").order_by("-settlement__period_start", "lab_id")
    if not actor.is_staff:
        if actor.party is None:
            return invoices.none()
        invoices = invoices.filter(lab=actor.party, settlement__status=SettlementStatus.SETTLED)
    if settlement_pk is not None:
        invoices = invoices.filter(settlement_id=settlement_pk)
    return invoices


def invoice_get_for_actor(*, actor: Actor, invoice_pk: int) -> Invoice:
    invoice = invoice_list_for_actor(actor=actor).filter(pk=invoice_pk).first()
    if invoice is None:
        raise NotFound(_("No such invoice."))
    return invoice


def invoice_lines(*, invoice: Invoice) -> QuerySet[InvoiceLine]:
    return InvoiceLine.objects.filter(invoice=invoice).select_related("manifest", "work", "refusal", "entry")


def distribution_list(*, actor: Actor) -> QuerySet[MarketShareDistribution]:
    require_staff(actor)
    return MarketShareDistribution.objects.order_by("-hold_month")


def holder_earnings(*, party: Party, top: int = 10) -> dict[str, Any]:
    """A rights holder's earnings in micro-won (owed to the holder: positive): the balance now, what accrued
    per month (local time) and was paid out, totals by kind, and the works that earned the holder the most
    in settled periods (their statement lines: the holder's own share, traced to manifest lines).
    """
    payable = LedgerLine.objects.filter(account__party=party, account__kind=AccountKind.HOLDER_PAYABLE)
    by_kind: dict[str, int] = {
        kind: -int(total)
        for kind, total in payable.values("entry__kind")
        .annotate(total=Sum("amount_micro"))
        .order_by()
        .values_list("entry__kind", "total")
    }
    months: dict[str, dict[str, int]] = {}
    for month, kind, total in (
        payable.annotate(month=TruncMonth("entry__effective_at", tzinfo=timezone.get_current_timezone()))
        .values("month", "entry__kind")
        .annotate(total=Sum("amount_micro"))
        .order_by("month")
        .values_list("month", "entry__kind", "total")
    ):
        slot = months.setdefault(f"{timezone.localtime(month):%Y-%m}", {"accrued": 0, "paid_out": 0})
        slot["paid_out" if kind == EntryKind.PAYOUT else "accrued"] += -int(total)
    peak = max((slot["accrued"] for slot in months.values()), default=0)
    top_works = list(
        StatementLine.objects.filter(
            statement__holder=party,
            statement__settlement__status=SettlementStatus.SETTLED,
            kind__in=[StatementLineKind.ACCRUAL, StatementLineKind.RELEASE],
            work__isnull=False,
        )
        .values("work_id", title=F("work__title"))
        .annotate(total=Sum("amount_micro"))
        .filter(total__gt=0)
        .order_by("-total", "work_id")[:top]
    )
    return {
        "balance_micro": sum(by_kind.values()),
        "released_micro": by_kind.get(EntryKind.RELEASE, 0),
        "distributed_micro": by_kind.get(EntryKind.DISTRIBUTION, 0),
        # A payout debits the payable: negated above, it is negative; shown as the positive amount paid.
        "paid_out_micro": -by_kind.get(EntryKind.PAYOUT, 0),
        "months": [
            {
                "month": month,
                "micro": slot["accrued"],
                "paid_out_micro": -slot["paid_out"],
                "percent": round(100 * slot["accrued"] / peak) if peak > 0 else 0,
            }
            for month, slot in months.items()
        ],
        "top_works": top_works,
    }
