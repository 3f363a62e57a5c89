"""The transparency log: every event that changes a status, as a leaf of an RFC 9162 Merkle tree.

``LogEntry`` rows are the leaves, numbered densely in commit order: the writer takes the next index from the one
``LogHead`` row with ``UPDATE ... SET size = size + n``, whose row lock the transaction holds until it commits, so
a later index never commits before an earlier one and a reader never sees a gap. ``LogTile`` keeps each full C2SP
tile of hashes once the checkpoint that completes it is issued, and ``LogCheckpoint`` each signed checkpoint.
All four are append-only in PostgreSQL (migration 0009), except the head's counter.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from registry.models import AuditEvent


class LogHead(models.Model):
    """The log's size: one row (id 1), the counter leaf indexes are taken from."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    size = models.BigIntegerField(_("size"), default=0)

    class Meta:
        verbose_name = _("log head")
        verbose_name_plural = _("log heads")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="loghead_single_row")]

    def __str__(self) -> str:
        return f"log of {self.size} leaves"


class LogEntry(models.Model):
    """One leaf: the canonical JSON (RFC 8785) of an event, and its RFC 9162 leaf hash."""

    index = models.BigIntegerField(_("index"), primary_key=True)
    kind = models.CharField(_("kind"), max_length=40)
    # The audit event the leaf records; for a ``*.took_effect`` leaf, the event whose effect came due.
    event = models.ForeignKey(
        AuditEvent, on_delete=models.PROTECT, db_constraint=False, related_name="+", verbose_name=_("event")
    )
    data = models.BinaryField(_("canonical JSON"))
    leaf_hash = models.BinaryField(_("leaf hash"), max_length=32)
    # When a leaf's event takes effect later than it was recorded (a future-dated refusal or withdrawal), the
    # instant a ``*.took_effect`` leaf is due; beat appends it then.
    due_at = models.DateTimeField(_("takes effect at"), null=True, blank=True)
    appended_at = models.DateTimeField(_("appended at"), default=timezone.now)

    class Meta:
        verbose_name = _("log entry")
        verbose_name_plural = _("log entries")
        ordering = ["index"]
        constraints = [
            models.CheckConstraint(condition=Q(index__gte=0), name="logentry_index_not_negative"),
            # An event is logged once per kind: a retried task or a replayed signal cannot add it twice.
            models.UniqueConstraint(fields=["event", "kind"], name="logentry_one_per_event_kind"),
        ]
        indexes = [models.Index(fields=["due_at"], name="logentry_due_idx", condition=Q(due_at__isnull=False))]

    def __str__(self) -> str:
        return f"#{self.index} {self.kind}"


class LogTile(models.Model):
    """A full C2SP tile: the 256 hashes of level ``level`` starting at entry ``number * 256``, and their root."""

    level = models.PositiveSmallIntegerField(_("level"))
    number = models.BigIntegerField(_("number"))
    hashes = models.BinaryField(_("hashes"))
    root = models.BinaryField(_("root"), max_length=32)

    class Meta:
        verbose_name = _("log tile")
        verbose_name_plural = _("log tiles")
        constraints = [models.UniqueConstraint(fields=["level", "number"], name="logtile_one_per_position")]

    def __str__(self) -> str:
        return f"tile {self.level}/{self.number}"


class LogCheckpoint(models.Model):
    """A signed C2SP checkpoint of the tree's first ``size`` leaves."""

    size = models.BigIntegerField(_("tree size"), unique=True)
    root_hash = models.BinaryField(_("root hash"), max_length=32)
    note = models.TextField(_("signed note"))
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)

    class Meta:
        verbose_name = _("log checkpoint")
        verbose_name_plural = _("log checkpoints")
        ordering = ["-size"]

    def __str__(self) -> str:
        return f"checkpoint {self.size}"
