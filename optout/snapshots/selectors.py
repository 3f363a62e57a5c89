"""Snapshots' reads: what the status projection says at an instant (streamed, for the builder), the change feed's
JSON form, and which snapshots a caller may read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _

from core.actors import Actor
from core.errors import NotFound, NotPermitted
from optout.feed.selectors import change_as_json
from optout.models import NOT_PERMITTED, Snapshot, SnapshotStatus, StatusChange, StatusSegment, SubjectType
from registry.models import ApiScope

# Rows fetched per round trip of the server-side cursor: large enough that the round trips cost nothing next to
# the rows, small enough that a worker holds a few megabytes of them.
CHUNK_ROWS = 20_000


def _in_force(at: datetime) -> Q:
    return Q(valid_from__lte=at) & (Q(valid_to__isnull=True) | Q(valid_to__gt=at))


def _not_permitted(subject_type: str, at: datetime) -> QuerySet[StatusSegment]:
    return StatusSegment.objects.filter(_in_force(at), subject_type=subject_type, status__in=NOT_PERMITTED)


def snapshot_key_rows(*, at: datetime) -> Iterator[tuple[str, str, str, int | None, int | None, str]]:
    """``(key, purpose, status, work_id, refusal_id, since)`` of every key not permitted at ``at``, streamed through a
    server-side cursor on PostgreSQL, in no particular order; ``since`` is the segment's start in RFC 3339 (as
    ``core.dates.rfc3339`` writes it). Call it inside the consistent read."""
    rows = (
        _not_permitted(SubjectType.KEY, at)
        # As text: psycopg takes about 3.5 us to make each timestamptz a datetime, most of a million-key build.
        .annotate(since=Cast("valid_from", output_field=CharField()))
        .values_list("subject", "purpose", "status", "work_id", "refusal_id", "since")
        .order_by()
        .iterator(chunk_size=CHUNK_ROWS)
    )
    for key, purpose, status, work_id, refusal_id, since in rows:
        yield key, purpose, status, work_id, refusal_id, _rfc3339_text(since)


def _rfc3339_text(text: str) -> str:
    """A UTC instant as the database writes it as text (PostgreSQL ``2026-12-05 09:00:00.5+00``, SQLite
    ``2026-12-05 09:00:00.500000``) in ``core.dates.rfc3339``'s form, ``2026-12-05T09:00:00.500000Z``."""
    text = text.removesuffix("+00").removesuffix("+00:00")
    whole, dot, fraction = text.partition(".")
    return f"{whole.replace(' ', 'T', 1)}{dot}{fraction.ljust(6, '0') if dot else ''}Z"


def snapshot_prefix_rows(*, at: datetime) -> Iterator[tuple[str, str, str, int | None]]:
    """``(purpose, host, prefix, refusal_id)`` of every URL prefix refused at ``at``, by purpose and prefix."""
    rows = _not_permitted(SubjectType.URL_PREFIX, at).values_list("purpose", "host", "subject", "refusal_id")
    return rows.order_by("purpose", "subject").iterator(chunk_size=CHUNK_ROWS)


def snapshot_kind_rows(*, at: datetime) -> Iterator[tuple[str, str]]:
    """``(purpose, kind)`` of every work kind whose regime is not permitted (``license_required``) at ``at``."""
    return (
        _not_permitted(SubjectType.KIND, at).values_list("purpose", "subject").order_by("purpose", "subject").iterator()
    )


def snapshot_scheduled_changes(*, at: datetime, cursor: int) -> Iterator[dict[str, Any]]:
    """The changes a snapshot at ``at`` and ``cursor`` carries as scheduled: recorded up to the cursor, taking
    effect after ``at``, in cursor order, each in the change feed's JSON form (``change_as_json``)."""
    # Their ids first, in one plain query: few changes are still to come, but finding them scans the feed, which a
    # server-side cursor (planned for the first rows) walks in id order, ten times slower than a parallel scan.
    ids = sorted(StatusChange.objects.filter(id__lte=cursor, effective_at__gt=at).values_list("id", flat=True))
    for start in range(0, len(ids), CHUNK_ROWS):
        chunk = StatusChange.objects.filter(id__in=ids[start : start + CHUNK_ROWS]).order_by("id")
        yield from (change_as_json(change) for change in chunk)


# --- Who reads snapshots ----------------------------------------------------------------------------------


def snapshot_read_check(*, actor: Actor) -> None:
    """Staff, signed-in people and API keys with the ``lookup`` scope read snapshots; other keys are refused."""
    if actor.is_staff or actor.has_scope(ApiScope.LOOKUP):
        return
    raise NotPermitted(_("This API key lacks the scope “lookup”."), code="missing_scope")


def snapshot_list_for_actor(*, actor: Actor) -> QuerySet[Snapshot]:
    """Newest first: ready snapshots by their instant; staff also see those queued, building or failed."""
    snapshot_read_check(actor=actor)
    snapshots = Snapshot.objects.all()
    if not actor.is_staff:
        snapshots = snapshots.filter(status=SnapshotStatus.READY)
    return snapshots.order_by("-as_of", "-created_at", "-id")


def snapshot_get_for_actor(*, actor: Actor, snapshot_id: str) -> Snapshot:
    snapshot = snapshot_list_for_actor(actor=actor).filter(snapshot_id=snapshot_id).first()
    if snapshot is None:
        raise NotFound(_("No such snapshot: it never existed or retention has removed it."), code="snapshot_not_found")
    return snapshot


def snapshot_latest(*, actor: Actor) -> Snapshot:
    """The ready snapshot with the latest instant."""
    snapshot_read_check(actor=actor)
    snapshot = Snapshot.objects.filter(status=SnapshotStatus.READY).order_by("-as_of", "-id").first()
    if snapshot is None:
        raise NotFound(_("No snapshot is ready yet."), code="snapshot_not_found")
    return snapshot


def snapshot_file_describe(*, snapshot: Snapshot, name: str) -> dict[str, Any]:
    """The manifest's entry for file ``name`` of a ready snapshot (``manifest.json`` itself included)."""
    manifest = snapshot.manifest or {}
    if snapshot.status == SnapshotStatus.READY:
        if name == "manifest.json":
            return {"name": name, "sha256": snapshot.manifest_sha256, "media_type": "application/json"}
        for entry in manifest.get("files", []):
            if entry["name"] == name:
                return dict(entry)
    raise NotFound(_("This snapshot has no file of that name."), code="snapshot_file_not_found")
