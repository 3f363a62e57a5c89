"""Settlement: periods settled into holder statements, lab invoices and payouts; market-share distributions."""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models.ledger import LedgerEntry
from compensation.models.usage import LineSide, Outcome, UsageManifest
from core.jobs import JobFields, JobKind, job_kind_register
from registry.models import Party


class SettlementStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SETTLED = "settled", _("Settled")
    FAILED = "failed", _("Failed")


class Settlement(JobFields):
    """One distribution run over a period of effective dates, ``[period_start, period_end)``.

    From the moment it runs, the period is closed: the database refuses postings dated inside it except
    this settlement's own payouts (migration 0005), and the ledger moves late postings to the open period.
    """

    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"), help_text=_("Exclusive: the first instant after the period."))
    status = models.CharField(
        _("status"), max_length=16, choices=SettlementStatus.choices, default=SettlementStatus.PENDING
    )
    # What the run has finished: "", "statements", "invoices", "payouts". Each step commits on its own, so a
    # retried task continues after the last one and the progress can be read while it runs.
    step = models.CharField(_("step done"), max_length=16, blank=True)
    progress = models.JSONField(_("progress"), default=dict, blank=True)
    payout_threshold_micro = models.BigIntegerField(_("payout threshold (micro-won)"))
    withholding_bp = models.PositiveIntegerField(_("withholding (basis points)"), default=0)
    totals = models.JSONField(_("totals"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        ordering = ["-period_start", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(period_start__lt=models.F("period_end")), name="settlement_period"),
            models.CheckConstraint(condition=Q(status__in=SettlementStatus.values), name="settlement_status_valid"),
            models.CheckConstraint(condition=Q(withholding_bp__lte=10_000), name="settlement_withholding_bounded"),
            models.CheckConstraint(condition=Q(payout_threshold_micro__gte=0), name="settlement_threshold"),
        ]

    def __str__(self) -> str:
        return f"{self.first_day:%Y-%m-%d} to {self.last_day:%Y-%m-%d} ({self.status})"

    @property
    def first_day(self) -> date:
        return timezone.localtime(self.period_start).date()

    @property
    def last_day(self) -> date:
        return (timezone.localtime(self.period_end) - timedelta(microseconds=1)).date()


SETTLEMENT_JOB = JobKind(
    model=Settlement,
    task="compensation.tasks.settlement_run",
    waiting=SettlementStatus.PENDING,
    running=SettlementStatus.RUNNING,
    done=SettlementStatus.SETTLED,
    failed=SettlementStatus.FAILED,
    audit_prefix="compensation.settlement",
    cursor="step",
)
job_kind_register(SETTLEMENT_JOB)


class CarryReason(models.TextChoices):
    NONE = "", _("Paid")
    BELOW_THRESHOLD = "below_threshold", _("Below the payout threshold")
    NO_VERIFIED_PROFILE = "no_verified_profile", _("No verified payout profile")
    AWAITING_LAB_PAYMENTS = "awaiting_lab_payments", _("Awaiting the labs' payments (cash basis)")


class Statement(models.Model):
    """A rights holder's account of one settlement period. Amounts are micro-won owed to the holder
    (positive) and reconcile: opening + accrued + released + distributed + adjustments = due;
    due - payout - withheld - rounding = closing; closing - opening = the payable's movement in the period.
    """

    settlement = models.ForeignKey(
        Settlement, on_delete=models.PROTECT, related_name="statements", verbose_name=_("settlement")
    )
    holder = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="statements", verbose_name=_("holder"))
    opening_micro = models.BigIntegerField(_("opening balance"))
    accrued_micro = models.BigIntegerField(_("accrued"))
    released_micro = models.BigIntegerField(_("escrow released"))
    distributed_micro = models.BigIntegerField(_("market-share distribution"))
    adjustments_micro = models.BigIntegerField(_("adjustments"))
    due_micro = models.BigIntegerField(_("due"))
    # Whole won (a multiple of 1,000,000 micro-won): what is transferred, and what is withheld from it.
    payout_micro = models.BigIntegerField(_("payout"))
    withheld_micro = models.BigIntegerField(_("withheld"))
    # Zero: payouts are the due's whole won rounded down and the sub-won rest is carried forward. Statements
    # priced before that (whole won split by largest remainder) keep the difference the rounding account bore.
    rounding_micro = models.BigIntegerField(_("rounding"))
    carried_forward_micro = models.BigIntegerField(_("carried forward"))
    closing_micro = models.BigIntegerField(_("closing balance"))
    payout_entry = models.ForeignKey(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("payout entry")
    )
    # On what basis the holder was paid (the staff policy in force on the period's last day), the tax status and
    # rate its withholding was computed with, and why anything due was not paid out.
    basis = models.CharField(_("payout basis"), max_length=16, default="accrual")
    tax_status = models.CharField(_("tax status"), max_length=16, blank=True)
    withholding_bp = models.PositiveIntegerField(_("withholding (basis points)"), default=0)
    carry_reason = models.CharField(_("why carried forward"), max_length=32, choices=CarryReason.choices, blank=True)
    # To whom the payout goes: the holder itself, or the agent whose mandate in force on the period's last instant
    # has the power to receive payouts (``payout_mandate``). Empty on statements written before mandates paid.
    payee = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payouts_received",
        verbose_name=_("paid to"),
    )
    payout_mandate = models.ForeignKey(
        "registry.Mandate",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("payout mandate"),
    )

    class Meta:
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        ordering = ["settlement_id", "holder_id"]
        constraints = [
            models.UniqueConstraint(fields=["settlement", "holder"], name="statement_once_per_holder"),
            models.CheckConstraint(
                condition=Q(
                    due_micro=models.F("opening_micro")
                    + models.F("accrued_micro")
                    + models.F("released_micro")
                    + models.F("distributed_micro")
                    + models.F("adjustments_micro")
                ),
                name="statement_due_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(
                    closing_micro=models.F("due_micro")
                    - models.F("payout_micro")
                    - models.F("withheld_micro")
                    - models.F("rounding_micro")
                ),
                name="statement_closing_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(carried_forward_micro=models.F("closing_micro")), name="statement_carried_is_closing"
            ),
            # Paid to someone else than the holder only under a mandate.
            models.CheckConstraint(
                condition=Q(payee__isnull=True)
                | Q(payee=models.F("holder"), payout_mandate__isnull=True)
                | (~Q(payee=models.F("holder")) & Q(payout_mandate__isnull=False)),
                name="statement_payee_by_mandate",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} · {self.settlement}"

    @property
    def paid_to(self) -> Party:
        """Who the payout goes to: the agent under a mandate, else the holder."""
        return self.payee if self.payee_id is not None else self.holder  # type: ignore[return-value]


class StatementRole(models.TextChoices):
    MEMBER = "member", _("The rights holder")
    AGENT = "agent", _("Its agent")


class StatementRecipient(models.Model):
    """Who a statement was sent to, as the mandates said when the period was settled: the holder (unless a mandate
    in force at the period's end sends statements to its agent only) and each agent whose mandate with the power
    to receive statements was in force at some instant of the period. A holder always reads its own statements;
    an agent reads those sent to it. Written with the statements, never changed.
    """

    statement = models.ForeignKey(
        Statement, on_delete=models.PROTECT, related_name="recipients", verbose_name=_("statement")
    )
    party = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="+", verbose_name=_("recipient"))
    role = models.CharField(_("as"), max_length=8, choices=StatementRole.choices)
    mandate = models.ForeignKey(
        "registry.Mandate", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("mandate")
    )

    class Meta:
        verbose_name = _("statement recipient")
        verbose_name_plural = _("statement recipients")
        ordering = ["statement_id", "role", "party_id"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "party"], name="statement_recipient_once"),
            models.CheckConstraint(condition=Q(role__in=StatementRole.values), name="statement_recipient_role"),
            models.CheckConstraint(
                condition=Q(role="member", mandate__isnull=True) | Q(role="agent", mandate__isnull=False),
                name="statement_recipient_agent_by_mandate",
            ),
        ]
        indexes = [models.Index(fields=["party", "role"], name="statement_recipient_party_idx")]

    def __str__(self) -> str:
        return f"statement {self.statement_id} → {self.party_id} ({self.role})"


class ConsolidatedStatement(models.Model):
    """An agent's statement of one settled period: one section per member whose statement was sent to it, and the
    totals, which are the sums of those members' statements to the micro-won (``ledger_check`` verifies it)."""

    settlement = models.ForeignKey(
        Settlement, on_delete=models.PROTECT, related_name="consolidated_statements", verbose_name=_("settlement")
    )
    agent = models.ForeignKey(
        Party, on_delete=models.PROTECT, related_name="consolidated_statements", verbose_name=_("agent")
    )
    members = models.PositiveIntegerField(_("members"))
    opening_micro = models.BigIntegerField(_("opening balance"))
    earned_micro = models.BigIntegerField(
        _("earned in the period"), help_text=_("Accrued, released, distributed and adjusted: the lines' total.")
    )
    due_micro = models.BigIntegerField(_("due"))
    payout_micro = models.BigIntegerField(_("payout"))
    withheld_micro = models.BigIntegerField(_("withheld"))
    carried_forward_micro = models.BigIntegerField(_("carried forward"))
    # What of the payouts was paid to the agent itself (its members' mandates with the power to receive payouts).
    paid_to_agent_micro = models.BigIntegerField(_("paid to the agent"))

    class Meta:
        verbose_name = _("consolidated statement")
        verbose_name_plural = _("consolidated statements")
        ordering = ["settlement_id", "agent_id"]
        constraints = [
            models.UniqueConstraint(fields=["settlement", "agent"], name="consolidated_once_per_agent"),
            models.CheckConstraint(
                condition=Q(due_micro=models.F("opening_micro") + models.F("earned_micro")),
                name="consolidated_due_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent} · {self.settlement}"


class StatementLineKind(models.TextChoices):
    ACCRUAL = "accrual", _("Accrued")
    RELEASE = "release", _("Escrow released")
    DISTRIBUTION = "distribution", _("Market-share distribution")
    ADJUSTMENT = "adjustment", _("Adjustment")


class StatementLine(models.Model):
    """What a holder earned in the period from one work used by one lab in one manifest (or one
    distribution or adjustment entry); ``lines`` manifest lines stand behind it.
    """

    statement = models.ForeignKey(
        Statement, on_delete=models.PROTECT, related_name="lines", verbose_name=_("statement")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=StatementLineKind.choices)
    # No database constraint nor index on these: a month of a million manifest lines writes hundreds of
    # thousands of statement lines, and their checks at commit cost more than the rest of the run. What they
    # point to is never deleted (PROTECT, and the database refuses deleting entries and manifest lines);
    # ``manage.py ledger_check`` reconciles the lines with the ledger.
    work = models.ForeignKey(
        "registry.Work",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("work"),
        db_constraint=False,
        db_index=False,
    )
    # For a recording's use split with its musical work: which side the holder earned from, and the other side's
    # work (the musical work of a recording, the recording through which a musical work was used).
    side = models.CharField(_("side"), max_length=16, choices=LineSide.choices, blank=True, default="", db_default="")
    other_work = models.ForeignKey(
        "registry.Work",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("other side's work"),
        db_constraint=False,
        db_index=False,
    )
    lab = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("lab"),
        db_constraint=False,
        db_index=False,
    )
    manifest = models.ForeignKey(
        UsageManifest,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("manifest"),
        db_constraint=False,
        db_index=False,
    )
    entry = models.ForeignKey(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("entry"),
        db_constraint=False,
        db_index=False,
    )
    lines = models.PositiveIntegerField(_("manifest lines"), default=0)
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))

    class Meta:
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        ordering = ["statement_id", "kind", "work_id", "manifest_id", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=StatementLineKind.values), name="statement_line_kind_valid"),
            models.CheckConstraint(condition=Q(side__in=LineSide.values), name="statement_line_side_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} work {self.work_id} manifest {self.manifest_id}: {self.amount_micro} µ₩"


class Invoice(models.Model):
    """What a lab owes for the period: its manifests' lines by outcome, and its violations apart.
    ``total_micro`` is what the period billed (the receivable's movement but for payments); ``amount_due_won``
    rounds it to whole won; ``payments_micro`` is what the lab paid in the period, so
    closing = opening + total + payments. What is paid of this invoice is its payment allocations.
    """

    settlement = models.ForeignKey(
        Settlement, on_delete=models.PROTECT, related_name="invoices", verbose_name=_("settlement")
    )
    lab = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="invoices", verbose_name=_("lab"))
    number = models.CharField(_("invoice number"), max_length=40, unique=True)
    opening_micro = models.BigIntegerField(_("opening balance"))
    compensation_micro = models.BigIntegerField(_("compensation"))
    violations_micro = models.BigIntegerField(_("violations"))
    adjustments_micro = models.BigIntegerField(_("adjustments"))
    total_micro = models.BigIntegerField(_("total for the period"))
    closing_micro = models.BigIntegerField(_("closing balance"))
    amount_due_won = models.BigIntegerField(_("amount due (KRW)"))
    # What the lab paid in the period (the receivable's credits from payment entries; negative or zero).
    payments_micro = models.BigIntegerField(_("payments received"), default=0)
    due_on = models.DateField(_("due on"), null=True, blank=True)

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["settlement_id", "lab_id"]
        constraints = [
            models.UniqueConstraint(fields=["settlement", "lab"], name="invoice_once_per_lab"),
            models.CheckConstraint(
                condition=Q(
                    total_micro=models.F("compensation_micro")
                    + models.F("violations_micro")
                    + models.F("adjustments_micro")
                ),
                name="invoice_total_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(
                    closing_micro=models.F("opening_micro") + models.F("total_micro") + models.F("payments_micro")
                ),
                name="invoice_closing_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return self.number


class InvoiceSection(models.TextChoices):
    USAGE = "usage", _("Usage")
    VIOLATION = "violation", _("Violation")
    ADJUSTMENT = "adjustment", _("Adjustment")


class InvoiceLine(models.Model):
    """Usage: one manifest's lines of one outcome. Violation: one refused work used in one manifest.
    Adjustment: one correcting entry.
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines", verbose_name=_("invoice"))
    section = models.CharField(_("section"), max_length=16, choices=InvoiceSection.choices)
    manifest = models.ForeignKey(
        UsageManifest, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("manifest")
    )
    model = models.CharField(_("model"), max_length=200, blank=True)
    model_version = models.CharField(_("model version"), max_length=200, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices, blank=True)
    work = models.ForeignKey(
        "registry.Work", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("work")
    )
    refusal = models.ForeignKey(
        "optout.Refusal", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("refusal")
    )
    entry = models.ForeignKey(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("entry")
    )
    lines = models.PositiveIntegerField(_("manifest lines"), default=0)
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))

    class Meta:
        verbose_name = _("invoice line")
        verbose_name_plural = _("invoice lines")
        ordering = ["invoice_id", "section", "model", "manifest_id", "outcome", "work_id", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(section__in=InvoiceSection.values), name="invoice_line_section_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.section} {self.manifest_id} {self.outcome or self.work_id}: {self.amount_micro} µ₩"


class DistributionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class MarketShareDistribution(JobFields):
    """The once-only distribution of one hold month's escrow that nobody claimed within the hold period:
    to the holders that the same lab paid in the same month, pro rata, keeping ``reserve_bp`` for late claimants.
    """

    hold_month = models.DateField(_("hold month"), unique=True, help_text=_("The first day of the month."))
    status = models.CharField(
        _("status"), max_length=16, choices=DistributionStatus.choices, default=DistributionStatus.PENDING
    )
    reserve_bp = models.PositiveIntegerField(_("reserve (basis points)"))
    lines = models.PositiveIntegerField(_("holds distributed"), default=0)
    distributed_micro = models.BigIntegerField(_("distributed (micro-won)"), default=0)
    reserved_micro = models.BigIntegerField(_("kept in reserve (micro-won)"), default=0)
    undistributable_micro = models.BigIntegerField(
        _("not distributable (micro-won)"),
        default=0,
        help_text=_("Held for labs that paid no holder in the month: stays in escrow."),
    )
    # What went to public-interest accounts instead, for holds whose hold policy said so at the end of their period.
    transferred_micro = models.BigIntegerField(_("transferred to public interest (micro-won)"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("run by"),
    )
    created_at = models.DateTimeField(_("run at"), default=timezone.now)

    class Meta:
        verbose_name = _("market-share distribution")
        verbose_name_plural = _("market-share distributions")
        ordering = ["-hold_month"]
        constraints = [
            models.CheckConstraint(condition=Q(reserve_bp__lte=10_000), name="distribution_reserve_bounded"),
            models.CheckConstraint(condition=Q(status__in=DistributionStatus.values), name="distribution_status"),
        ]

    def __str__(self) -> str:
        return f"{self.hold_month:%Y-%m} ({self.status})"


DISTRIBUTION_JOB = JobKind(
    model=MarketShareDistribution,
    task="compensation.tasks.distribution_execute",
    waiting=DistributionStatus.PENDING,
    running=DistributionStatus.RUNNING,
    done=DistributionStatus.DONE,
    failed=DistributionStatus.FAILED,
    audit_prefix="compensation.distribution",
)
job_kind_register(DISTRIBUTION_JOB)


class DistributionShare(models.Model):
    """One holder's part of one lab's distributable holds in a distribution."""

    distribution = models.ForeignKey(
        MarketShareDistribution, on_delete=models.PROTECT, related_name="shares", verbose_name=_("distribution")
    )
    lab = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="+", verbose_name=_("lab"))
    holder = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="+", verbose_name=_("holder"))
    basis_micro = models.BigIntegerField(_("matched accruals (micro-won)"))
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))
    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="+", verbose_name=_("entry"))

    class Meta:
        verbose_name = _("distribution share")
        verbose_name_plural = _("distribution shares")
        ordering = ["distribution_id", "lab_id", "holder_id"]
        constraints = [
            models.UniqueConstraint(fields=["distribution", "lab", "holder"], name="distribution_share_once"),
        ]

    def __str__(self) -> str:
        return f"{self.distribution}: lab {self.lab_id} → holder {self.holder_id} {self.amount_micro} µ₩"
