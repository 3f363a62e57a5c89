"""The compensation ledger (double-entry, append-only) and tariffs.

Sign convention: a line's ``amount_micro`` is positive for a debit and negative for a credit, in
micro-won. An accrual debits the lab's receivable (the lab owes) and credits a holder's payable or an
escrow account (the registry owes or holds), so a holder's payable balance is negative while money is
owed to the holder. Every entry's lines sum to zero, hence so do all balances together.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.jobs import JobFields, JobKind, job_kind_register
from registry.models import Party, WorkKind


class AccountKind(models.TextChoices):
    LAB_RECEIVABLE = "lab_receivable", _("Lab receivable")
    HOLDER_PAYABLE = "holder_payable", _("Holder payable")
    # Held for an identifier no registered work has yet; escrow_key is the normalized identifier.
    ESCROW_UNMATCHED = "escrow_unmatched", _("Escrow: unmatched")
    # Held for the part of a registered work not covered by verified shares; escrow_key is ``work:<id>``.
    ESCROW_UNCLAIMED = "escrow_unclaimed", _("Escrow: unclaimed share")
    ESCROW_DISPUTED = "escrow_disputed", _("Escrow: disputed")
    VIOLATIONS = "violations", _("Violations")
    ROUNDING = "rounding", _("Rounding")
    PAYOUTS = "payouts", _("Payouts")
    # Tax withheld from payouts, owed to the tax authority.
    WITHHOLDING = "withholding", _("Withholding")


# Kinds that belong to a party, and the party kind each needs.
PARTY_ACCOUNT_KINDS: dict[str, str] = {
    AccountKind.LAB_RECEIVABLE.value: "lab",
    AccountKind.HOLDER_PAYABLE.value: "holder",
}
ESCROW_ACCOUNT_KINDS: tuple[str, ...] = (
    AccountKind.ESCROW_UNMATCHED.value,
    AccountKind.ESCROW_UNCLAIMED.value,
    AccountKind.ESCROW_DISPUTED.value,
)


class Account(models.Model):
    """A ledger account; its balance is the sum of its lines. One row per (kind, party, escrow key)."""

    kind = models.CharField(_("kind"), max_length=32, choices=AccountKind.choices)
    party = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
        verbose_name=_("party"),
    )
    escrow_key = models.CharField(
        _("escrow key"),
        max_length=2100,
        blank=True,
        help_text=_("What escrow is held for: a normalized identifier (isbn:978…) or work:<id>."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["kind", "party_id", "escrow_key"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=AccountKind.values), name="account_kind_valid"),
            # NULL parties never collide in a plain unique index, so the party-less accounts get their own
            # (partial) one; this works alike on PostgreSQL and SQLite.
            models.UniqueConstraint(
                fields=["kind", "party", "escrow_key"], condition=Q(party__isnull=False), name="account_unique_party"
            ),
            models.UniqueConstraint(
                fields=["kind", "escrow_key"], condition=Q(party__isnull=True), name="account_unique_no_party"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=sorted(PARTY_ACCOUNT_KINDS)) | Q(party__isnull=False),
                name="account_party_required",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=ESCROW_ACCOUNT_KINDS) | (Q(party__isnull=True) & ~Q(escrow_key="")),
                name="account_escrow_keyed",
            ),
        ]

    def __str__(self) -> str:
        label = str(self.get_kind_display())
        if self.party_id is not None:
            label += f" · {self.party}"
        if self.escrow_key:
            label += f" · {self.escrow_key}"
        return label


class EntryKind(models.TextChoices):
    ACCRUAL = "accrual", _("Accrual")
    RELEASE = "release", pgettext_lazy("escrow release", "Release")
    DISTRIBUTION = "distribution", _("Market-share distribution")
    PAYOUT = "payout", _("Payout")
    ADJUSTMENT = "adjustment", _("Adjustment")
    REVERSAL = "reversal", _("Reversal")


class LedgerEntry(models.Model):
    """One balanced posting. Never updated or deleted (PostgreSQL refuses it, migration 0002);
    a correction is a reversal, which negates every line of the entry it ``reverses``.
    """

    idempotency_key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=EntryKind.choices)
    # The instant the money belongs to: settlement periods are closed by this, not by created_at.
    effective_at = models.DateTimeField(_("effective at"), db_index=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    memo = models.TextField(_("memo"), blank=True)
    reverses = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversed_by",
        verbose_name=_("reverses"),
    )
    source = models.JSONField(_("source"), default=dict, blank=True)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["-effective_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EntryKind.values), name="ledgerentry_kind_valid"),
            models.CheckConstraint(
                condition=(Q(kind=EntryKind.REVERSAL.value) & Q(reverses__isnull=False))
                | (~Q(kind=EntryKind.REVERSAL.value) & Q(reverses__isnull=True)),
                name="ledgerentry_reversal_has_original",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.idempotency_key}"


class LedgerLine(models.Model):
    """A debit (positive) or credit (negative) of one account, in micro-won."""

    # Indexed with the line id below: the balance trigger asks "is this the entry's last line?" cheaply.
    entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, related_name="lines", verbose_name=_("entry"), db_index=False
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lines", verbose_name=_("account"))
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))

    class Meta:
        verbose_name = _("ledger line")
        verbose_name_plural = _("ledger lines")
        ordering = ["entry_id", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(amount_micro=0), name="ledgerline_amount_not_zero"),
        ]
        indexes = [
            # Balances: every line of an account, joined to its entry for the effective date.
            models.Index(fields=["account", "entry"], name="ledgerline_account_entry_idx"),
            models.Index(fields=["entry", "id"], name="ledgerline_entry_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount_micro:+d} µ₩"


class UsageUnit(models.TextChoices):
    TOKEN = "token", pgettext_lazy("usage unit", "token")
    IMAGE = "image", pgettext_lazy("usage unit", "image")
    SECOND = "second", pgettext_lazy("usage unit", "second")
    ITEM = "item", pgettext_lazy("usage unit", "item")
    BYTE = "byte", pgettext_lazy("usage unit", "byte")


class Tariff(models.Model):
    """The rate in KRW per one unit of a work kind, from an instant on. Rows are only ever added;
    the latest one that started at or before a use applies to it.
    """

    kind = models.CharField(_("work kind"), max_length=16, choices=WorkKind.choices)
    unit = models.CharField(_("unit"), max_length=16, choices=UsageUnit.choices)
    rate_krw = models.DecimalField(
        _("rate (KRW per unit)"), max_digits=24, decimal_places=12, help_text=_("Exact, e.g. 0.0005 per token.")
    )
    effective_from = models.DateTimeField(_("effective from"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("set by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("tariff")
        verbose_name_plural = _("tariffs")
        ordering = ["kind", "unit", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "unit", "effective_from"], name="tariff_one_per_instant"),
            models.CheckConstraint(condition=Q(kind__in=WorkKind.values), name="tariff_kind_valid"),
            models.CheckConstraint(condition=Q(unit__in=UsageUnit.values), name="tariff_unit_valid"),
            models.CheckConstraint(condition=Q(rate_krw__gte=0), name="tariff_rate_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.unit}: {self.rate_krw.normalize():f} KRW from {self.effective_from:%Y-%m-%d}"


# --- Usage manifests -------------------------------------------------------------------------


class ManifestStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSING = "processing", _("Processing")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")


class ManifestFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"


class Outcome(models.TextChoices):
    """What became of one manifest line (modelled on CWR acknowledgement and DDEX CDM statuses)."""

    MATCHED = "matched", _("Matched: owed to the owners")
    SHARE_UNCLAIMED = "share_unclaimed", _("Registered, no verified owner: held")
    UNMATCHED_HELD = "unmatched_held", _("Not registered: held in escrow")
    DISPUTED_HELD = "disputed_held", _("Ownership disputed: held")
    REFUSED_AT_USE = "refused_at_use", _("Refused when used: a violation")
    LICENSE_REQUIRED = "license_required", _("Licence required")
    UNPRICED = "unpriced", _("No tariff in force: not yet priced")
    INVALID = "invalid", _("Invalid line")
    DUPLICATE = "duplicate", _("Duplicate of an earlier line")


def _manifest_upload_to(instance: UsageManifest, filename: str) -> str:
    suffix = ".gz" if instance.compressed else ""
    return f"manifests/{timezone.now():%Y/%m}/{instance.lab_id}-{timezone.now():%H%M%S%f}.{instance.format}{suffix}"


class UsageManifest(JobFields):
    """A lab's report of what one training run used. The lines are kept as uploaded (``file``); each
    line's outcome is a ``ManifestLine``. ``lines_done`` is the resume cursor of processing; the lifecycle
    (queueing, heartbeat, failure, retry) is ``core.jobs``'s.
    """

    lab = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="usage_manifests", verbose_name=_("lab"))
    manifest_id = models.CharField(_("manifest id"), max_length=200)
    model = models.CharField(_("model"), max_length=200)
    model_version = models.CharField(_("model version"), max_length=200, blank=True)
    purpose = models.CharField(_("purpose"), max_length=16)
    period_start = models.DateTimeField(_("period start"), null=True, blank=True)
    period_end = models.DateTimeField(_("period end"), null=True, blank=True)
    # SHA-256 of the canonical form (metadata + decompressed lines): the same content gives the same hash
    # however it was sent, so a resubmission is recognised.
    content_hash = models.CharField(_("content hash"), max_length=64)
    format = models.CharField(_("format"), max_length=8, choices=ManifestFormat.choices)
    compressed = models.BooleanField(_("gzip-compressed"), default=False)
    file = models.FileField(_("lines"), upload_to=_manifest_upload_to, max_length=300)
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    # The uploader's language: outcome files are in it when their reader asks for none.
    language = models.CharField(_("language"), max_length=8, blank=True, default="", db_default="")
    status = models.CharField(
        _("status"), max_length=16, choices=ManifestStatus.choices, default=ManifestStatus.RECEIVED
    )
    lines_total = models.PositiveIntegerField(_("lines"), default=0)
    lines_done = models.PositiveIntegerField(_("lines processed"), default=0)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("submitted by"),
    )
    api_key = models.ForeignKey(
        "registry.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("API key")
    )
    created_at = models.DateTimeField(_("received at"), default=timezone.now)
    # Lines and amounts per outcome, stored when processing ends so that reading a large manifest costs
    # nothing; cleared when re-pricing or an escrow release changes its lines (then computed when read).
    summary = models.JSONField(_("summary"), null=True, blank=True)
    # When the last chunk committed: a manifest that stops progressing is queued again.
    progressed_at = models.DateTimeField(_("last progress"), null=True, blank=True)

    class Meta:
        verbose_name = _("usage manifest")
        verbose_name_plural = _("usage manifests")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "manifest_id"], name="manifest_id_unique_per_lab"),
            models.CheckConstraint(condition=Q(status__in=ManifestStatus.values), name="manifest_status_valid"),
            models.CheckConstraint(condition=Q(lines_done__lte=models.F("lines_total")), name="manifest_progress"),
            models.CheckConstraint(
                condition=Q(period_start__isnull=True)
                | Q(period_end__isnull=True)
                | Q(period_start__lte=models.F("period_end")),
                name="manifest_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.manifest_id} ({self.model}, {self.status})"


MANIFEST_JOB = JobKind(
    model=UsageManifest,
    task="compensation.tasks.usage_manifest_run",
    waiting=ManifestStatus.RECEIVED,
    running=ManifestStatus.PROCESSING,
    done=ManifestStatus.PROCESSED,
    failed=ManifestStatus.FAILED,
    audit_prefix="compensation.manifest",
)
job_kind_register(MANIFEST_JOB)


class ManifestLine(models.Model):
    """One line of a manifest and its outcome: the acknowledgement row.

    At most one row per (manifest, line number), so a line is accrued at most once (ledger invariant 3).
    ``amount_micro`` is the line's price; it went ``paid_micro`` to owners (``allocation``), ``held_micro``
    to ``held_account`` and ``violation_micro`` to the violations account; their sum is the amount.
    Of what was held, ``released_micro`` has since gone to owners; ``open_bp`` is the part of the work
    (in basis points) that the rest of the hold still stands for.
    """

    # The database checks the manifest once per statement rather than per row (a row-level foreign key runs a
    # query for every outcome row): triggers of migration 0008 refuse rows naming no manifest, lock the manifests
    # the rows name (FOR KEY SHARE, as the foreign key did), and refuse deleting a manifest that has rows.
    manifest = models.ForeignKey(
        UsageManifest,
        on_delete=models.PROTECT,
        related_name="lines",
        verbose_name=_("manifest"),
        db_index=False,
        db_constraint=False,
    )
    line_no = models.PositiveIntegerField(_("line"))
    scheme = models.CharField(_("scheme"), max_length=32, blank=True)
    value = models.CharField(_("value"), max_length=2100, blank=True)
    key = models.CharField(_("normalized identifier"), max_length=2100, blank=True)
    units = models.DecimalField(_("units"), max_digits=30, decimal_places=6, null=True, blank=True)
    unit = models.CharField(_("unit"), max_length=16, blank=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    # Identifies "the same use reported again" within a manifest: md5 of key, units, unit and used_at. Not indexed:
    # the worker keeps the keys of the manifest it is processing (compensation/usage_sql.py).
    dedupe = models.UUIDField(_("deduplication key"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices)
    reason_code = models.CharField(_("reason code"), max_length=40, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    # No database constraint on work, refusal, tariff, held_account and entry: each check locks the
    # referenced row (FOR KEY SHARE) at commit, which for a million-line manifest means a million writes to
    # work rows and more time than deciding the lines. Entries and tariffs are append-only and refusals
    # undeletable in the database, and Django's PROTECT refuses deleting a work or account these rows
    # reference; ``manage.py ledger_check`` verifies the links. The manifest's rule is kept by triggers (above).
    work = models.ForeignKey(
        "registry.Work",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("work"),
        db_index=False,
        db_constraint=False,
    )
    kind = models.CharField(_("work kind"), max_length=16, blank=True)
    refusal = models.ForeignKey(
        "optout.Refusal",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("refusal"),
        db_index=False,
        db_constraint=False,
    )
    tariff = models.ForeignKey(
        Tariff,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("tariff"),
        db_index=False,
        db_constraint=False,
    )
    amount_micro = models.BigIntegerField(_("amount (micro-won)"), null=True, blank=True)
    paid_micro = models.BigIntegerField(_("to owners (micro-won)"), default=0)
    held_micro = models.BigIntegerField(_("held (micro-won)"), default=0)
    violation_micro = models.BigIntegerField(_("violation (micro-won)"), default=0)
    released_micro = models.BigIntegerField(_("released (micro-won)"), default=0)
    held_account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("held in"),
        db_index=False,
        db_constraint=False,
    )
    open_bp = models.PositiveIntegerField(_("open share (basis points)"), default=0)
    hold_open = models.BooleanField(_("hold open"), default=False)
    # [[holder id, claim id, micro-won, entry id], ...]: who was paid from this line, at use and on release.
    allocation = models.JSONField(_("allocation"), default=list, blank=True)
    entry = models.ForeignKey(
        LedgerEntry,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("entry"),
        db_index=False,
        db_constraint=False,
    )
    processed_at = models.DateTimeField(_("processed at"), default=timezone.now)

    class Meta:
        verbose_name = _("manifest line")
        verbose_name_plural = _("manifest lines")
        ordering = ["manifest_id", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["manifest", "line_no"], name="manifest_line_once"),
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="manifest_line_outcome_valid"),
            # Conservation per line (ledger invariant 4): what the line cost went somewhere, exactly.
            models.CheckConstraint(
                condition=Q(amount_micro__isnull=True, paid_micro=0, held_micro=0, violation_micro=0)
                | Q(amount_micro=models.F("paid_micro") + models.F("held_micro") + models.F("violation_micro")),
                name="manifest_line_conserved",
            ),
            models.CheckConstraint(
                condition=Q(released_micro__gte=0) & Q(released_micro__lte=models.F("held_micro")),
                name="manifest_line_release_bounded",
            ),
        ]
        indexes = [
            models.Index(
                fields=["key"], condition=Q(hold_open=True, work__isnull=True), name="manifest_line_unmatched_hold"
            ),
            models.Index(fields=["work"], condition=Q(hold_open=True), name="manifest_line_work_hold"),
            models.Index(
                fields=["work", "manifest"],
                condition=Q(outcome="refused_at_use"),
                name="manifest_line_violation_idx",
            ),
            # Lines waiting for a tariff (re-priced when staff add one).
            models.Index(
                fields=["kind", "unit"],
                condition=Q(tariff__isnull=True, outcome__in=["unpriced", "refused_at_use"]),
                name="manifest_line_unpriced_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.manifest_id}:{self.line_no} {self.outcome}"


class EscrowRelease(models.Model):
    """One release of held money to a work's owners, with the entry that moved it."""

    work = models.ForeignKey("registry.Work", on_delete=models.PROTECT, related_name="+", verbose_name=_("work"))
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="escrow_release", verbose_name=_("entry")
    )
    claims = models.JSONField(_("claims paid"), default=list)
    lines = models.PositiveIntegerField(_("lines released"))
    amount_micro = models.BigIntegerField(_("amount (micro-won)"))
    created_at = models.DateTimeField(_("released at"), default=timezone.now)

    class Meta:
        verbose_name = _("escrow release")
        verbose_name_plural = _("escrow releases")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"release #{self.pk} work {self.work_id}: {self.amount_micro} µ₩"


# --- Settlement -------------------------------------------------------------------------------


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
)
job_kind_register(SETTLEMENT_JOB)


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
        ]

    def __str__(self) -> str:
        return f"{self.holder} · {self.settlement}"


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
        ]

    def __str__(self) -> str:
        return f"{self.kind} work {self.work_id} manifest {self.manifest_id}: {self.amount_micro} µ₩"


class Invoice(models.Model):
    """What a lab owes for the period: its manifests' lines by outcome, and its violations apart.
    ``total_micro`` is the receivable's movement in the period; ``amount_due_won`` rounds it to whole won.
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
                condition=Q(closing_micro=models.F("opening_micro") + models.F("total_micro")),
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


# --- Exports ----------------------------------------------------------------------------------


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "XLSX"
    PDF = "pdf", "PDF"


class ExportStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class Export(JobFields):
    """A statement or invoice too large to render in the request, rendered by a task into ``file``.

    Who may read it is decided by its document: whoever may read the statement or invoice.
    """

    document = models.CharField(_("document"), max_length=32)
    object_id = models.PositiveIntegerField(_("document id"), null=True, blank=True)
    format = models.CharField(_("format"), max_length=8, choices=ExportFormat.choices)
    language = models.CharField(_("language"), max_length=8)
    status = models.CharField(_("status"), max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    file = models.FileField(_("file"), max_length=300, blank=True)
    lines = models.PositiveIntegerField(_("lines"), default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested at"), default=timezone.now)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["document", "object_id"], name="export_document_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ExportStatus.values), name="export_status_valid"),
            models.CheckConstraint(condition=Q(format__in=ExportFormat.values), name="export_format_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.document} {self.object_id} {self.format} ({self.status})"


EXPORT_JOB = JobKind(
    model=Export,
    task="compensation.tasks.export_run",
    waiting=ExportStatus.PENDING,
    running=ExportStatus.RUNNING,
    done=ExportStatus.DONE,
    failed=ExportStatus.FAILED,
    audit_prefix="compensation.export",
)
job_kind_register(EXPORT_JOB)
