"""The transparency log: every event that changes a status, as a leaf of an RFC 9162 Merkle tree.

A status-changing event's transaction writes its leaf to ``LogQueuedLeaf``: an insert that waits on nothing.
The sequencer (``log_sequence``, run before every checkpoint, so before any lookup names one) moves queued leaves
into ``LogEntry`` under the checkpoint lock, numbering them densely in the order they were queued and raising the
one ``LogHead`` row's size; a reader never sees a gap. ``LogTile`` keeps each full C2SP tile of hashes once the
checkpoint that completes it is issued, and ``LogCheckpoint`` each signed checkpoint. In PostgreSQL leaves, tiles
and checkpoints are append-only and the head only grows (migration 0009), and a queued leaf leaves the queue only
once the log holds it (migration 0011).
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


class LogQueuedLeaf(models.Model):
    """A leaf written in its event's transaction, waiting for the sequencer to give it its index.

    Numbering leaves inside the events' transactions made every status change wait on the head row until the one
    before it committed; queued, they are numbered after commit, as Trillian's sequencer numbers its queue. A leaf
    queued by a transaction that began after another's commit is always queued after it (its id is taken later),
    so the log's order keeps every "this happened before that" a reader could have seen.
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(_("kind"), max_length=40)
    # No index of its own: the unique constraint's index starts with it, and each index costs every event.
    event = models.ForeignKey(
        AuditEvent,
        on_delete=models.PROTECT,
        db_constraint=False,
        db_index=False,
        related_name="+",
        verbose_name=_("event"),
    )
    data = models.BinaryField(_("canonical JSON"))
    due_at = models.DateTimeField(_("takes effect at"), null=True, blank=True)
    queued_at = models.DateTimeField(_("queued at"), default=timezone.now)

    class Meta:
        verbose_name = _("queued log leaf")
        verbose_name_plural = _("queued log leaves")
        constraints = [models.UniqueConstraint(fields=["event", "kind"], name="logqueuedleaf_one_per_event_kind")]

    def __str__(self) -> str:
        return f"queued {self.kind} of event {self.event_id}"


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
    """A C2SP tile: the first ``width`` hashes of level ``level`` from entry ``number * 256``.

    Full tiles (``width`` 256) are stored once the checkpoint that completes them is issued, with their ``root``;
    each checkpoint also stores the partial tile at the right edge of every level (no root), so proofs at its size
    read whole tiles, never hundreds of rows. Hashes of complete subtrees never change: a wider tile of a later
    checkpoint holds a narrower one's hashes as its prefix.
    """

    level = models.PositiveSmallIntegerField(_("level"))
    number = models.BigIntegerField(_("number"))
    width = models.PositiveSmallIntegerField(_("width"), default=256)
    hashes = models.BinaryField(_("hashes"))
    root = models.BinaryField(_("root"), max_length=32, null=True, blank=True)

    class Meta:
        verbose_name = _("log tile")
        verbose_name_plural = _("log tiles")
        constraints = [
            models.UniqueConstraint(fields=["level", "number", "width"], name="logtile_one_per_position"),
            models.CheckConstraint(condition=Q(width__gte=1, width__lte=256), name="logtile_width_valid"),
        ]

    def __str__(self) -> str:
        return f"tile {self.level}/{self.number}" + ("" if self.width == 256 else f".p/{self.width}")


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
