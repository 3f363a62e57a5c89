"""``log_check``: the transparency log recomputed from the events, and every stored tile and checkpoint checked.

What it proves when it reports nothing: the leaves are numbered without gaps and agree with the head; each leaf is
exactly the leaf today's code builds from its audit event (so no event was rewritten), and hashes to its stored
leaf hash; every audit event of a logged kind has its leaf, numbered or still queued for the sequencer, and none
has been queued for long (none was dropped), and every effect that came due has
its ``*.took_effect`` leaf; every stored tile holds the hashes the leaves give; and every checkpoint is signed by
the log's key (current or retired), names the log's origin, and holds the root of exactly its first ``size``
leaves. Consecutive checkpoints are then consistent by construction: both roots come from one stream of leaves,
the older a prefix of the newer, which is what a consistency proof attests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone

from core.merkle import HASH_SIZE, TILE_HEIGHT, TILE_WIDTH, CompactRange, hash_up, leaf_hash
from core.signed_note import Checkpoint, note_signed_by
from optout.models import LogCheckpoint, LogEntry, LogQueuedLeaf, LogTile
from optout.transparency.leaves import LOGGED, TOOK_EFFECT, leaf_bytes, leaf_subject
from optout.transparency.selectors import log_size
from registry.models import AuditEvent

CHUNK = 10_000
# An effect is reported missing only once beat has had time to append it.
EFFECT_GRACE = timedelta(minutes=10)
# Every checkpoint numbers the queue first, and beat issues one every few minutes: a leaf queued longer means the
# sequencer is not running.
SEQUENCE_GRACE = timedelta(minutes=10)


def _expected_leaf(
    kind: str, event: AuditEvent | None, filed: dict[str, object] | None, due_at: datetime | None
) -> bytes | None:
    if kind in TOOK_EFFECT.values():
        if filed is None or due_at is None:
            return None
        subject = filed["subject"]
        assert isinstance(subject, dict)
        return leaf_bytes(event_id=int(str(filed["id"])), kind=kind, time=due_at, subject=subject)
    if event is None or event.code not in LOGGED or LOGGED[event.code].kind != kind:
        return None
    subject = leaf_subject(code=event.code, object_id=event.object_id, data=event.data or {})
    return leaf_bytes(event_id=event.pk, kind=kind, time=event.created_at, subject=subject)


def log_differences(*, now: datetime | None = None) -> Iterator[str]:
    """Every way the stored log differs from what the events give, one sentence each."""
    from optout.receipts import verification_public_keys

    moment = now or timezone.now()
    size = log_size()
    checkpoints = list(LogCheckpoint.objects.order_by("size"))
    keys = verification_public_keys()
    # Full tiles and the partial ones checkpoints stored at the right edge: each must be a prefix of its hashes.
    stored_tiles: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    tile_rows = LogTile.objects.order_by("level", "number").values_list("level", "number", "width", "hashes")
    for level, number, width, hashes in tile_rows.iterator():
        stored_tiles.setdefault((level, number), []).append((width, bytes(hashes)))
    # Per level, the hashes of the tile being filled (level 0: leaf hashes; above: roots of full tiles below).
    pending: dict[int, list[bytes]] = {}
    tree = CompactRange()
    effects_logged: set[int] = set()
    effects_due: dict[int, datetime] = {}
    filed_leaves: dict[int, dict[str, object]] = {}
    next_checkpoint = 0
    expected_index = 0

    def tiles_compare(level: int, number: int, hashes: bytes) -> Iterator[str]:
        for width, stored in stored_tiles.pop((level, number), []):
            if len(hashes) < width * HASH_SIZE or stored != hashes[: width * HASH_SIZE]:
                yield f"tile {level}/{number} (width {width}) holds other hashes than its leaves give"

    def tile_filled(level: int, hashes: list[bytes]) -> Iterator[str]:
        number = (tree.size >> (TILE_HEIGHT * (level + 1))) - 1
        yield from tiles_compare(level, number, b"".join(hashes))
        above = pending.setdefault(level + 1, [])
        above.append(hash_up(hashes))
        if len(above) == TILE_WIDTH:
            pending[level + 1] = []
            yield from tile_filled(level + 1, above)

    last_id = -1
    while True:
        rows = list(
            LogEntry.objects.filter(index__gt=last_id)
            .order_by("index")
            .values_list("index", "kind", "event_id", "data", "leaf_hash", "due_at")[:CHUNK]
        )
        if not rows:
            break
        last_id = rows[-1][0]
        events = AuditEvent.objects.in_bulk([row[2] for row in rows])
        for index, kind, event_id, data, stored_hash, due_at in rows:
            data, stored_hash = bytes(data), bytes(stored_hash)
            if index != expected_index:
                yield f"leaf {expected_index} is missing (the next stored leaf is {index})"
                expected_index = index
            expected_index += 1
            if kind in TOOK_EFFECT.values():
                effects_logged.add(event_id)
            filed = filed_leaves.get(event_id) if kind in TOOK_EFFECT.values() else None
            leaf_due = effects_due.get(event_id) if filed is not None else None
            expected = _expected_leaf(kind, events.get(event_id), filed, leaf_due)
            if expected is None:
                yield f"leaf {index} ({kind}) has no event it records"
            elif expected != data:
                yield f"leaf {index} ({kind}) differs from its event {event_id}"
            if leaf_hash(data) != stored_hash:
                yield f"leaf {index} ({kind}) does not hash to its stored leaf hash"
            if due_at is not None:
                effects_due[event_id] = due_at
                filed_leaves[event_id] = json.loads(data)
            tree.append(leaf_hash(data))
            level0 = pending.setdefault(0, [])
            level0.append(leaf_hash(data))
            if len(level0) == TILE_WIDTH:
                pending[0] = []
                yield from tile_filled(0, level0)
            while next_checkpoint < len(checkpoints) and checkpoints[next_checkpoint].size == tree.size:
                yield from _checkpoint_problems(checkpoints[next_checkpoint], tree.root(), keys)
                next_checkpoint += 1
    if expected_index != size:
        yield f"the log's head says {size} leaves, the stored leaves number {expected_index}"
    while next_checkpoint < len(checkpoints):
        checkpoint = checkpoints[next_checkpoint]
        if checkpoint.size == 0 and tree.size == 0:
            yield from _checkpoint_problems(checkpoint, tree.root(), keys)
        else:
            yield f"checkpoint of size {checkpoint.size} is beyond the {tree.size} stored leaves"
        next_checkpoint += 1
    for level, edge in pending.items():
        if edge:
            yield from tiles_compare(level, (tree.size >> (TILE_HEIGHT * level)) >> TILE_HEIGHT, b"".join(edge))
    for level, number in sorted(stored_tiles):
        yield f"tile {level}/{number} is stored but its leaves are not all in the log"
    logged_codes = list(LOGGED)
    logged_ids = set(LogEntry.objects.exclude(kind__in=list(TOOK_EFFECT.values())).values_list("event_id", flat=True))
    yield from _queue_differences(logged_ids, moment)
    for event_id, code in AuditEvent.objects.filter(code__in=logged_codes).values_list("id", "code").iterator():
        if event_id not in logged_ids:
            yield f"event {event_id} ({code}) is not in the log"
    for event_id, due_at in effects_due.items():
        if due_at <= moment - EFFECT_GRACE and event_id not in effects_logged:
            yield f"event {event_id} took effect at {due_at.isoformat()} and its took_effect leaf is missing"


def _queue_differences(logged_ids: set[int], moment: datetime) -> Iterator[str]:
    """Queued leaves must be today's leaves of their events and not wait long; their events count as logged."""
    last_id = 0
    while True:
        rows = list(
            LogQueuedLeaf.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "event_id", "kind", "data", "queued_at")[:CHUNK]
        )
        if not rows:
            return
        last_id = rows[-1][0]
        events = AuditEvent.objects.in_bulk([row[1] for row in rows])
        for queued_id, event_id, kind, data, queued_at in rows:
            logged_ids.add(event_id)
            if _expected_leaf(kind, events.get(event_id), None, None) != bytes(data):
                yield f"queued leaf {queued_id} ({kind}) differs from its event {event_id}"
            if queued_at <= moment - SEQUENCE_GRACE:
                yield f"queued leaf {queued_id} ({kind}) has waited since {queued_at.isoformat()} for its index"


def _checkpoint_problems(checkpoint: LogCheckpoint, root: bytes, keys: dict[str, Ed25519PublicKey]) -> Iterator[str]:
    origin = checkpoint.note.split("\n", 1)[0]
    text = None
    for public_key in keys.values():
        text = note_signed_by(checkpoint.note, name=origin, public_key=public_key)
        if text is not None:
            break
    if text is None:
        yield f"checkpoint of size {checkpoint.size} is not signed by the log's key"
        return
    if text != Checkpoint(origin=origin, size=checkpoint.size, root_hash=root).text():
        yield f"checkpoint of size {checkpoint.size} does not hold the root of its first {checkpoint.size} leaves"
    if bytes(checkpoint.root_hash) != root:
        yield f"checkpoint of size {checkpoint.size}: the stored root hash is not the leaves' root"
