"""Usage: tariffs (what a unit of use costs) and usage manifests, each line with its outcome."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from compensation.models.ledger import Account, LedgerEntry
from core.jobs import JobFields, JobKind, job_kind_register
from registry.models import Party, WorkKind


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


# The kinds of work that can name a musical work (``registry.Work.musical_work``): recordings.
RECORDING_KINDS: tuple[str, ...] = (WorkKind.AUDIO.value,)


class RecordingSplit(models.Model):
    """How a use of a recording (a work of ``kind`` naming a musical work) is shared between the recording's owners
    and its musical work's: ``musical_work_bp`` of each use's amount goes to the musical work, the rest to the
    recording, from an instant on. Staff-defined and append-only, like tariffs: the latest one that started at or
    before a use applies to it; before the first one, a recording's use is the recording's alone.
    """

    kind = models.CharField(
        _("kind of the work used"),
        max_length=16,
        choices=[(kind, label) for kind, label in WorkKind.choices if kind in RECORDING_KINDS],
        default=WorkKind.AUDIO,
    )
    musical_work_bp = models.PositiveIntegerField(
        _("musical work's share (basis points)"),
        help_text=_("Of each use of a recording, the part that goes to its musical work; 10000 = 100%."),
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
        verbose_name = _("recording split")
        verbose_name_plural = _("recording splits")
        ordering = ["kind", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "effective_from"], name="recording_split_one_per_instant"),
            models.CheckConstraint(condition=Q(kind__in=RECORDING_KINDS), name="recording_split_kind_valid"),
            models.CheckConstraint(condition=Q(musical_work_bp__lte=10_000), name="recording_split_share_range"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.musical_work_bp / 100:g}% to the musical work from {self.effective_from:%Y-%m-%d}"


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
    cursor="lines_done",
)
job_kind_register(MANIFEST_JOB)


class LineSide(models.TextChoices):
    """Which side of a use a manifest line's row accounts for: the whole use, or, for a recording whose musical work
    takes a share (``RecordingSplit``), the recording's part or the musical work's part (two rows per line)."""

    WHOLE = "", _("Whole use")
    RECORDING = "recording", _("Recording")
    MUSICAL_WORK = "musical_work", _("Musical work")


# The row that counts a manifest line as one use: the whole use's, or a split line's recording side. Its musical-work
# side is the same use, so counts of lines (summaries, invoices, the match rate) read only these rows, under the
# recording side's outcome, while sums of money add both sides.
USE_ROW = ~Q(side=LineSide.MUSICAL_WORK)


class MatchKind(models.TextChoices):
    EXACT = "exact", _("Exact: the identifier itself")
    SIMILAR = "similar", _("Similar: a near copy's content code")


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
    # the worker keeps the keys of the manifest it is processing (compensation/usage/sql.py).
    dedupe = models.UUIDField(_("deduplication key"), null=True, blank=True)
    # For a line given as an ISCC: whether it matched a work by that very ISCC ("exact") or by a near copy's
    # Content-Code ("similar", at ``distance`` bits); its ``key`` is then the identifier that decided it.
    match = models.CharField(_("match"), max_length=8, choices=MatchKind.choices, blank=True, default="")
    distance = models.PositiveSmallIntegerField(_("distance (bits)"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices)
    # A use of a recording split between the recording and its musical work is two rows of one line: each side
    # with its own work, part of the amount, owners and hold, and the other side's work in ``other_work``.
    side = models.CharField(_("side"), max_length=16, choices=LineSide.choices, blank=True, default="", db_default="")
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
    other_work = models.ForeignKey(
        "registry.Work",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("other side's work"),
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
            models.UniqueConstraint(fields=["manifest", "line_no", "side"], name="manifest_line_once"),
            models.CheckConstraint(condition=Q(side__in=LineSide.values), name="manifest_line_side_valid"),
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
            # The public list of unclaimed money: what each escrow account still holds (open holds only).
            models.Index(
                fields=["held_account", "entry"], condition=Q(hold_open=True), name="manifest_line_open_by_account"
            ),
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
        side = f" ({self.side})" if self.side else ""
        return f"{self.manifest_id}:{self.line_no}{side} {self.outcome}"
