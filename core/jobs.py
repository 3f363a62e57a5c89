"""Background jobs: one lifecycle shared by usage manifests, work imports, exports, settlements and
market-share distributions.

A job is a row (``JobFields``) and a Celery task that takes its primary key. The row, not the broker, is the
source of truth:

- **Outbox.** Accepting a job commits the row (and its file) first; the task is published after commit, and
  a publish that fails (the broker is down) is only logged: ``enqueued_at`` stays empty and the sweep
  publishes the job once the broker is back. So an accepted upload is always processed.
- **Heartbeat.** A worker that claims a job refreshes ``heartbeat_at`` after every unit of work and from a
  thread while a long one runs (``JOB_HEARTBEAT_SECONDS``). A running job whose heartbeat is older than
  ``JOB_STALE_SECONDS`` lost its worker; the sweep (every minute) queues it again. Its time of upload says
  nothing about that: a long import that is still beating is left alone.
- **Chunks under a cursor.** A long job (an import's rows, a manifest's lines, a settlement's steps) commits
  its work a chunk at a time together with its cursor (``JobKind.cursor``), under a lock and a check that the
  cursor is still where this worker read it (``job_chunk_commit``, ``job_chunks_process``): of two workers
  holding one job, one applies each chunk and the other stops, and a restarted job resumes at the committed
  cursor. ``job_finish`` marks it done; ``job_fail`` (or any exception) failed with a reason.
- **Attempts.** Each claim counts; a job started ``JOB_MAX_ATTEMPTS`` times without finishing (a worker
  killed each time, e.g. out of memory on the same chunk) is failed with ``too_many_attempts`` instead of
  looping forever.
- **Failures are visible.** Any exception but a lost database connection (which Celery retries) marks the job
  ``failed`` with a machine-readable ``failure_code`` and a message the owner reads (API, portal, admin);
  staff see the error behind it in ``failure_detail``. Staff may retry a failed job: it is queued again and
  continues where it stopped, under the same idempotency keys, so nothing is posted twice.

Each app registers its kinds of job (``job_kind_register``) when it is ready.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from core.actors import Actor, require_staff
from core.errors import InvalidState, NotFound, RegistryError
from core.signals import audit_requested
from core.tasks import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)


class JobFailure:
    """The failure codes of the lifecycle itself; a domain error's own code is used as it is."""

    INTERNAL_ERROR = "internal_error"
    INPUT_MISSING = "input_missing"
    TIME_LIMIT = "time_limit"
    TOO_MANY_ATTEMPTS = "too_many_attempts"


# Said in the reader's language when the page or answer is rendered; a domain error's message is stored as
# the job's language rendered it.
FAILURE_MESSAGES: dict[str, Any] = {
    JobFailure.INTERNAL_ERROR: _(
        "An unexpected error stopped this job. The registry's staff have been told and can retry it."
    ),
    JobFailure.INPUT_MISSING: _("The job's file is missing from storage. The registry's staff can retry it."),
    JobFailure.TIME_LIMIT: _("The job ran longer than its time limit. The registry's staff can retry it."),
    JobFailure.TOO_MANY_ATTEMPTS: _(
        "The job's worker stopped every time it was started, so it was given up. The registry's staff can retry it."
    ),
}


class JobFields(models.Model):
    """What every background job records about its life; each model keeps its own ``status`` choices."""

    failure_code = models.CharField(_("failure code"), max_length=64, blank=True, default="", db_default="")
    failure_reason = models.TextField(_("failure reason"), blank=True)
    failure_detail = models.TextField(
        _("failure detail"),
        blank=True,
        default="",
        db_default="",
        help_text=_("For staff: the error behind the failure."),
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Empty while the job waits to be handed to the broker (the outbox): the sweep publishes it.
    enqueued_at = models.DateTimeField(_("queued at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    # Which worker process (host, pid, thread) holds the job: the heartbeat of another one is left alone.
    claimed_by = models.CharField(_("worker"), max_length=200, blank=True, default="", db_default="")
    attempts = models.PositiveIntegerField(_("attempts"), default=0, db_default=0)

    class Meta:
        abstract = True

    @property
    def failure_message(self) -> str:
        """The failure as its owner reads it, in the active language where the code has a message of its own."""
        generic = FAILURE_MESSAGES.get(self.failure_code)
        return str(generic) if generic is not None else self.failure_reason


@dataclass(frozen=True)
class JobKind:
    """How the lifecycle drives one model: its statuses, its task and its audit codes."""

    model: type[JobFields]
    task: str  # dotted path of the Celery task that takes the job's primary key
    waiting: str  # accepted, not started yet
    running: str
    done: str
    failed: str
    audit_prefix: str  # e.g. "compensation.manifest": events are <prefix>.failed and <prefix>.retried
    # The field that says how far a resumable job has come (``job_chunk_commit``): lines or rows done, or the
    # last finished step. Empty for a job done in one piece.
    cursor: str = ""

    @property
    def name(self) -> str:
        return self.model._meta.label_lower

    def objects(self) -> models.QuerySet[Any]:
        return self.model._default_manager.all()


_KINDS: dict[type[models.Model], JobKind] = {}


def job_kind_register(kind: JobKind) -> None:
    _KINDS[kind.model] = kind


def job_kinds() -> list[JobKind]:
    return list(_KINDS.values())


def job_kind_of(model: type[models.Model]) -> JobKind:
    return _KINDS[model]


# --- Publishing (the outbox) ----------------------------------------------------------------------


def job_publish(*, kind: JobKind, job_id: int) -> bool:
    """Hand the job to the broker; False, logged, if the broker cannot take it (the sweep will)."""
    try:
        import_string(kind.task).delay(job_id)
    except Exception:
        # The row is committed, so nothing is lost: an empty enqueued_at is the sweep's to publish.
        logger.warning("could not queue %s %s; the sweep will", kind.name, job_id, exc_info=True)
        try:
            kind.objects().filter(pk=job_id, status=kind.waiting).update(enqueued_at=None)
        except TRANSIENT_ERRORS:
            logger.warning("could not record that %s %s is unqueued", kind.name, job_id, exc_info=True)
        return False
    try:
        kind.objects().filter(pk=job_id).update(enqueued_at=timezone.now())
    except TRANSIENT_ERRORS:
        # Published all the same; at worst the sweep publishes it again, which a claim makes harmless.
        logger.warning("could not record that %s %s was queued", kind.name, job_id, exc_info=True)
    return True


def job_publish_on_commit(*, kind: JobKind, job_id: int) -> None:
    """Publish the job once the transaction that accepted it commits; never raises into the request."""
    transaction.on_commit(lambda: job_publish(kind=kind, job_id=job_id))


# --- Running ---------------------------------------------------------------------------------------


def _stale_before(now: datetime, stale_seconds: float | None = None) -> datetime:
    return now - timedelta(seconds=settings.JOB_STALE_SECONDS if stale_seconds is None else stale_seconds)


def _worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:200]


def job_claim(*, kind: JobKind, job_id: int, on_start: Callable[[Any], None] | None = None) -> Any | None:
    """Take the job for this worker; None when there is nothing to do here.

    Nothing to do: the job is gone or finished, or another worker is running it (its heartbeat is fresh: a
    duplicate or redelivered message). The same worker may take up its own running job again (a task retried
    in the same process). A waiting job, or a running one without a fresh heartbeat (its worker died), starts
    an attempt, resuming where the last one stopped; past ``JOB_MAX_ATTEMPTS`` the job is failed instead.
    ``on_start`` runs in the claim's transaction when a waiting job starts.
    """
    now, me = timezone.now(), _worker_identity()
    with transaction.atomic():
        job = kind.objects().select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (kind.done, kind.failed):
            return None
        fresh = job.heartbeat_at is not None and job.heartbeat_at >= _stale_before(now)
        if job.status == kind.running and fresh:
            if job.claimed_by != me:
                return None
            job.heartbeat_at = now
            job.save(update_fields=["heartbeat_at"])
            return job
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            _fail_locked(kind, job, code=JobFailure.TOO_MANY_ATTEMPTS, message="", detail="")
            return None
        if job.status == kind.waiting and on_start is not None:
            on_start(job)
        job.status = kind.running
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.claimed_by = me
        job.attempts += 1
        job.save(update_fields=["status", "started_at", "heartbeat_at", "claimed_by", "attempts"])
    return job


def job_heartbeat(*, kind: JobKind, job_id: int) -> None:
    kind.objects().filter(pk=job_id, status=kind.running).update(heartbeat_at=timezone.now())


@contextmanager
def job_heartbeating(*, kind: JobKind, job_id: int) -> Iterator[None]:
    """Refresh the job's heartbeat from a thread every ``JOB_HEARTBEAT_SECONDS`` while the block runs, so that a
    long chunk (or a settlement step, or a distribution) is not taken for a dead worker. Enter it outside any
    transaction: the thread writes through a connection of its own.
    """
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    job_heartbeat(kind=kind, job_id=job_id)
                except TRANSIENT_ERRORS:
                    logger.warning("heartbeat of %s %s failed", kind.name, job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"heartbeat-{kind.name}-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # A beat waiting on the row lock of a transaction that just ended finishes at once.
        thread.join(timeout=30)


def job_run(
    *,
    kind: JobKind,
    job_id: int,
    work: Callable[[Any], None],
    on_start: Callable[[Any], None] | None = None,
) -> None:
    """Claim the job, run ``work(job)`` under a heartbeat, and record any failure on the job.

    ``work`` finishes the job itself (its own status, results and audit). A domain error fails the job with
    its code and message; any other exception with a code of the lifecycle, logged with its traceback. A lost
    database connection is raised for Celery to retry; if it gives up, the heartbeat goes stale and the sweep
    queues the job again.
    """
    job = job_claim(kind=kind, job_id=job_id, on_start=on_start)
    if job is None:
        return
    with job_heartbeating(kind=kind, job_id=job_id):
        try:
            work(job)
        except TRANSIENT_ERRORS:
            raise
        except RegistryError as exc:
            job_fail(kind=kind, job_id=job_id, code=exc.code, message=str(exc.message))
        except Exception as exc:
            logger.exception("%s %s failed", kind.name, job_id)
            job_fail(kind=kind, job_id=job_id, code=failure_code_for(exc), message="", detail=_detail(exc))


def failure_code_for(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return JobFailure.TIME_LIMIT
    if isinstance(exc, FileNotFoundError):
        return JobFailure.INPUT_MISSING
    return JobFailure.INTERNAL_ERROR


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def job_fail(
    *,
    kind: JobKind,
    job_id: int,
    code: str,
    message: str,
    detail: str = "",
    audit_data: dict[str, Any] | None = None,
) -> bool:
    """Mark an unfinished job failed; False if it had finished (or failed) already."""
    with transaction.atomic():
        job = kind.objects().select_for_update().filter(pk=job_id).first()
        if job is None or job.status in (kind.done, kind.failed):
            return False
        _fail_locked(kind, job, code=code, message=message, detail=detail, audit_data=audit_data)
    return True


def _fail_locked(
    kind: JobKind,
    job: Any,
    *,
    code: str,
    message: str,
    detail: str,
    audit_data: dict[str, Any] | None = None,
) -> None:
    job.status = kind.failed
    job.failure_code = code[:64]
    job.failure_reason = message or str(FAILURE_MESSAGES.get(code, ""))
    job.failure_detail = detail
    job.finished_at = timezone.now()
    job.heartbeat_at = None
    job.save(
        update_fields=["status", "failure_code", "failure_reason", "failure_detail", "finished_at", "heartbeat_at"]
    )
    audit_requested.send(
        sender=type(job),
        code=f"{kind.audit_prefix}.failed",
        actor=Actor.system(),
        target=job,
        data={
            **(audit_data or {}),
            "code": job.failure_code,
            "reason": job.failure_reason,
            **({"detail": detail} if detail else {}),
            "attempts": job.attempts,
        },
    )


def job_retry(*, actor: Any, kind: JobKind, job_id: int) -> Any:
    """Queue a failed job again (staff); it continues where it stopped, or starts over where it keeps nothing.

    The attempts start again from zero. Refused (``invalid_state``) unless the job has failed.
    """
    require_staff(actor)
    with transaction.atomic():
        job = kind.objects().select_for_update().filter(pk=job_id).first()
        if job is None:
            raise NotFound()
        if job.status != kind.failed:
            raise InvalidState(_("Only a failed job can be retried."), code="not_failed")
        previous = {"code": job.failure_code, "reason": job.failure_reason}
        job.status = kind.waiting
        job.failure_code = job.failure_reason = job.failure_detail = ""
        job.finished_at = job.heartbeat_at = job.enqueued_at = None
        job.attempts = 0
        job.save(
            update_fields=[
                "status",
                "failure_code",
                "failure_reason",
                "failure_detail",
                "finished_at",
                "heartbeat_at",
                "enqueued_at",
                "attempts",
            ]
        )
        audit_requested.send(
            sender=type(job), code=f"{kind.audit_prefix}.retried", actor=actor, target=job, data={"previous": previous}
        )
        job_publish_on_commit(kind=kind, job_id=job.pk)
    return job


# --- Resumable work: chunks under a cursor -----------------------------------------------------------

Chunk = TypeVar("Chunk")


def job_chunk_commit(
    *,
    kind: JobKind,
    job_id: int,
    cursor: Any,
    advance_to: Any,
    apply: Callable[[], Mapping[str, Any] | None],
) -> bool:
    """Apply one chunk and move the job's cursor (``kind.cursor``) from ``cursor`` to ``advance_to``, in one
    transaction; False, with nothing applied, when the job is no longer running at ``cursor``.

    The row is locked and its cursor checked first: of two workers holding the same job (a redelivered message,
    a worker taken for dead that was only slow), only the one that read the cursor where it still is applies the
    chunk; the other finds it moved and stops. ``apply`` writes the chunk's effects and returns more of the job's
    fields to write with the cursor (counts; ``heartbeat_at=None`` with a finishing status). The committed cursor
    is where a restarted job resumes, so no chunk is applied twice or skipped.
    """
    with transaction.atomic():
        current = kind.objects().select_for_update().filter(pk=job_id).values_list("status", kind.cursor).first()
        if current != (kind.running, cursor):
            return False
        fields = apply() or {}
        kind.objects().filter(pk=job_id).update(**{kind.cursor: advance_to, "heartbeat_at": timezone.now(), **fields})
    return True


def job_chunks_process(
    *,
    kind: JobKind,
    job: Any,
    chunks: Iterable[Chunk],
    size: Callable[[Chunk], int],
    apply: Callable[[int, Chunk], Mapping[str, Any] | None],
) -> bool:
    """Commit ``chunks`` one at a time (``job_chunk_commit``) from the job's committed cursor on; False as soon as
    another worker has taken the job over.

    ``chunks`` starts at that cursor (the caller cuts its input there: the lines or rows after the first
    ``cursor``), ``size(chunk)`` is how far each moves the cursor, and ``apply(cursor, chunk)`` writes one.
    The work per chunk is one locked read and one update: per line there is none.
    """
    cursor: int = getattr(job, kind.cursor)
    for chunk in chunks:
        advance_to = cursor + size(chunk)
        if not job_chunk_commit(
            kind=kind, job_id=job.pk, cursor=cursor, advance_to=advance_to, apply=partial(apply, cursor, chunk)
        ):
            return False
        cursor = advance_to
    return True


def job_finish(*, kind: JobKind, job_id: int, **fields: Any) -> bool:
    """Mark a running job done, writing ``fields`` (its results) with it; False, writing nothing, when it is not
    running (another worker finished it, or it was failed meanwhile). Call it inside the transaction that
    records what finishing means (its audit event), so that both or neither are written."""
    finished = kind.objects().filter(pk=job_id, status=kind.running)
    return bool(finished.update(status=kind.done, finished_at=timezone.now(), heartbeat_at=None, **fields))


# --- The sweep -----------------------------------------------------------------------------------------


def jobs_sweep(
    *, kinds: list[JobKind] | None = None, now: datetime | None = None, stale_seconds: float | None = None
) -> int:
    """Publish what was never handed to the broker, queue again what lost its worker, and fail what lost it
    too often; returns how many jobs it published or failed. Runs every minute.

    Safe when two sweeps run at once: each job is taken under a row lock that the other skips, and a job a
    worker holds locked (inside a chunk) is busy, not stale.
    """
    now = now or timezone.now()
    stale = _stale_before(now, stale_seconds)
    handled = 0
    for kind in kinds if kinds is not None else job_kinds():
        handled += _sweep_kind(kind, now=now, stale=stale)
    return handled


def _sweep_kind(kind: JobKind, *, now: datetime, stale: datetime) -> int:
    grace = now - timedelta(seconds=settings.JOB_HEARTBEAT_SECONDS)
    republish_waiting = now - timedelta(seconds=settings.JOB_REPUBLISH_WAITING_SECONDS)
    due = (
        # Accepted, never handed to the broker (it was down), and not just being handed over by its request.
        Q(status=kind.waiting, enqueued_at__isnull=True, created_at__lt=grace)
        # Handed over long ago and never started: the message was lost (a broker restarted empty).
        | Q(status=kind.waiting, enqueued_at__lt=republish_waiting)
        # Running without a heartbeat for too long: its worker died.
        | Q(status=kind.running, last_sign__lt=stale)
    )
    handled = 0
    publish: list[int] = []
    with transaction.atomic():
        jobs = list(
            kind.objects()
            .annotate(last_sign=Coalesce("heartbeat_at", "enqueued_at", "started_at", "created_at"))
            .select_for_update(skip_locked=True, of=("self",))
            .filter(due)
            .order_by("pk")[:500]
        )
        for job in jobs:
            handled += 1
            if job.status == kind.running and job.attempts >= settings.JOB_MAX_ATTEMPTS:
                _fail_locked(kind, job, code=JobFailure.TOO_MANY_ATTEMPTS, message="", detail="")
                continue
            if job.status == kind.running:
                logger.warning(
                    "%s %s lost its worker (last heartbeat %s); queued again", kind.name, job.pk, job.last_sign
                )
            # Marked queued now, so the next sweep leaves it to the worker for a while; a cleared heartbeat lets
            # the next claim take the job over.
            kind.objects().filter(pk=job.pk).update(enqueued_at=now, heartbeat_at=None)
            publish.append(job.pk)
    # After the commit (this runs outside any transaction in a worker), so the task finds the marks.
    for job_id in publish:
        job_publish(kind=kind, job_id=job_id)
    return handled
