"""A work's file, fingerprinted in the background: its SHA-256 and ISCC-CODE become identifiers of the work.

The upload is streamed to storage (never read whole) and answered at once; a worker reads it back in chunks,
computes the fingerprints (``registry/fingerprints.py``: about 7.5 s per MB for a text's Text-Code, too slow
for a request) and adds them to the work through ``services.work_identifier_add``, the one service that adds
identifiers to a work. A fingerprint another work already holds is recorded on the file as ``taken``, with
that work, and the job still finishes: the owner sees which work holds it. The stored file is deleted once
the job is done, or failed because of the file itself; only the fingerprints are kept.
"""

from __future__ import annotations

import os
import time
import typing
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from core.actors import Actor
from core.errors import InvalidState, NotPermitted
from core.jobs import job_finish, job_publish_on_commit, job_run
from core.uploads import upload_size_check
from registry import services
from registry.audit import audit_record
from registry.embedded_rights import embedded_rights_read
from registry.errors import IdentifierTaken
from registry.fingerprints import Fingerprints, fingerprint_file
from registry.identifiers import Scheme
from registry.models import (
    WORK_FILE_JOB,
    ClaimStatus,
    FileIdentifierOutcome,
    OwnershipClaim,
    Party,
    Work,
    WorkFile,
    WorkFileStatus,
)

# The progress is written at most this often: often enough to watch, rarely enough to cost nothing.
_PROGRESS_EVERY_SECONDS = 0.5

# Failures caused by the file itself: retrying cannot help, so its stored copy is not kept for a retry.
_FILE_FAILURES = frozenset({"unreadable_file"})


def work_file_create(*, actor: Actor, holder: Party, work: Work, file: File[bytes], filename: str) -> WorkFile:
    """Store a work's file and queue its fingerprinting; refused over ``WORK_FILE_MAX_UPLOAD_BYTES`` (413
    ``file_too_large``, nothing stored) or unless the holder has a live claim on the work."""
    services.require_holder_actor(actor, holder)
    if not OwnershipClaim.objects.filter(work=work, holder=holder).exclude(status=ClaimStatus.REJECTED).exists():
        raise NotPermitted(_("You can add files only to works you have claimed."), code="no_claim")
    upload_size_check(file, max_bytes=settings.WORK_FILE_MAX_UPLOAD_BYTES)
    size = file.size if isinstance(file.size, int) else 0
    work_file = WorkFile(
        work=work,
        holder=holder,
        created_by_id=actor.user_id,
        kind=work.kind,
        size=size,
        original_name=os.path.basename(filename.replace("\\", "/"))[:255],
        language=translation.get_language() or settings.LANGUAGE_CODE,
    )
    # The storage copies (or, for a large upload, moves) the file in chunks; it is never read whole into memory.
    work_file.file.save("upload", file, save=False)
    try:
        with transaction.atomic():
            work_file.save()
            audit_record(
                code="registry.work_file.created",
                actor=actor,
                target=work_file,
                data={"work": work.pk, "file": work_file.original_name, "size": size},
            )
            # The outbox: published after commit; if the broker is down, the sweep publishes it later.
            job_publish_on_commit(kind=WORK_FILE_JOB, job_id=work_file.pk)
    except BaseException:
        # Only a record that was never committed loses its file.
        work_file.file.delete(save=False)
        raise
    return work_file


def work_register_with_file(
    *, actor: Actor, holder: Party, draft: services.WorkDraft, file: File[bytes], filename: str
) -> tuple[Work, OwnershipClaim, WorkFile]:
    """Register a work and queue its file's fingerprinting, both or neither; a file over the limit is refused
    before anything is written."""
    upload_size_check(file, max_bytes=settings.WORK_FILE_MAX_UPLOAD_BYTES)
    with transaction.atomic():
        work, claim = services.work_register(actor=actor, holder=holder, draft=draft)
        work_file = work_file_create(actor=actor, holder=holder, work=work, file=file, filename=filename)
    return work, claim, work_file


def work_file_fingerprint(*, work_file_id: int) -> None:
    """Fingerprint a stored work file and add its fingerprints to the work; safe to run again or after a crash.

    A job is done in one piece: a retried one reads the file again, and adding an identifier the work already
    holds changes nothing, so two runs leave what one leaves. The failure reason is in the uploader's language.
    """
    language = WorkFile.objects.filter(pk=work_file_id).values_list("language", flat=True).first()
    with translation.override(language or settings.LANGUAGE_CODE):
        job_run(kind=WORK_FILE_JOB, job_id=work_file_id, work=_fingerprint)
    _drop_file_when_finished(work_file_id)


def _fingerprint(claimed: WorkFile) -> None:
    work_file = WorkFile.objects.select_related("work", "holder", "created_by").get(pk=claimed.pk)
    prints = _fingerprints_of(work_file)
    embedded = _embedded_rights_of(work_file)
    # The uploader adds the identifiers, for the holder they acted for then (as a bulk import's rows).
    actor = Actor(user=work_file.created_by, party=work_file.holder, api_key=None)
    wanted = [(Scheme.SHA256, prints.sha256)] + ([(Scheme.ISCC, prints.iscc)] if prints.iscc else [])
    with transaction.atomic():
        # Locked and still running: of two workers holding the job, one adds and finishes, the other stops.
        if not WorkFile.objects.select_for_update().filter(pk=work_file.pk, status=WorkFileStatus.PROCESSING).exists():
            return
        outcomes = [_identifier_add(actor, work_file, scheme, value) for scheme, value in wanted]
        finished = job_finish(
            kind=WORK_FILE_JOB,
            job_id=work_file.pk,
            bytes_done=work_file.size,
            sha256=prints.sha256,
            iscc=prints.iscc or "",
            audio_code_missing=prints.audio_code_missing or "",
            identifiers=outcomes,
            embedded_rights=embedded,
        )
        if finished:
            audit_record(
                code="registry.work_file.fingerprinted",
                actor=actor,
                target=work_file,
                data={
                    "work": work_file.work_id,
                    "identifiers": outcomes,
                    "audio_code_missing": prints.audio_code_missing,
                    "embedded_rights": embedded["read"],
                },
            )


def _fingerprints_of(work_file: WorkFile) -> Fingerprints:
    progress = _progress_writer(work_file)
    path: str | None = None
    with suppress(NotImplementedError):
        # fpcalc reads audio from a path; a storage without local paths gets a temporary copy instead.
        path = work_file.file.path
    with work_file.file.open("rb") as stored:
        size = work_file.file.size
        if size != work_file.size:
            # The upload's size was unknown (or the storage tells otherwise): the progress is against what is stored.
            WorkFile.objects.filter(pk=work_file.pk).update(size=size)
            work_file.size = size
        return fingerprint_file(
            file=typing.cast(typing.BinaryIO, stored),
            kind=work_file.kind,
            path=path if work_file.kind == "audio" else None,
            on_progress=progress,
            audio_max_seconds=settings.WORK_FILE_AUDIO_MAX_SECONDS,
            audio_timeout=settings.WORK_FILE_AUDIO_TIMEOUT_SECONDS,
        )


def _embedded_rights_of(work_file: WorkFile) -> dict[str, Any]:
    """What the file declares (C2PA training-mining, XMP plus:DataMining): read after the fingerprints, from the
    same stored copy; what cannot be read is recorded in it and never fails the job."""
    with work_file.file.open("rb") as stored:
        return embedded_rights_read(file=typing.cast(typing.BinaryIO, stored)).as_json()


def _progress_writer(work_file: WorkFile) -> Callable[[int], None]:
    last = 0.0

    def write(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < _PROGRESS_EVERY_SECONDS and done < work_file.size:
            return
        last = now
        WorkFile.objects.filter(pk=work_file.pk, status=WorkFileStatus.PROCESSING).update(
            bytes_done=min(done, work_file.size), heartbeat_at=timezone.now()
        )

    return write


def _identifier_add(actor: Actor, work_file: WorkFile, scheme: str, value: str) -> dict[str, Any]:
    try:
        services.work_identifier_add(
            actor=actor, holder=work_file.holder, work=work_file.work, scheme=scheme, value=value
        )
    except InvalidState as exists:
        if exists.code != "identifier_exists":
            raise
        # The work holds it already (an earlier file, or an earlier run of this job): the outcome is the same.
    except IdentifierTaken as taken:
        return {
            "scheme": scheme,
            "value": value,
            "outcome": FileIdentifierOutcome.TAKEN,
            "work_id": taken.extra.get("existing_work_id"),
        }
    return {"scheme": scheme, "value": value, "outcome": FileIdentifierOutcome.ADDED, "work_id": work_file.work_id}


def _drop_file_when_finished(work_file_id: int) -> None:
    work_file = WorkFile.objects.filter(pk=work_file_id).first()
    if work_file is None or not work_file.file:
        return
    finished = work_file.status == WorkFileStatus.DONE or (
        work_file.status == WorkFileStatus.FAILED and work_file.failure_code in _FILE_FAILURES
    )
    if finished:
        # A failure of ours (a worker error) keeps the file so that staff can retry the job.
        work_file.file.delete(save=False)
        WorkFile.objects.filter(pk=work_file_id).update(file="")
