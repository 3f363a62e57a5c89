"""Documents: exports (a requested file built in the background) and the formats they come in."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.jobs import JobFields, JobKind, job_kind_register


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
