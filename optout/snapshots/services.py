"""Snapshots' writes: queueing one (beat, staff, operators), building it in the background, and retention.

A build reads the status projection in one consistent view (``status_read_point``: the instant ``as_of`` and the
change feed's ``cursor`` agree, so ``changes?after=<cursor>`` holds exactly what the snapshot lacks), streams the
rows into files in a temporary directory, sorts the membership hashes after the view is closed, signs the manifest
with the receipt key and stores everything under ``snapshots/<snapshot_id>/`` through Django's storage API (the
``SNAPSHOT_STORAGE`` alias), so that web and workers on different hosts share the files.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from core.actors import Actor, require_staff
from core.dates import rfc3339
from core.errors import InvalidState
from core.jobs import job_finish, job_publish_on_commit, job_run
from core.locks import advisory_lock
from optout.models import SNAPSHOT_JOB, Snapshot, SnapshotStatus, SnapshotTrigger
from optout.receipts import receipt_sign
from optout.snapshots import files, selectors
from optout.status.selectors import status_read_point
from registry.audit import audit_record

logger = logging.getLogger(__name__)

QUEUE_LOCK = "optout.snapshot.queue"


def snapshot_storage() -> Storage:
    """Where snapshot files live: the ``STORAGES`` alias ``SNAPSHOT_STORAGE`` (``default`` unless configured)."""
    return storages[settings.SNAPSHOT_STORAGE]


# --- Queueing ------------------------------------------------------------------------------------------


def snapshot_request(*, actor: Actor) -> Snapshot:
    """Staff ask for a snapshot now (``POST /api/v1/snapshots``); one still queued is answered instead."""
    require_staff(actor)
    return _snapshot_queue(actor=actor, trigger=SnapshotTrigger.STAFF)


def snapshot_schedule() -> Snapshot:
    """Beat's daily snapshot (``SNAPSHOT_SCHEDULE_MINUTES``); one still queued is answered instead, so two beats
    firing at once queue one snapshot."""
    return _snapshot_queue(actor=Actor.system(), trigger=SnapshotTrigger.SCHEDULE)


def _snapshot_queue(*, actor: Actor, trigger: str) -> Snapshot:
    with transaction.atomic():
        # Two requests at once find the same queued snapshot rather than each queueing one.
        advisory_lock(QUEUE_LOCK)
        queued = Snapshot.objects.filter(status=SnapshotStatus.QUEUED).order_by("-id").first()
        if queued is not None:
            # Not built yet, so its instant is still to come: it answers this request as well as its own.
            return queued
        snapshot = _snapshot_create(actor=actor, trigger=trigger)
        job_publish_on_commit(kind=SNAPSHOT_JOB, job_id=snapshot.pk)
    return snapshot


def _snapshot_create(*, actor: Actor, trigger: str) -> Snapshot:
    snapshot = Snapshot.objects.create(trigger=trigger, requested_by=actor.person)
    audit_record(
        code="optout.snapshot.requested", actor=actor, target=snapshot, data={"snapshot_id": snapshot.snapshot_id}
    )
    return snapshot


def snapshot_create_now(*, actor: Actor) -> Snapshot:
    """Build a snapshot in this process (``manage.py snapshot_create``); returns it ready, or failed with its
    reason. Were this process to die, the jobs sweep hands the snapshot to a worker."""
    require_staff(actor)
    with transaction.atomic():
        snapshot = _snapshot_create(actor=actor, trigger=SnapshotTrigger.OPERATOR)
    built = snapshot_build(snapshot_pk=snapshot.pk)
    if built is None:  # removed meanwhile (retention never removes an unfinished one)
        raise InvalidState(_("The snapshot disappeared while it was built."), code="snapshot_missing")
    return built


# --- Building ------------------------------------------------------------------------------------------


def snapshot_build(*, snapshot_pk: int) -> Snapshot | None:
    """Build a queued snapshot (the task ``optout.tasks.snapshot_build``), then apply retention.

    A job of ``core.jobs``: a ready or failed snapshot is left as it is, another worker's build is left to it,
    and any error fails the snapshot with a code and reason (a worker that dies is noticed by its heartbeat).
    """
    job_run(kind=SNAPSHOT_JOB, job_id=snapshot_pk, work=_snapshot_build)
    snapshot = Snapshot.objects.filter(pk=snapshot_pk).first()
    if snapshot is not None and snapshot.status == SnapshotStatus.READY:
        snapshot_retention_apply()
    return snapshot


def _snapshot_build(snapshot: Snapshot) -> None:
    with tempfile.TemporaryDirectory(prefix="snapshot-") as temporary:
        directory = Path(temporary)
        with status_read_point() as point:
            memberships, counts = _rows_write(directory, as_of=point.as_of, cursor=point.cursor)
        # Sorting happens after the consistent read is closed: the database need not hold its view meanwhile.
        for purpose, membership in memberships.items():
            membership.write(directory / files.membership_file(purpose))
        entries = [files.file_entry(directory / name, name=name) for name in files.DATA_FILES]
        payload: dict[str, Any] = {
            "format": files.FORMAT,
            "snapshot_id": snapshot.snapshot_id,
            "as_of": rfc3339(point.as_of),
            "cursor": point.cursor,
            "last_refusal_event_id": point.last_refusal_event_id,
            "membership_hash": files.MEMBERSHIP_HASH,
            "purposes": list(files.PURPOSES),
            "counts": counts,
            "files": entries,
        }
        manifest = {**payload, "receipt": receipt_sign(payload=payload, own_payload=True)}
        manifest_bytes = files.json_bytes(manifest)
        (directory / files.MANIFEST).write_bytes(manifest_bytes)
        if not _still_ours(snapshot):
            return
        _files_store(snapshot, directory)
    with transaction.atomic():
        finished = job_finish(
            kind=SNAPSHOT_JOB,
            job_id=snapshot.pk,
            as_of=point.as_of,
            cursor=point.cursor,
            last_refusal_event_id=point.last_refusal_event_id,
            manifest=manifest,
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            total_bytes=len(manifest_bytes) + sum(entry["bytes"] for entry in entries),
        )
        if finished:
            audit_record(
                code="optout.snapshot.built",
                actor=Actor.system(),
                target=snapshot,
                data={
                    "snapshot_id": snapshot.snapshot_id,
                    "as_of": payload["as_of"],
                    "cursor": point.cursor,
                    "counts": counts,
                },
            )


def _rows_write(
    directory: Path, *, as_of: Any, cursor: int
) -> tuple[dict[str, files.MembershipWriter], dict[str, Any]]:
    """Stream what is not permitted at ``as_of`` into the listings, collecting the membership hashes."""
    memberships = {purpose: files.MembershipWriter() for purpose in files.PURPOSES}
    key_counts = dict.fromkeys(files.PURPOSES, 0)
    listing = files.JsonLinesWriter(directory / files.KEYS_LISTING)
    try:
        for key, purpose, status, work_id, refusal_id, since in selectors.snapshot_key_rows(at=as_of):
            memberships[purpose].add(key)
            key_counts[purpose] += 1
            listing.add(
                {
                    "key": key,
                    "purpose": purpose,
                    "status": status,
                    "work_id": work_id,
                    "refusal_id": refusal_id,
                    "since": since,
                }
            )
    finally:
        listing.close()

    prefix_counts = dict.fromkeys(files.PURPOSES, 0)
    prefixes = files.JsonLinesWriter(directory / files.URL_PREFIXES)
    try:
        for purpose, host, prefix, refusal_id in selectors.snapshot_prefix_rows(at=as_of):
            prefix_counts[purpose] += 1
            prefixes.add({"purpose": purpose, "host": host, "prefix": prefix, "refusal_id": refusal_id})
    finally:
        prefixes.close()

    kinds: dict[str, list[str]] = {purpose: [] for purpose in files.PURPOSES}
    for purpose, kind in selectors.snapshot_kind_rows(at=as_of):
        kinds[purpose].append(kind)
    (directory / files.KINDS).write_bytes(files.json_bytes(kinds))

    scheduled = files.JsonLinesWriter(directory / files.SCHEDULED)
    try:
        scheduled.extend(selectors.snapshot_scheduled_changes(at=as_of, cursor=cursor))
    finally:
        scheduled.close()

    counts = {
        "keys": key_counts,
        "url_prefixes": prefix_counts,
        "kinds": {purpose: len(names) for purpose, names in kinds.items()},
        "scheduled": scheduled.count,
    }
    return memberships, counts


def _still_ours(snapshot: Snapshot) -> bool:
    """Whether this worker still holds the build: a worker taken for dead whose job was handed to another must not
    overwrite that one's files (the names are fixed by the snapshot's id)."""
    return Snapshot.objects.filter(
        pk=snapshot.pk, status=SnapshotStatus.BUILDING, claimed_by=snapshot.claimed_by
    ).exists()


def _files_store(snapshot: Snapshot, directory: Path) -> None:
    storage = snapshot_storage()
    for name in files.FILE_NAMES:
        path = snapshot.storage_prefix + name
        if storage.exists(path):
            # Left by an earlier attempt of this build that stopped before it finished.
            storage.delete(path)
        with (directory / name).open("rb") as handle:
            stored = storage.save(path, File(handle, name=name))
        if stored != path:
            raise RuntimeError(f"Storage saved the snapshot file {path} as {stored}; the name must be kept.")


# --- Retention -----------------------------------------------------------------------------------------


def snapshot_retention_apply(*, keep: int | None = None) -> int:
    """Remove ready snapshots beyond the newest ``keep`` (``SNAPSHOT_KEEP``) and failed ones beyond as many, with
    their files; the newest ready snapshot is never removed. Returns how many were removed."""
    keep = max(1, settings.SNAPSHOT_KEEP if keep is None else keep)
    ready = Snapshot.objects.filter(status=SnapshotStatus.READY).order_by("-as_of", "-id")
    failed = Snapshot.objects.filter(status=SnapshotStatus.FAILED).order_by("-created_at", "-id")
    removed = 0
    for snapshots in (ready, failed):
        for snapshot in list(snapshots[keep:]):
            removed += _snapshot_remove(snapshot)
    return removed


def _snapshot_remove(snapshot: Snapshot) -> int:
    # The row first: once it is gone nothing lists or serves the files, and a file left behind by a failed delete
    # is only storage (its names are the snapshot's id, never reused).
    with transaction.atomic():
        deleted, _rows = Snapshot.objects.filter(pk=snapshot.pk, status=snapshot.status).delete()
        if deleted:
            audit_record(
                code="optout.snapshot.removed",
                actor=Actor.system(),
                data={"snapshot_id": snapshot.snapshot_id, "status": snapshot.status, "reason": "retention"},
            )
    if not deleted:
        return 0
    storage = snapshot_storage()
    for name in files.FILE_NAMES:
        try:
            storage.delete(snapshot.storage_prefix + name)
        except OSError:
            logger.warning("snapshot %s: could not delete %s", snapshot.snapshot_id, name, exc_info=True)
    return 1
