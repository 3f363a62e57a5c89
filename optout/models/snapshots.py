"""Snapshots: the registry's answer at an instant for everything that is not permitted, as files plus a signed
manifest, built in the background (a job of ``core.jobs``) and kept for a while (``SNAPSHOT_KEEP``).

The files live in storage under ``snapshots/<snapshot_id>/``; the row holds the manifest (signed, as served) and
what the job lifecycle records. A snapshot is ``queued``, then ``building`` while a worker holds it, then ``ready``
or ``failed`` with a reason: a worker that dies leaves a stale heartbeat, and the jobs sweep queues it again or,
after ``JOB_MAX_ATTEMPTS`` starts, fails it, so no snapshot stays ``building``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.jobs import JobFields, JobKind, job_kind_register


def snapshot_id_new() -> str:
    return uuid.uuid4().hex


class SnapshotStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    BUILDING = "building", _("Building")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class SnapshotTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    STAFF = "staff", _("Staff request")
    OPERATOR = "operator", _("Operator command")


class Snapshot(JobFields):
    """One snapshot: its public id, the instant and change-feed cursor it equals, and its signed manifest."""

    snapshot_id = models.CharField(_("snapshot id"), max_length=40, unique=True, default=snapshot_id_new)
    status = models.CharField(_("status"), max_length=16, choices=SnapshotStatus.choices, default=SnapshotStatus.QUEUED)
    trigger = models.CharField(_("trigger"), max_length=16, choices=SnapshotTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested at"), default=timezone.now)
    # Set when the consistent read is taken: the instant T, the last change (cursor) and refusal event it includes.
    as_of = models.DateTimeField(_("as of"), null=True, blank=True)
    cursor = models.BigIntegerField(_("change-feed cursor"), null=True, blank=True)
    last_refusal_event_id = models.BigIntegerField(_("last refusal event"), null=True, blank=True)
    # The manifest as signed and served (``receipt`` included), and the SHA-256 of its bytes in storage.
    manifest = models.JSONField(_("manifest"), null=True, blank=True)
    manifest_sha256 = models.CharField(_("manifest SHA-256"), max_length=64, blank=True)
    total_bytes = models.PositiveBigIntegerField(_("bytes"), default=0)

    class Meta:
        verbose_name = _("snapshot")
        verbose_name_plural = _("snapshots")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "as_of"], name="snapshot_status_as_of_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=SnapshotStatus.values), name="snapshot_status_valid"),
            models.CheckConstraint(condition=Q(trigger__in=SnapshotTrigger.values), name="snapshot_trigger_valid"),
            models.CheckConstraint(
                condition=~Q(status=SnapshotStatus.READY)
                | Q(as_of__isnull=False, cursor__isnull=False, manifest__isnull=False),
                name="snapshot_ready_has_manifest",
            ),
        ]

    def __str__(self) -> str:
        return f"snapshot {self.snapshot_id} ({self.status})"

    @property
    def storage_prefix(self) -> str:
        return f"snapshots/{self.snapshot_id}/"


SNAPSHOT_JOB = JobKind(
    model=Snapshot,
    task="optout.tasks.snapshot_build",
    waiting=SnapshotStatus.QUEUED,
    running=SnapshotStatus.BUILDING,
    done=SnapshotStatus.READY,
    failed=SnapshotStatus.FAILED,
    audit_prefix="optout.snapshot",
)
job_kind_register(SNAPSHOT_JOB)
