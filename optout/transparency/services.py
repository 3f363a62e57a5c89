"""Writing the transparency log: leaves queued in their events' transactions, numbered by the sequencer, and
signed checkpoints with their tiles."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import islice

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.actors import Actor, require_staff
from core.bulk import rows_insert
from core.locks import advisory_lock
from core.merkle import TILE_HEIGHT, TILE_WIDTH, hash_up, leaf_hash, tree_root
from core.prepared import prepared_execute
from core.signed_note import Checkpoint, note_sign
from optout.models import LogCheckpoint, LogEntry, LogHead, LogQueuedLeaf, LogTile
from optout.transparency.leaves import EFFECTIVE_KEYS, LOGGED, TOOK_EFFECT, leaf_bytes, leaf_subject
from optout.transparency.selectors import log_checkpoint_latest, log_origin, log_reader, log_size, log_state
from registry.models import AuditEvent

CHECKPOINT_LOCK = "optout.transparency.checkpoint"


# A leaf as the event's transaction writes it: the event's id, the leaf's kind, its canonical JSON, and when the
# event takes effect if that is later than it was recorded.
LeafRow = tuple[int, str, bytes, datetime | None]

# Leaves the sequencer moves per statement: large enough that a backlog of millions moves in seconds, small
# enough that the ids it names stay one modest array parameter.
SEQUENCE_BATCH = 20_000


def log_leaf_rows(*, events: Sequence[AuditEvent]) -> list[LeafRow]:
    """The leaves the status-changing ones among ``events`` become (the others become none)."""
    rows: list[LeafRow] = []
    for event in events:
        leaf = LOGGED.get(event.code)
        if leaf is None:
            continue
        subject = leaf_subject(code=event.code, object_id=event.object_id, data=event.data or {})
        due_at = None
        effective_key = EFFECTIVE_KEYS.get(leaf.kind)
        if effective_key and subject.get(effective_key):
            effective = datetime.fromisoformat(subject[effective_key])
            # Filed for a later instant: its taking effect is an event of its own, appended when it comes.
            if effective > event.created_at:
                due_at = effective
        data = leaf_bytes(event_id=event.pk, kind=leaf.kind, time=event.created_at, subject=subject)
        rows.append((event.pk, leaf.kind, data, due_at))
    return rows


# The leaf of one status change: values sent in binary, so the leaf's bytes travel as they are, not hex-encoded.
_QUEUE_ONE_SQL = (
    "INSERT INTO optout_logqueuedleaf (event_id, kind, data, due_at, queued_at) "
    "VALUES (%s::bigint, %s::text, %s::bytea, %s::timestamptz, %s::timestamptz)"
)


def _leaves_queue(rows: Sequence[LeafRow]) -> None:
    """Queue leaves for the sequencer: one INSERT that takes no lock another writer holds."""
    if connection.vendor == "postgresql" and len(rows) == 1:
        # Nearly every status change writes one leaf: prepared once per connection, so PostgreSQL neither parses
        # nor plans it again (bench/log.py measures what the log adds to each event).
        prepared_execute(connection, _QUEUE_ONE_SQL, [*rows[0], timezone.now()], binary=True)
        return
    # Many at once (a catalogue import's chunk): streamed by COPY on PostgreSQL, in order, so their ids keep it.
    queued_at = timezone.now()
    rows_insert(
        LogQueuedLeaf,
        [
            {"event_id": event_id, "kind": kind, "data": data, "due_at": due_at, "queued_at": queued_at}
            for event_id, kind, data, due_at in rows
        ],
    )


def log_events_append(*, events: Sequence[AuditEvent]) -> int:
    """Queue the leaves of the status-changing ones among ``events``; call it in the events' transaction, so a
    leaf is written if and only if its event commits. The sequencer gives them their indexes."""
    rows = log_leaf_rows(events=events)
    if rows:
        _leaves_queue(rows)
    return len(rows)


def _head_size_for_update() -> int:
    size = LogHead.objects.select_for_update().filter(id=1).values_list("size", flat=True).first()
    if size is None:
        # No head row: only a test database emptied by a flush lacks the one migration 0009 creates.
        LogHead.objects.create(id=1, size=0)
        return 0
    return size


def _sequence() -> int:
    """Move every queued leaf into the log, in queue order, at the next indexes; the caller holds the
    checkpoint lock in its transaction, so there is one sequencer at a time and the head's size is its own.

    The ids moved are read first and named exactly: a leaf with a lower id whose transaction commits meanwhile is
    not skipped, it is numbered by the next run.
    """
    moved = 0
    size = _head_size_for_update()
    while True:
        ids = list(LogQueuedLeaf.objects.order_by("id").values_list("id", flat=True)[:SEQUENCE_BATCH])
        if not ids:
            break
        now = timezone.now()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO optout_logentry (index, kind, event_id, data, leaf_hash, due_at, appended_at) "
                    "SELECT %s + q.n - 1, l.kind, l.event_id, l.data, sha256('\\x00'::bytea || l.data), l.due_at, %s "
                    "FROM unnest(%s::bigint[]) WITH ORDINALITY AS q(id, n) "
                    "JOIN optout_logqueuedleaf l ON l.id = q.id ORDER BY q.n",
                    [size, now, ids],
                )
                cursor.execute("DELETE FROM optout_logqueuedleaf WHERE id = ANY(%s)", [ids])
        else:
            queued = LogQueuedLeaf.objects.in_bulk(ids)
            LogEntry.objects.bulk_create(
                [
                    LogEntry(
                        index=size + n,
                        kind=queued[pk].kind,
                        event_id=queued[pk].event_id,
                        data=bytes(queued[pk].data),
                        leaf_hash=leaf_hash(bytes(queued[pk].data)),
                        due_at=queued[pk].due_at,
                        appended_at=now,
                    )
                    for n, pk in enumerate(ids)
                ],
                batch_size=2_000,
            )
            for first in range(0, len(ids), 5_000):
                LogQueuedLeaf.objects.filter(id__in=ids[first : first + 5_000]).delete()
        size += len(ids)
        moved += len(ids)
    if moved:
        LogHead.objects.filter(id=1).update(size=size)
    return moved


def log_sequence() -> int:
    """Number the queued leaves (beat and every checkpoint run it); returns how many were numbered."""
    with transaction.atomic():
        advisory_lock(CHECKPOINT_LOCK)
        return _sequence()


def log_effects_append(*, now: datetime | None = None) -> int:
    """Append a ``*.took_effect`` leaf for each future-dated refusal or withdrawal whose instant has come.

    Safe to run twice at once and to retry: each runs under the checkpoint lock, and an effect already logged is
    skipped (and refused by the database's one-leaf-per-event-and-kind constraint).
    """
    moment = now or timezone.now()
    with transaction.atomic():
        advisory_lock(CHECKPOINT_LOCK)
        # Leaves still queued may be due too: number them first, so every due one is read below.
        _sequence()
        logged = LogEntry.objects.filter(event_id=OuterRef("event_id"), kind__in=list(TOOK_EFFECT.values()))
        due = list(
            LogEntry.objects.filter(due_at__isnull=False, due_at__lte=moment)
            .exclude(Exists(logged))
            .order_by("due_at", "index")
            .values_list("event_id", "kind", "data", "due_at")
        )
        if not due:
            return 0
        rows: list[LeafRow] = []
        for event_id, kind, data, due_at in due:
            assert due_at is not None  # filtered on above
            filed = json.loads(bytes(data))
            effect = TOOK_EFFECT[kind]
            data = leaf_bytes(event_id=event_id, kind=effect, time=due_at, subject=filed["subject"])
            rows.append((event_id, effect, data, None))
        _leaves_queue(rows)
        _sequence()
    return len(rows)


def _level_hashes(*, level: int, start: int, end: int) -> Iterator[bytes]:
    """Entries ``start`` to ``end`` of level ``level`` in order, streamed: leaf hashes at level 0, and above it the
    roots of the full tiles one level down."""
    values: Iterator[bytes | memoryview | None]
    if level == 0:
        values = (
            LogEntry.objects.filter(index__gte=start, index__lt=end)
            .order_by("index")
            .values_list("leaf_hash", flat=True)
            .iterator(chunk_size=20_000)
        )
    else:
        values = (
            LogTile.objects.filter(level=level - 1, width=TILE_WIDTH, number__gte=start, number__lt=end)
            .order_by("number")
            .values_list("root", flat=True)
            .iterator(chunk_size=20_000)
        )
    return (bytes(value) for value in values if value is not None)


def _tiles_complete(*, size: int) -> None:
    """Store every full tile of the first ``size`` leaves not stored yet, level by level, streaming the hashes
    below in index order (a checkpoint after 10,000,000 new leaves reads them once)."""
    level = 0
    while True:
        full = size >> (TILE_HEIGHT * (level + 1))
        if full == 0:
            return
        stored = LogTile.objects.filter(level=level, width=TILE_WIDTH).count()
        if stored < full:
            below = _level_hashes(level=level, start=stored * TILE_WIDTH, end=full * TILE_WIDTH)
            _tiles_write(level=level, first=stored, count=full - stored, hashes=below)
        level += 1


def _tiles_edge(*, size: int) -> None:
    """Store the partial tile at the right edge of each level of the first ``size`` leaves."""
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        number, width = count >> TILE_HEIGHT, count & (TILE_WIDTH - 1)
        if width:
            first = number * TILE_WIDTH
            hashes = b"".join(_level_hashes(level=level, start=first, end=first + width))
            LogTile.objects.bulk_create(
                [LogTile(level=level, number=number, width=width, hashes=hashes, root=None)], ignore_conflicts=True
            )
        level += 1


def _tiles_write(*, level: int, first: int, count: int, hashes: Iterator[bytes]) -> None:
    batch: list[LogTile] = []
    for number in range(first, first + count):
        tile = list(islice(hashes, TILE_WIDTH))
        if len(tile) != TILE_WIDTH:
            raise RuntimeError(f"tile {level}/{number} has {len(tile)} of {TILE_WIDTH} hashes: the log has a gap")
        batch.append(LogTile(level=level, number=number, hashes=b"".join(tile), root=hash_up(tile)))
        if len(batch) == 1_000:
            LogTile.objects.bulk_create(batch)
            batch = []
    LogTile.objects.bulk_create(batch)


def log_checkpoint_issue() -> LogCheckpoint:
    """Number the queued leaves, then sign a checkpoint of every leaf, unless the latest checkpoint covers them.

    Returns the checkpoint covering the log as it is, new or the latest (the first checkpoint of an empty log has
    size 0). Two issuers at once are serialized by the lock; the second finds the first's checkpoint and reuses it.
    """
    from optout.receipts import signing_key

    with transaction.atomic():
        advisory_lock(CHECKPOINT_LOCK)
        _sequence()
        size = log_size()
        latest = log_checkpoint_latest()
        if latest is not None and latest.size >= size:
            return latest
        _tiles_complete(size=size)
        _tiles_edge(size=size)
        root = tree_root(size, log_reader(size=size))
        origin = log_origin()
        text = Checkpoint(origin=origin, size=size, root_hash=root).text()
        note = note_sign(text=text, name=origin, private_key=signing_key().private_key)
        return LogCheckpoint.objects.create(size=size, root_hash=root, note=note)


def log_checkpoint_for_answer() -> LogCheckpoint | None:
    """The checkpoint a lookup names: one covering every leaf committed before the lookup reads its answer.

    The latest checkpoint when it covers the log (one query: the head's size), else one issued now; so every event
    behind the answer is in the named tree. An event that commits while the lookup runs may show in the answer and
    only in the next checkpoint.
    """
    global _latest
    size, queued = log_state()
    if not queued and _latest is not None and _latest.size >= size:
        return _latest
    latest = log_checkpoint_latest()
    if queued or latest is None or latest.size < size:
        latest = log_checkpoint_issue()
    _latest = latest
    return latest


# The newest checkpoint this process has seen: checkpoints never change, so it stays right until the log grows.
_latest: LogCheckpoint | None = None


def log_checkpoint_request(*, actor: Actor) -> tuple[LogCheckpoint, bool]:
    """Staff ask for a checkpoint now: the effects that came due, then a checkpoint if the log grew.

    Returns the checkpoint covering the log and whether it is new.
    """
    require_staff(actor)
    before = log_checkpoint_latest()
    log_effects_append()
    checkpoint = log_checkpoint_issue()
    return checkpoint, before is None or checkpoint.pk != before.pk


def log_cache_forget() -> None:
    """Forget the checkpoint this process remembers (for tests, whose databases are emptied between them)."""
    global _latest
    _latest = None
