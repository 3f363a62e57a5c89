"""The maintained status projection and its change feed.

``StatusSegment`` holds, per subject and purpose, what a lookup at an instant answers, as validity intervals:
a future-dated refusal or withdrawal is a segment that starts at its instant, so the projection is exact then
without any scheduler. Subjects are identifier keys (``isbn:9788937460883``), URL prefixes refused on verified
domains, and work kinds (their regime). Segments are rewritten, in the transaction of the event that changes
them, by ``optout.status.services.status_refresh``; ``manage.py status_check`` recomputes them from the events.

``StatusChange`` is the change feed: one row per change of a subject's status, in the order the changes were
committed (writers hold one advisory lock, so ids are assigned in commit order and a reader never sees a later
change without the earlier ones). Its id is the feed's cursor.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from optout.models.refusals import Purpose, Refusal
from registry.models import AuditEvent, Work


class SubjectType(models.TextChoices):
    KEY = "key", _("Identifier key")
    URL_PREFIX = "url_prefix", _("URL prefix")
    KIND = "kind", _("Work kind")


class SubjectStatus(models.TextChoices):
    """A subject's status for one purpose: the lookup's statuses, without ``invalid``."""

    REFUSED = "refused", _("Refused")
    LICENSE_REQUIRED = "license_required", _("Licence required")
    PERMITTED = "permitted", _("Permitted")
    UNREGISTERED = "unregistered", _("Unregistered")


# The statuses a snapshot lists: everything a lab may not train on without asking.
NOT_PERMITTED = (SubjectStatus.REFUSED.value, SubjectStatus.LICENSE_REQUIRED.value)


class StatusSegment(models.Model):
    """A subject's answer for a purpose over ``[valid_from, valid_to)`` (``valid_to`` NULL: open)."""

    subject_type = models.CharField(_("subject type"), max_length=16, choices=SubjectType.choices)
    # Key text ``scheme:value``, a normalized URL prefix, or a work kind.
    subject = models.CharField(_("subject"), max_length=2100)
    # A URL prefix's host, so the prefixes of the hosts asked about are read alone.
    host = models.CharField(_("host"), max_length=255, blank=True)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    valid_from = models.DateTimeField(_("valid from"))
    valid_to = models.DateTimeField(_("valid to"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=SubjectStatus.choices)
    # The rest of a key's lookup answer, so a lookup reads one row per key.
    compensation = models.CharField(_("compensation"), max_length=16, blank=True)
    regime = models.CharField(_("regime"), max_length=20, blank=True)
    pending_refusal = models.BooleanField(_("refusal awaiting verification"), default=False)
    work = models.ForeignKey(
        Work, null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("work")
    )
    refusal = models.ForeignKey(
        Refusal, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("refusal")
    )
    # The work's title and kind as the lookup shows them, copied so that a batch lookup reads no work row: for a
    # thousand random keys those reads were a quarter of the database's time. Kept equal to the work by the
    # projection's writes (status_refresh) and checked by status_check.
    work_title = models.CharField(_("work title"), max_length=500, blank=True, default="", db_default="")
    work_kind = models.CharField(_("work kind"), max_length=16, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("status segment")
        verbose_name_plural = _("status segments")
        constraints = [
            models.CheckConstraint(condition=Q(subject_type__in=SubjectType.values), name="status_subject_type_valid"),
            models.CheckConstraint(condition=Q(purpose__in=Purpose.values), name="status_purpose_valid"),
            models.CheckConstraint(condition=Q(status__in=SubjectStatus.values), name="status_status_valid"),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=models.F("valid_from")),
                name="status_interval_not_empty",
            ),
            models.UniqueConstraint(
                fields=["subject_type", "subject", "purpose", "valid_from"], name="status_one_segment_per_start"
            ),
        ]
        indexes = [
            # A lookup: the keys asked about, then the segment in force (few per key).
            models.Index(fields=["subject", "purpose", "subject_type"], name="status_subject_idx"),
            models.Index(fields=["host"], name="status_host_idx", condition=~Q(host="")),
            # A snapshot: what is not permitted now, by status.
            models.Index(
                fields=["status", "purpose"], name="status_not_permitted_idx", condition=~Q(status="permitted")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} {self.purpose}: {self.status} from {self.valid_from:%Y-%m-%d %H:%M}"


class StatusChange(models.Model):
    """One change of a subject's status for a purpose; the id is the change feed's cursor. Append-only."""

    id = models.BigAutoField(primary_key=True)
    subject_type = models.CharField(_("subject type"), max_length=16, choices=SubjectType.choices)
    subject = models.CharField(_("subject"), max_length=2100)
    host = models.CharField(_("host"), max_length=255, blank=True)
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    old_status = models.CharField(_("old status"), max_length=20, choices=SubjectStatus.choices)
    new_status = models.CharField(_("new status"), max_length=20, choices=SubjectStatus.choices)
    # When the new status starts: the commit's instant, or later for a future-dated refusal or withdrawal.
    effective_at = models.DateTimeField(_("effective at"))
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    # The audit event of the change's cause (refusal filed, claim verified, regime set, ...).
    cause = models.ForeignKey(
        AuditEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("cause")
    )
    cause_code = models.CharField(_("cause code"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status changes")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(subject_type__in=SubjectType.values), name="change_subject_type_valid"),
            models.CheckConstraint(condition=~Q(old_status=models.F("new_status")), name="change_changes_status"),
        ]
        # Refreshing a subject reads its pending and latest changes, so the feed it writes composes with them.
        indexes = [models.Index(fields=["subject", "purpose"], name="change_subject_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject} {self.purpose}: {self.old_status} -> {self.new_status}"
