"""Parties, people, API keys, works, identifiers, ownership claims, domains and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, storages
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.actors import STAFF_SCOPE
from core.jobs import JobFields, JobKind, job_kind_register
from registry.fingerprints import AUDIO_CODE_MISSING_REASONS
from registry.identifiers import Scheme

MAX_SHARE_BP = 10_000


class PartyKind(models.TextChoices):
    HOLDER = "holder", _("Rights holder")
    LAB = "lab", _("AI lab")
    # A collecting society or an agent (publisher, distributor): acts for member parties under mandates.
    SOCIETY = "society", _("Society or agent")


class HolderType(models.TextChoices):
    PERSON = "person", _("Person")
    ORGANISATION = "organisation", _("Organisation")


class Party(models.Model):
    """A rights holder (person or organisation) or an AI lab; people act for it as members."""

    kind = models.CharField(_("kind"), max_length=16, choices=PartyKind.choices)
    holder_type = models.CharField(
        _("holder type"), max_length=16, choices=HolderType.choices, default=HolderType.ORGANISATION
    )
    name = models.CharField(_("name"), max_length=200, unique=True)
    isni = models.CharField(_("ISNI"), max_length=16, blank=True, help_text=_("16 characters, no spaces."))
    business_registration_number = models.CharField(
        _("business registration number"), max_length=10, blank=True, help_text=_("Korean 사업자등록번호, 10 digits.")
    )
    # Where to ask for a licence: shown on the public page of each work the holder's verified claims cover,
    # unless the work names its own contact.
    licensing_email = models.EmailField(_("licensing e-mail"), blank=True, db_default="", default="")
    licensing_url = models.URLField(_("licensing web page"), max_length=500, blank=True, db_default="", default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("party")
        verbose_name_plural = _("parties")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=PartyKind.values), name="party_kind_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_holder(self) -> bool:
        return self.kind == PartyKind.HOLDER

    @property
    def is_society(self) -> bool:
        return self.kind == PartyKind.SOCIETY


class MemberRole(models.TextChoices):
    OWNER = "owner", pgettext_lazy("membership role", "Owner")
    ADMIN = "admin", pgettext_lazy("membership role", "Administrator")
    MEMBER = "member", pgettext_lazy("membership role", "Member")


class Membership(models.Model):
    party = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("party"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    role = models.CharField(_("role"), max_length=16, choices=MemberRole.choices, default=MemberRole.MEMBER)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["party", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.party} ({self.role})"


class ApiScope(models.TextChoices):
    LOOKUP = "lookup", _("Look up works")
    USAGE_WRITE = "usage:write", _("Submit usage manifests")
    WORKS_WRITE = "works:write", _("Register works and claims")
    # Changing where a holder's money goes: a key needs this on top of acting for the holder.
    PAYOUTS_WRITE = "payouts:write", _("Change payout details")
    STAFF = STAFF_SCOPE, _("Staff API")


class ApiKey(models.Model):
    """A secret for machine access. Only a SHA-256 of the key is stored; the key is shown once.

    Party keys act for their party; staff keys (``party`` empty) act for a staff user.
    """

    party = models.ForeignKey(
        Party, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("party")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="api_keys",
        verbose_name=_("created by / staff user"),
    )
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    scopes = models.JSONField(_("scopes"), default=list)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]
        constraints = [
            # A key acts either for a party or, for the staff API, for a staff user.
            models.CheckConstraint(
                condition=Q(party__isnull=False) | Q(user__isnull=False), name="apikey_has_principal"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.party or self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WorkKind(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    AUDIO = "audio", _("Audio")
    VIDEO = "video", _("Video")
    SOFTWARE = "software", _("Software")
    DATASET = "dataset", _("Dataset")
    OTHER = "other", _("Other")
    # A composition (ISWC; writers and publishers with their shares), distinct from its recordings (``audio``,
    # ISRC), which name it: a use of a recording pays both, and refusing the composition refuses its recordings.
    MUSICAL_WORK = "musical_work", _("Musical work")


class WorkStatus(models.TextChoices):
    # No verified claim yet: compensation for it is held until an owner is verified.
    UNVERIFIED = "unverified", _("Unverified")
    VERIFIED = "verified", _("Verified")
    # Claims staff accepted for review, with the verified ones, pass 100%: payment for the work is held in
    # escrow until staff verify or reject. A claim nobody has reviewed yet never disputes a work.
    DISPUTED = "disputed", _("Disputed")


class Work(models.Model):
    kind = models.CharField(_("kind"), max_length=16, choices=WorkKind.choices)
    title = models.CharField(_("title"), max_length=500)
    creators = models.JSONField(_("creators"), default=list, blank=True)
    language = models.CharField(_("language"), max_length=35, blank=True, help_text=_("BCP 47 tag, e.g. ko or en-US."))
    creation_year = models.PositiveSmallIntegerField(_("creation year"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=WorkStatus.choices, default=WorkStatus.UNVERIFIED)
    registered_by = models.ForeignKey(
        Party, on_delete=models.PROTECT, related_name="registered_works", verbose_name=_("registered by")
    )
    # The work's own licensing contact, set by a holder with a verified claim; it replaces the holders'.
    licensing_email = models.EmailField(_("licensing e-mail"), blank=True, db_default="", default="")
    licensing_url = models.URLField(_("licensing web page"), max_length=500, blank=True, db_default="", default="")
    # A recording's musical work (its composition); only recordings (``audio``) name one.
    musical_work = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="recordings",
        verbose_name=_("musical work"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("work")
        verbose_name_plural = _("works")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=WorkKind.values), name="work_kind_valid"),
            models.CheckConstraint(
                condition=Q(musical_work__isnull=True) | Q(kind="audio"), name="work_musical_work_on_recordings"
            ),
            models.CheckConstraint(condition=Q(status__in=WorkStatus.values), name="work_status_valid"),
        ]

    def __str__(self) -> str:
        return self.title


class ContributorRole(models.TextChoices):
    WRITER = "writer", _("Writer")
    PUBLISHER = "publisher", _("Publisher")


class MusicalWorkContributor(models.Model):
    """A writer (composer, lyricist, arranger...) or publisher of a musical work, with its share and IPI name
    number where given, as a CWR registration states them (SWR/SPU records). Shares are of the work's royalties;
    who is paid is still decided by verified ownership claims."""

    work = models.ForeignKey(Work, on_delete=models.CASCADE, related_name="contributors", verbose_name=_("work"))
    role = models.CharField(_("role"), max_length=16, choices=ContributorRole.choices)
    # The CWR designation: CA, C, A, AR, AD, TR, SA, SR for writers; E, SE, AM, PA, ES for publishers.
    designation = models.CharField(_("designation"), max_length=2, blank=True)
    name = models.CharField(_("name"), max_length=200)
    ipi = models.CharField(_("IPI name number"), max_length=11, blank=True, help_text=_("11 digits."))
    share_bp = models.PositiveIntegerField(_("share (basis points)"), default=0)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("musical work contributor")
        verbose_name_plural = _("musical work contributors")
        ordering = ["work", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(role__in=ContributorRole.values), name="contributor_role_valid"),
            models.CheckConstraint(condition=Q(share_bp__lte=MAX_SHARE_BP), name="contributor_share_range"),
            models.CheckConstraint(condition=Q(ipi="") | Q(ipi__regex=r"^[0-9]{11}$"), name="contributor_ipi_11"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.role}, {self.share_bp / 100:g}%)"


class ContentModality(models.TextChoices):
    """The ISCC Content-Code subtypes: near copies are searched only among codes of the same modality."""

    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    AUDIO = "audio", _("Audio")
    VIDEO = "video", _("Video")
    MIXED = "mixed", _("Mixed")


class Identifier(models.Model):
    """A normalized ``(scheme, value)`` that finds exactly one work."""

    work = models.ForeignKey(Work, on_delete=models.CASCADE, related_name="identifiers", verbose_name=_("work"))
    scheme = models.CharField(_("scheme"), max_length=16, choices=Scheme.choices)
    value = models.CharField(_("value"), max_length=2000)
    # The identifier as the holder wrote it (a URL with its tracking parameters, www. or trailing slash), shown
    # next to the key; the key (``value``) alone is matched. Empty for identifiers registered before it was kept.
    spelling = models.CharField(_("original spelling"), max_length=2000, blank=True, default="")
    # An ISCC's 64-bit Content-Code and its modality, copied out of ``value`` when the identifier is created
    # (registry.similarity.content_unit_of) so that near-duplicate search reads two integers, not a string.
    # Empty for other schemes and for an ISCC without a Content-Code (an ISCC-SUM).
    content_modality = models.CharField(
        _("content modality"), max_length=8, choices=ContentModality.choices, blank=True, default=""
    )
    content_code = models.BigIntegerField(_("content code"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("identifier")
        verbose_name_plural = _("identifiers")
        constraints = [
            models.UniqueConstraint(fields=["scheme", "value"], name="identifier_unique"),
            models.CheckConstraint(condition=Q(scheme__in=Scheme.values), name="identifier_scheme_valid"),
            models.CheckConstraint(
                condition=(Q(content_code__isnull=True) & Q(content_modality=""))
                | (Q(content_code__isnull=False, scheme="iscc") & Q(content_modality__in=ContentModality.values)),
                name="identifier_content_code_iscc_only",
            ),
        ]
        indexes = [
            # The similarity index's delta: the content codes added since its base was built.
            models.Index(fields=["id"], condition=Q(content_code__isnull=False), name="identifier_content_code_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}"


class ConflictStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class ConflictResolution(models.TextChoices):
    # The key stays with the work that holds it; the other work's spelling is not attached to it.
    KEPT = "kept", _("Key kept by the work that holds it")
    # The key moves to the work whose spelling collided.
    MOVED = "moved", _("Key moved to the other work")


class IdentifierConflict(models.Model):
    """Two works whose identifiers became one key when the key's rules changed (URLs made canonical, migration
    0006). The key (``scheme``, ``value``) stays unique: ``kept_by`` holds it (it registered it first), and the
    spelling ``work`` had registered is kept here instead. Both works are disputed until staff resolve it
    (``identifier_conflict_resolve``): the key stays, or moves to ``work``.
    """

    scheme = models.CharField(_("scheme"), max_length=16, choices=Scheme.choices)
    value = models.CharField(_("key"), max_length=2000)
    work = models.ForeignKey(
        Work, on_delete=models.PROTECT, related_name="identifier_conflicts", verbose_name=_("work that lost the key")
    )
    kept_by = models.ForeignKey(
        Work, on_delete=models.PROTECT, related_name="+", verbose_name=_("work that holds the key")
    )
    spelling = models.CharField(_("its spelling"), max_length=2000, help_text=_("The identifier as the work had it."))
    registered_at = models.DateTimeField(_("registered at"))
    status = models.CharField(_("status"), max_length=16, choices=ConflictStatus.choices, default=ConflictStatus.OPEN)
    resolution = models.CharField(_("resolution"), max_length=16, choices=ConflictResolution.choices, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("identifier conflict")
        verbose_name_plural = _("identifier conflicts")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ConflictStatus.values), name="conflict_status_valid"),
            models.CheckConstraint(
                condition=Q(status="open", resolution="") | (Q(status="resolved") & ~Q(resolution="")),
                name="conflict_resolution_with_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value} ({self.work_id} / {self.kept_by_id}, {self.status})"


class ClaimStatus(models.TextChoices):
    # Filed and not yet looked at: it changes nothing, neither the work's status nor who is paid.
    PENDING = "pending", _("Pending")
    # Staff accepted it for review: if it conflicts with the verified shares, the work is disputed.
    IN_REVIEW = "in_review", _("Under review")
    VERIFIED = "verified", _("Verified")
    REJECTED = "rejected", _("Rejected")


class OwnershipClaim(models.Model):
    """A holder's claim to a share of a work, in basis points (10000 = 100%).

    The database refuses any state in which a work's verified shares sum above 10000
    (trigger ``registry_claim_share_cap``, see migration 0002).
    """

    work = models.ForeignKey(Work, on_delete=models.CASCADE, related_name="claims", verbose_name=_("work"))
    holder = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="claims", verbose_name=_("holder"))
    share_bp = models.PositiveIntegerField(_("share (basis points)"), default=MAX_SHARE_BP)
    valid_from = models.DateField(_("valid from"), default=timezone.localdate)
    status = models.CharField(_("status"), max_length=16, choices=ClaimStatus.choices, default=ClaimStatus.PENDING)
    decision_reason = models.TextField(_("reason"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    verified_by_domain = models.ForeignKey(
        "VerifiedDomain",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("verified by domain"),
    )
    # The society or agent that filed it for the holder under a mandate; empty when the holder filed it.
    filed_by_agent = models.ForeignKey(
        Party, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("filed by agent")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("ownership claim")
        verbose_name_plural = _("ownership claims")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(share_bp__gte=1) & Q(share_bp__lte=MAX_SHARE_BP), name="claim_share_bp_range"
            ),
            models.CheckConstraint(condition=Q(status__in=ClaimStatus.values), name="claim_status_valid"),
            # A holder has at most one live claim per work; a rejected one may be filed again.
            models.UniqueConstraint(
                fields=["work", "holder"], condition=~Q(status="rejected"), name="claim_one_live_per_holder"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.holder} → {self.work} ({self.share_bp / 100:g}%, {self.status})"


class DomainMethod(models.TextChoices):
    DNS = "dns", _("DNS TXT record")
    FILE = "file", _("File under /.well-known/")


class DomainStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    FAILED = "failed", _("Failed")


class VerifiedDomain(models.Model):
    """A web origin a holder proves to control, by DNS TXT record or a token file."""

    holder = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="domains", verbose_name=_("holder"))
    origin = models.CharField(_("origin"), max_length=300, help_text=_("e.g. https://news.example.kr"))
    host = models.CharField(_("host"), max_length=255, db_index=True)
    method = models.CharField(_("method"), max_length=8, choices=DomainMethod.choices)
    token = models.CharField(_("token"), max_length=64, unique=True)
    status = models.CharField(_("status"), max_length=16, choices=DomainStatus.choices, default=DomainStatus.PENDING)
    last_checked_at = models.DateTimeField(_("last checked at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("verified domain")
        verbose_name_plural = _("verified domains")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["holder", "origin"], name="domain_unique_per_holder"),
            # Two holders may both try, but only one can control an origin at a time.
            models.UniqueConstraint(fields=["origin"], condition=Q(status="verified"), name="domain_one_verified"),
        ]

    def __str__(self) -> str:
        return f"{self.origin} ({self.status})"


class AuditEvent(models.Model):
    """One state change. Append-only: PostgreSQL refuses UPDATE and DELETE (migration 0002)."""

    code = models.CharField(_("code"), max_length=100, db_index=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("user"),
    )
    actor_party = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("party"),
    )
    actor_api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("API key"),
    )
    # The member a society or agent (``actor_party``) acted for under a mandate: "by agent X for member Y".
    on_behalf_of = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("on behalf of"),
    )
    object_type = models.CharField(_("object type"), max_length=50, blank=True)
    object_id = models.CharField(_("object id"), max_length=50, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.code}"

    @property
    def acted_as(self) -> str:
        """Who acted, as the history shows it: "agent X for member Y" when a mandate was used."""
        if self.on_behalf_of is not None and self.actor_party is not None:
            return str(
                _("%(agent)s for %(member)s") % {"agent": self.actor_party.name, "member": self.on_behalf_of.name}
            )
        return self.actor_party.name if self.actor_party is not None else ""


class ImportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "XLSX"
    JSONL = "jsonl", "JSON Lines"
    CWR = "cwr", "CWR"
    DDEX = "ddex", "DDEX ERN"
    ONIX = "onix", "ONIX 3.0"


class ImportStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSING = "processing", _("Processing")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")


def _import_upload_to(instance: WorkImport, filename: str) -> str:
    return f"imports/{timezone.now():%Y/%m}/{instance.holder_id}-{timezone.now():%H%M%S%f}.{instance.format}"


class WorkImport(JobFields):
    """A bulk registration file, processed by a worker in chunks; ``rows_done`` is the resume cursor.

    Its lifecycle (queueing, heartbeat, failure, retry) is ``core.jobs``'s.
    """

    holder = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="imports", verbose_name=_("holder"))
    # The society or agent that uploaded it for ``holder`` under a mandate: the rows are registered as its acts.
    agent = models.ForeignKey(
        Party, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by agent")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("created by"),
    )
    file = models.FileField(_("file"), upload_to=_import_upload_to)
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    format = models.CharField(_("format"), max_length=8, choices=ImportFormat.choices)
    status = models.CharField(_("status"), max_length=16, choices=ImportStatus.choices, default=ImportStatus.RECEIVED)
    rows_total = models.PositiveIntegerField(_("rows in file"), null=True, blank=True)
    rows_done = models.PositiveIntegerField(_("rows processed"), default=0)
    rows_registered = models.PositiveIntegerField(_("rows registered"), default=0)
    rows_failed = models.PositiveIntegerField(_("rows with errors"), default=0)
    # The uploader's language: the worker writes row errors and the failure reason in it.
    language = models.CharField(_("language"), max_length=8, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("work import")
        verbose_name_plural = _("work imports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.original_name or self.file.name} ({self.status})"


WORK_IMPORT_JOB = JobKind(
    model=WorkImport,
    task="registry.tasks.work_import_run",
    waiting=ImportStatus.RECEIVED,
    running=ImportStatus.PROCESSING,
    done=ImportStatus.PROCESSED,
    failed=ImportStatus.FAILED,
    audit_prefix="registry.import",
    cursor="rows_done",
)
job_kind_register(WORK_IMPORT_JOB)


class WorkImportRowError(models.Model):
    work_import = models.ForeignKey(
        WorkImport, on_delete=models.CASCADE, related_name="row_errors", verbose_name=_("import")
    )
    row = models.PositiveIntegerField(_("row"))
    field = models.CharField(_("field"), max_length=64, blank=True)
    code = models.CharField(_("code"), max_length=64)
    message = models.TextField(_("message"))
    existing_work = models.ForeignKey(
        Work, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("existing work")
    )

    class Meta:
        verbose_name = _("import row error")
        verbose_name_plural = _("import row errors")
        ordering = ["row", "id"]
        constraints = [
            # One error per row and field: a retried chunk cannot report a row twice.
            models.UniqueConstraint(fields=["work_import", "row", "field"], name="import_row_error_unique"),
        ]

    def __str__(self) -> str:
        return f"row {self.row}: {self.code}"


class WorkFileStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    PROCESSING = "processing", _("Processing")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class FileIdentifierOutcome(models.TextChoices):
    # The work holds the identifier (added by this file, or it had it already).
    ADDED = "added", _("Added to the work")
    # Another work holds it: the file is (a copy of) that work's file.
    TAKEN = "taken", _("Held by another work")


def _work_file_upload_to(instance: WorkFile, filename: str) -> str:
    return f"work-files/{timezone.now():%Y/%m}/{instance.work_id}-{timezone.now():%H%M%S%f}"


class WorkFile(JobFields):
    """A work's file, fingerprinted by a worker: its SHA-256 and ISCC-CODE become identifiers of the work.

    ``bytes_done`` of ``size`` is the progress. The stored file is deleted once the job is done, and when it
    fails because of the file itself (unreadable): only the fingerprints are kept. Its lifecycle (queueing,
    heartbeat, failure, retry) is ``core.jobs``'s.
    """

    work = models.ForeignKey(Work, on_delete=models.CASCADE, related_name="files", verbose_name=_("work"))
    holder = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="+", verbose_name=_("holder"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("created by"),
    )
    file = models.FileField(_("file"), upload_to=_work_file_upload_to, max_length=300, blank=True)
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    # The work's kind when the file was uploaded: it decides which Content-Code is computed.
    kind = models.CharField(_("kind"), max_length=16, choices=WorkKind.choices)
    status = models.CharField(_("status"), max_length=16, choices=WorkFileStatus.choices, default=WorkFileStatus.QUEUED)
    size = models.PositiveBigIntegerField(_("size in bytes"))
    bytes_done = models.PositiveBigIntegerField(_("bytes processed"), default=0)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    iscc = models.CharField(_("ISCC-CODE"), max_length=200, blank=True)
    # Why an audio file's ISCC-CODE has no Audio-Code (fpcalc missing or too slow); empty when it has one.
    audio_code_missing = models.CharField(_("Audio-Code not computed"), max_length=32, blank=True)
    # Per fingerprint: {"scheme", "value", "outcome" (FileIdentifierOutcome), "work_id" (the work holding it)}.
    identifiers = models.JSONField(_("identifier outcomes"), default=list, blank=True)
    # What the file itself declares about AI training (registry.embedded_rights): {"read", "said", "c2pa", "xmp",
    # "errors"}; empty until the job is done.
    embedded_rights = models.JSONField(_("embedded rights metadata"), default=dict, blank=True)
    # The uploader's language: the worker writes the failure reason in it.
    language = models.CharField(_("language"), max_length=8, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("work file")
        verbose_name_plural = _("work files")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=WorkFileStatus.values), name="work_file_status_valid"),
            models.CheckConstraint(condition=Q(bytes_done__lte=models.F("size")), name="work_file_progress_le_size"),
        ]

    def __str__(self) -> str:
        return f"{self.original_name or self.pk} ({self.status})"

    @property
    def audio_code_missing_message(self) -> str:
        return str(AUDIO_CODE_MISSING_REASONS.get(self.audio_code_missing, ""))


WORK_FILE_JOB = JobKind(
    model=WorkFile,
    task="registry.tasks.work_file_fingerprint",
    waiting=WorkFileStatus.QUEUED,
    running=WorkFileStatus.PROCESSING,
    done=WorkFileStatus.DONE,
    failed=WorkFileStatus.FAILED,
    audit_prefix="registry.work_file",
)
job_kind_register(WORK_FILE_JOB)


class SimilarityThreshold(models.Model):
    """How far (in bits of the 64-bit Content-Code) a near copy may lie from a registered work, per modality,
    from an instant on. The latest row in force applies; before any, the defaults in registry.similarity."""

    modality = models.CharField(_("modality"), max_length=8, choices=ContentModality.choices)
    max_distance = models.PositiveSmallIntegerField(
        _("maximum Hamming distance"), help_text=_("Bits of the 64-bit Content-Code, 0 to 16.")
    )
    effective_from = models.DateTimeField(_("effective from"))
    reason = models.TextField(_("reason"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("set by"),
    )

    class Meta:
        verbose_name = _("similarity threshold")
        verbose_name_plural = _("similarity thresholds")
        ordering = ["modality", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["modality", "effective_from"], name="similarity_threshold_one_per_instant"),
            models.CheckConstraint(condition=Q(modality__in=ContentModality.values), name="similarity_modality_valid"),
            # Above 16 bits the exact search costs grow steeply (and unrelated codes start to meet): see the README.
            models.CheckConstraint(condition=Q(max_distance__lte=16), name="similarity_threshold_range"),
        ]

    def __str__(self) -> str:
        return f"{self.modality}: ≤{self.max_distance} bits from {self.effective_from:%Y-%m-%d}"


class EvidenceKind(models.TextChoices):
    # A Korea Copyright Commission registration certificate: its number (C-YYYY-NNNNNN) is checked for format.
    REGISTRATION = "registration", _("Copyright registration certificate")
    CONTRACT = "contract", _("Contract")
    PUBLICATION = "publication", _("Publication record")
    # An ISNI (16 characters) or an IPI name number (9 to 11 digits) of the claimant.
    ISNI_IPI = "isni_ipi", _("ISNI or IPI")
    TEXT = "text", _("Free text")


def _evidence_upload_to(instance: ClaimEvidence, filename: str) -> str:
    # Never the uploader's file name (it is kept in original_name): the path says nothing and guesses nothing.
    return f"claims/{instance.claim_id}/{timezone.now():%Y%m%d%H%M%S%f}"


def _evidence_storage() -> Storage:
    return storages[settings.CLAIM_EVIDENCE_STORAGE]


class ClaimEvidence(models.Model):
    """What a claimant shows for a claim: a file (stored through the ``CLAIM_EVIDENCE_STORAGE`` storage, never served
    but through the claim's permission check), a registration number, an ISNI or IPI, or free text. Only the
    claimant's party and staff read it. Append-only: evidence is added, never edited."""

    claim = models.ForeignKey(
        OwnershipClaim, on_delete=models.PROTECT, related_name="evidence", verbose_name=_("claim")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=EvidenceKind.choices)
    file = models.FileField(
        _("file"), upload_to=_evidence_upload_to, storage=_evidence_storage, max_length=300, blank=True
    )
    original_name = models.CharField(_("original file name"), max_length=255, blank=True)
    content_type = models.CharField(_("content type"), max_length=100, blank=True)
    size = models.PositiveBigIntegerField(_("size in bytes"), default=0)
    # The Korea Copyright Commission registration number, C-YYYY-NNNNNN (kind "registration").
    registration_number = models.CharField(_("registration number"), max_length=16, blank=True)
    # An ISNI or IPI name number (kind "isni_ipi"), normalized.
    party_identifier = models.CharField(_("ISNI or IPI"), max_length=16, blank=True)
    text = models.TextField(_("text"), blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("added by"),
    )
    added_by_staff = models.BooleanField(_("added by staff"), default=False)
    created_at = models.DateTimeField(_("added at"), default=timezone.now)

    class Meta:
        verbose_name = _("claim evidence")
        verbose_name_plural = _("claim evidence")
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=EvidenceKind.values), name="evidence_kind_valid"),
            # Each piece shows something: a file, a number or a text.
            models.CheckConstraint(
                condition=~Q(file="") | ~Q(registration_number="") | ~Q(party_identifier="") | ~Q(text=""),
                name="evidence_not_empty",
            ),
            models.CheckConstraint(
                condition=Q(registration_number="") | Q(kind="registration"), name="evidence_number_is_registration"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for claim {self.claim_id}"


class ClaimDefaultShare(models.Model):
    """The share a claimant gets when it names none and the work already has other claimants, per work kind, set by
    staff (for example half each for a text's author and publisher). Shown to the claimant before it confirms."""

    kind = models.CharField(_("work kind"), max_length=16, choices=WorkKind.choices, unique=True)
    share_bp = models.PositiveIntegerField(_("default share (basis points)"))
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("set by"),
    )

    class Meta:
        verbose_name = _("default claim share")
        verbose_name_plural = _("default claim shares")
        ordering = ["kind"]
        constraints = [
            models.CheckConstraint(
                condition=Q(share_bp__gte=1) & Q(share_bp__lte=MAX_SHARE_BP), name="default_share_bp_range"
            ),
            models.CheckConstraint(condition=Q(kind__in=WorkKind.values), name="default_share_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.share_bp / 100:g}%"


# --- Mandates: a society or agent acting for a member party -----------------------------------------


class MandateScope(models.TextChoices):
    CATALOGUE = "catalogue", _("The member's whole catalogue")
    WORKS = "works", _("Listed works")
    KINDS = "kinds", _("Works of given kinds")


class MandatePower(models.TextChoices):
    REGISTER_WORKS = "register_works", _("Register works")
    CLAIM = "claim", _("Claim works")
    REFUSE = "refuse", _("File and withdraw refusals")
    RECEIVE_STATEMENTS = "receive_statements", _("Receive statements")
    RECEIVE_PAYOUTS = "receive_payouts", _("Receive payouts")


class StatementsTo(models.TextChoices):
    MEMBER = "member", _("The member")
    AGENT = "agent", _("The agent")
    BOTH = "both", _("Both")


class MandateStatus(models.TextChoices):
    INVITED = "invited", _("Invited")
    ACTIVE = "active", _("Active")
    ENDED = "ended", _("Ended")


# The powers a mandate gives, as its boolean columns: each is a column so that the database can check it.
MANDATE_POWER_FIELDS = {
    MandatePower.REGISTER_WORKS: "can_register_works",
    MandatePower.CLAIM: "can_claim",
    MandatePower.REFUSE: "can_refuse",
    MandatePower.RECEIVE_STATEMENTS: "receives_statements",
    MandatePower.RECEIVE_PAYOUTS: "receives_payouts",
}


def _mandate_upload_to(instance: Mandate, filename: str) -> str:
    return f"mandates/{timezone.now():%Y/%m}/{instance.agent_id}-{timezone.now():%H%M%S%f}"


class Mandate(models.Model):
    """A member party's authority for a society or agent to act for it: a scope, powers, a start and an end.

    Its terms never change: a different mandate is a new one, and the old one is ended. The invitation is
    accepted by the member (or verified by staff from an uploaded mandate document) once, and ended once, by
    either side. PostgreSQL and SQLite refuse any other UPDATE and every DELETE (migration 0014).
    """

    agent = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="mandates_held", verbose_name=_("agent"))
    # Empty while an invitation by e-mail waits for the member to accept it (it names the member then).
    member = models.ForeignKey(
        Party,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="mandates_given",
        verbose_name=_("member"),
    )
    invited_email = models.EmailField(_("invited e-mail"), blank=True)
    scope = models.CharField(_("scope"), max_length=16, choices=MandateScope.choices)
    kinds = models.JSONField(_("work kinds"), default=list, blank=True)
    can_register_works = models.BooleanField(_("may register works"), default=False)
    can_claim = models.BooleanField(_("may claim works"), default=False)
    can_refuse = models.BooleanField(_("may file and withdraw refusals"), default=False)
    receives_statements = models.BooleanField(_("receives statements"), default=False)
    receives_payouts = models.BooleanField(_("receives payouts"), default=False)
    statements_to = models.CharField(
        _("statements go to"), max_length=8, choices=StatementsTo.choices, default=StatementsTo.MEMBER
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"), null=True, blank=True)
    # The member's signed mandate, uploaded by the society: staff verifying it starts the mandate, as the member's
    # acceptance in the portal would.
    document = models.FileField(_("signed mandate document"), upload_to=_mandate_upload_to, max_length=300, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=MandateStatus.choices, default=MandateStatus.INVITED)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("accepted by"),
    )
    # "member" when the member accepted the invitation, "staff" when staff verified a mandate document.
    accepted_via = models.CharField(_("accepted via"), max_length=8, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    ended_by_party = models.ForeignKey(
        Party, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("ended by")
    )
    end_reason = models.TextField(_("reason for ending"), blank=True)

    class Meta:
        verbose_name = _("mandate")
        verbose_name_plural = _("mandates")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=MandateScope.values), name="mandate_scope_valid"),
            models.CheckConstraint(condition=Q(status__in=MandateStatus.values), name="mandate_status_valid"),
            models.CheckConstraint(
                condition=Q(statements_to__in=StatementsTo.values), name="mandate_statements_to_valid"
            ),
            # The status is what the two events say: accepted once, ended once.
            models.CheckConstraint(
                condition=Q(status="invited", accepted_at__isnull=True, ended_at__isnull=True)
                | Q(status="active", accepted_at__isnull=False, ended_at__isnull=True, member__isnull=False)
                | Q(status="ended", ended_at__isnull=False),
                name="mandate_status_events",
            ),
            # Statements reach the agent only with that power.
            models.CheckConstraint(
                condition=Q(statements_to="member") | Q(receives_statements=True), name="mandate_statements_power"
            ),
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True) | Q(ends_at__gt=models.F("starts_at")),
                name="mandate_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(member__isnull=False) | ~Q(invited_email=""), name="mandate_names_member"
            ),
            models.CheckConstraint(condition=~Q(member=models.F("agent")), name="mandate_not_self"),
        ]
        indexes = [models.Index(fields=["member", "agent", "status"], name="mandate_member_agent_idx")]

    def __str__(self) -> str:
        member = self.member.name if self.member is not None else self.invited_email
        return f"{self.agent} → {member} ({self.status})"

    @property
    def powers(self) -> list[str]:
        return [power.value for power, field in MANDATE_POWER_FIELDS.items() if getattr(self, field)]

    def in_force(self, at: object = None) -> bool:
        when = at or timezone.now()
        return (
            self.status == MandateStatus.ACTIVE
            and self.starts_at <= when  # type: ignore[operator]
            and (self.ends_at is None or when < self.ends_at)  # type: ignore[operator]
        )


class MandateWork(models.Model):
    """A work a ``works``-scoped mandate lists; part of the mandate's terms, so never changed either."""

    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, related_name="listed", verbose_name=_("mandate"))
    work = models.ForeignKey(Work, on_delete=models.PROTECT, related_name="+", verbose_name=_("work"))

    class Meta:
        verbose_name = _("mandated work")
        verbose_name_plural = _("mandated works")
        constraints = [models.UniqueConstraint(fields=["mandate", "work"], name="mandate_work_unique")]

    def __str__(self) -> str:
        return f"mandate {self.mandate_id}: work {self.work_id}"


class MandateConflictKind(models.TextChoices):
    # A second agent claims a member's work an agent already claimed for it.
    TWO_AGENTS = "two_agents", _("Two agents acting on one member's work")
    # The member and its agent say opposite things (one withdraws the other's refusal).
    OPPOSITE_FILINGS = "opposite_filings", _("Member and agent filing opposite things")


class MandateConflict(models.Model):
    """A conflict between a member and its agents, or between two agents; it disputes its work until staff
    resolve it (``mandate_conflict_resolve``)."""

    kind = models.CharField(_("kind"), max_length=20, choices=MandateConflictKind.choices)
    member = models.ForeignKey(Party, on_delete=models.PROTECT, related_name="+", verbose_name=_("member"))
    work = models.ForeignKey(
        Work, null=True, blank=True, on_delete=models.PROTECT, related_name="mandate_conflicts", verbose_name=_("work")
    )
    parties = models.JSONField(_("parties involved"), default=list)
    data = models.JSONField(_("details"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=ConflictStatus.choices, default=ConflictStatus.OPEN)
    reason = models.TextField(_("reason"), blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("mandate conflict")
        verbose_name_plural = _("mandate conflicts")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=MandateConflictKind.values), name="mandate_conflict_kind_valid"
            ),
            models.CheckConstraint(condition=Q(status__in=ConflictStatus.values), name="mandate_conflict_status"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.member}, work {self.work_id}, {self.status})"
