"""Writes of the status projection and its change feed, in the transaction of the event that changes them.

Every writer takes one advisory lock (``STATUS_LOCK``) before it reads the subjects' old state and holds it to
commit. The change feed's ids are therefore assigned in commit order, and the instant a writer gives to an
immediate change is read after it holds the lock, so it is never earlier than a snapshot that did not see it
(``optout.status.selectors.status_read_point``).

The feed is written so that a reader who applies it by the rule in the README (per subject and purpose, the
change with the greatest ``(effective_at, cursor)`` at or before an instant decides) gets exactly the
projection. Each refresh compares the new timeline with what the earlier changes already imply, not with the
stored segments, so it also composes with changes scheduled earlier for later instants.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.utils import timezone

from core.bulk import rows_insert
from core.locks import advisory_lock
from optout.models import Refusal, RefusalScope, StatusChange, StatusSegment
from optout.models.status import SubjectType
from optout.status.timelines import (
    Answer,
    Segment,
    Subject,
    Timeline,
    key_timelines,
    kind_timelines,
    prefix_timelines,
    status_at,
)
from registry.identifiers import Scheme
from registry.models import AuditEvent, ClaimStatus, Identifier, OwnershipClaim, Work, WorkKind

STATUS_LOCK = "optout.status"
# Keys refreshed per round of lookups: a regime change may touch every work of a kind.
CHUNK = 2000

# Called once a transaction that wrote changes has committed (webhook deliveries); set by optout.feed.
changes_committed_hooks: list[Callable[[], None]] = []


def status_now() -> datetime:
    """The instant writers and snapshots agree on: the database's clock on PostgreSQL (web and workers may run on
    hosts whose clocks differ), this process's elsewhere."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            (now,) = cursor.fetchone()
            return now  # type: ignore[no-any-return]
    return timezone.now()


@dataclass
class RefreshResult:
    subjects: int = 0
    rewritten: int = 0
    changes: int = 0
    by_cause: dict[int | None, int] = field(default_factory=dict)


def status_refresh(
    *,
    cause: AuditEvent | None,
    work_ids: Iterable[int] = (),
    keys: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    kinds: Iterable[str] = (),
    cause_by_work: Mapping[int, AuditEvent] | None = None,
) -> RefreshResult:
    """Recompute the named subjects (and every key of ``work_ids``) and write what changed.

    Call it inside the event's transaction, after the event's own writes; ``cause`` is the event's audit record
    (``cause_by_work`` names one per work, for a batch of registrations).
    """
    with transaction.atomic():
        advisory_lock(STATUS_LOCK)
        now = status_now()
        result = RefreshResult()
        key_causes: dict[str, AuditEvent | None] = {}
        for key in keys:
            key_causes[key] = cause
        work_ids = sorted(set(work_ids))
        # A musical work's status decides its recordings' too (a refusal of it refuses them): they are recomputed
        # with it, by the cause that touched it.
        recordings = _recordings_of(work_ids)
        if recordings:
            cause_by_work = dict(cause_by_work or {})
            for recording, composition in recordings.items():
                if composition in cause_by_work:
                    cause_by_work.setdefault(recording, cause_by_work[composition])
            work_ids = sorted(set(work_ids) | set(recordings))
        for start in range(0, len(work_ids), CHUNK * 4):
            chunk = work_ids[start : start + CHUNK * 4]
            for work_id, scheme, value in Identifier.objects.filter(work__id__any_of=set(chunk)).values_list(
                "work_id", "scheme", "value"
            ):
                work_cause = cause_by_work.get(work_id, cause) if cause_by_work else cause
                key_causes[f"{scheme}:{value}"] = work_cause
        all_keys = sorted(key_causes)
        for start in range(0, len(all_keys), CHUNK):
            chunk_keys = all_keys[start : start + CHUNK]
            timelines = key_timelines(keys=chunk_keys, now=now)
            _write(timelines, now=now, causes={s: key_causes[s.subject] for s in timelines}, result=result)
        prefix_list = sorted(set(prefixes))
        if prefix_list:
            timelines = prefix_timelines(prefixes=prefix_list, now=now)
            _write(timelines, now=now, causes=dict.fromkeys(timelines, cause), result=result)
        kind_list = sorted(set(kinds))
        if kind_list:
            timelines = kind_timelines(kinds=kind_list, now=now)
            _write(timelines, now=now, causes=dict.fromkeys(timelines, cause), result=result)
        # A work's title or kind may have changed without any status changing.
        segment_briefs_sync(work_ids=work_ids)
        if result.changes:
            for hook in changes_committed_hooks:
                transaction.on_commit(hook)
    return result


def _recordings_of(work_ids: Sequence[int]) -> dict[int, int]:
    """The recordings naming any of ``work_ids`` as their musical work, with it; one query per 10,000 works."""
    found: dict[int, int] = {}
    for start in range(0, len(work_ids), 10_000):
        chunk = work_ids[start : start + 10_000]
        # Only musical works have recordings; asking which of the works are ones first keeps the common case (no
        # musical work among them) to a primary-key read.
        compositions = list(
            Work.objects.filter(pk__any_of=set(chunk), kind=WorkKind.MUSICAL_WORK).values_list("pk", flat=True)
        )
        if compositions:
            found.update(
                Work.objects.filter(musical_work__id__any_of=set(compositions)).values_list("pk", "musical_work_id")
            )
    return found


def _segments_showing_another_brief() -> QuerySet[StatusSegment]:
    """Segments whose work's title or kind differs from the copy they carry."""
    work = Work.objects.filter(pk=OuterRef("work_id"))
    return StatusSegment.objects.filter(work__isnull=False).exclude(
        work_title=Subquery(work.values("title")), work_kind=Subquery(work.values("kind"))
    )


def segment_briefs_sync(*, work_ids: Iterable[int]) -> int:
    """Copy each work's title and kind onto its segments where they differ; how many segments changed."""
    ids = sorted(set(work_ids))
    work = Work.objects.filter(pk=OuterRef("work_id"))
    changed = 0
    for start in range(0, len(ids), CHUNK * 4):
        part = ids[start : start + CHUNK * 4]
        # The differing segments are found first, by two reads on primary keys: usually none differ, and the UPDATE's
        # correlated subqueries would otherwise run for every segment of every work named (two per key of each work
        # in a chunk of an import).
        briefs = _work_briefs(part)
        stale = {
            pk
            for pk, work_id, title, kind in StatusSegment.objects.filter(work__id__any_of=set(part)).values_list(
                "pk", "work_id", "work_title", "work_kind"
            )
            if briefs.get(work_id) != (title, kind)
        }
        if stale:
            changed += StatusSegment.objects.filter(pk__any_of=stale).update(
                work_title=Subquery(work.values("title")), work_kind=Subquery(work.values("kind"))
            )
    return changed


def segment_briefs_stale() -> list[int]:
    """The works whose segments show another title or kind than the work has (``status_check``)."""
    return sorted(_segments_showing_another_brief().values_list("work_id", flat=True).distinct())


def stored_segments(subjects: Sequence[Subject], now: datetime) -> dict[Subject, list[StatusSegment]]:
    """The subjects' segments in force at ``now`` or later."""
    by_type: dict[str, set[str]] = defaultdict(set)
    for subject in subjects:
        by_type[subject.subject_type].add(subject.subject)
    condition = Q(pk__in=[])
    for subject_type, names in by_type.items():
        condition |= Q(subject_type=subject_type, subject__any_of=names)
    stored: dict[Subject, list[StatusSegment]] = defaultdict(list)
    wanted = set(subjects)
    rows = StatusSegment.objects.filter(condition).filter(Q(valid_to__isnull=True) | Q(valid_to__gt=now))
    for row in rows.order_by("valid_from"):
        subject = Subject(row.subject_type, row.subject, row.purpose, row.host)
        if subject in wanted:
            stored[subject].append(row)
    return stored


def segment_answer(row: StatusSegment) -> Answer:
    return Answer(
        status=row.status,
        compensation=row.compensation,
        regime=row.regime,
        pending_refusal=row.pending_refusal,
        work_id=row.work_id,
        refusal_id=row.refusal_id,
    )


def stored_timeline(rows: Sequence[StatusSegment], now: datetime) -> Timeline:
    """Stored segments seen from ``now`` on: the one in force is cut at ``now``."""
    return [Segment(max(r.valid_from, now), r.valid_to, segment_answer(r)) for r in rows]


def feed_state(subjects: Sequence[Subject], now: datetime) -> dict[Subject, tuple[str | None, dict[datetime, str]]]:
    """Per subject, what its feed implies from ``now`` on: the status decided at ``now`` by changes effective by
    then (None: no change yet), and the changes scheduled after ``now`` (the latest per instant)."""
    names = {s.subject for s in subjects}
    state: dict[Subject, tuple[str | None, dict[datetime, str]]] = {}
    latest: dict[Subject, tuple[datetime, int, str]] = {}
    scheduled: dict[Subject, dict[datetime, str]] = defaultdict(dict)
    wanted = set(subjects)
    rows = (
        StatusChange.objects.filter(subject__any_of=names)
        .order_by("id")
        .values_list("id", "subject_type", "subject", "host", "purpose", "effective_at", "new_status")
    )
    for change_id, subject_type, name, host, purpose, effective_at, new_status in rows:
        subject = Subject(subject_type, name, purpose, host)
        if subject not in wanted:
            continue
        if effective_at <= now:
            best = latest.get(subject)
            if best is None or (effective_at, change_id) > best[:2]:
                latest[subject] = (effective_at, change_id, new_status)
        else:
            scheduled[subject][effective_at] = new_status
    for subject in subjects:
        best = latest.get(subject)
        state[subject] = (best[2] if best else None, scheduled.get(subject, {}))
    return state


def _emit(
    subject: Subject, new: Timeline, now: datetime, feed: tuple[str | None, dict[datetime, str]]
) -> list[tuple[datetime, str, str]]:
    """The changes to append so that the feed implies ``new`` from ``now`` on: ``(effective_at, old, new)``."""
    base, scheduled = feed
    applied = dict(scheduled)
    carried = base if base is not None else subject.default.status
    instants = {now, *scheduled}
    for segment in new:
        instants.add(max(segment.valid_from, now))
        if segment.valid_to is not None:
            instants.add(segment.valid_to)
    changes: list[tuple[datetime, str, str]] = []
    for at in sorted(instants):
        current = applied.get(at, carried)
        wanted = status_at(new, subject, at)
        if current != wanted:
            changes.append((at, current, wanted))
            applied[at] = wanted
            current = wanted
        carried = current
    return changes


def _write(
    timelines: Mapping[Subject, Timeline],
    *,
    now: datetime,
    causes: Mapping[Subject, AuditEvent | None],
    result: RefreshResult,
) -> None:
    subjects = list(timelines)
    result.subjects += len(subjects)
    stored = stored_segments(subjects, now)
    feed = feed_state(subjects, now)
    to_create: list[dict[str, Any]] = []
    to_delete: list[int] = []
    to_close: list[int] = []
    changes: list[dict[str, Any]] = []
    for subject in subjects:
        new = timelines[subject]
        rows = stored.get(subject, [])
        if stored_timeline(rows, now) == new:
            continue
        result.rewritten += 1
        keep_first = None
        for row in rows:
            if row.valid_from < now:
                first_new = new[0] if new else None
                # The segment in force goes on unchanged: keep its start ("since" in snapshots).
                if first_new is not None and first_new.valid_from == now and first_new.answer == segment_answer(row):
                    keep_first = row
                    if row.valid_to != first_new.valid_to:
                        StatusSegment.objects.filter(pk=row.pk).update(valid_to=first_new.valid_to)
                else:
                    to_close.append(row.pk)
            else:
                to_delete.append(row.pk)
        for index, segment in enumerate(new):
            if index == 0 and keep_first is not None:
                continue
            answer = segment.answer
            to_create.append(
                {
                    "subject_type": subject.subject_type,
                    "subject": subject.subject,
                    "host": subject.host,
                    "purpose": subject.purpose,
                    "valid_from": segment.valid_from,
                    "valid_to": segment.valid_to,
                    "status": answer.status,
                    "compensation": answer.compensation,
                    "regime": answer.regime,
                    "pending_refusal": answer.pending_refusal,
                    "work_id": answer.work_id,
                    "refusal_id": answer.refusal_id,
                }
            )
        cause = causes.get(subject)
        for effective_at, old_status, new_status in _emit(subject, new, now, feed[subject]):
            changes.append(
                {
                    "subject_type": subject.subject_type,
                    "subject": subject.subject,
                    "host": subject.host,
                    "purpose": subject.purpose,
                    "old_status": old_status,
                    "new_status": new_status,
                    "effective_at": effective_at,
                    "recorded_at": now,
                    "cause_id": cause.pk if cause is not None else None,
                    "cause_code": cause.code if cause is not None else "",
                }
            )
    if to_delete:
        StatusSegment.objects.filter(pk__in=to_delete).delete()
    if to_close:
        StatusSegment.objects.filter(pk__in=to_close).update(valid_to=now)
    if to_create:
        # Each segment carries its work's title and kind (what snapshots show), read here in the same transaction.
        briefs = _work_briefs({created["work_id"] for created in to_create if created["work_id"] is not None})
        for created in to_create:
            created["work_title"], created["work_kind"] = briefs.get(created["work_id"], ("", ""))
        # By COPY on PostgreSQL (core.bulk): a chunk of an import writes two segments and two changes per work.
        rows_insert(StatusSegment, to_create)
    if changes:
        rows_insert(StatusChange, changes)
        result.changes += len(changes)


def _work_briefs(work_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Each work's title and kind, as segments copy them."""
    ids = sorted(set(work_ids))
    briefs: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), CHUNK * 4):
        for pk, title, kind in Work.objects.filter(pk__any_of=set(ids[start : start + CHUNK * 4])).values_list(
            "pk", "title", "kind"
        ):
            briefs[pk] = (title, kind)
    return briefs


# --- Which subjects an event touches ---------------------------------------------------------------


def _live_claim_works(holder_id: int) -> list[int]:
    return list(
        OwnershipClaim.objects.filter(holder_id=holder_id)
        .exclude(status=ClaimStatus.REJECTED)
        .values_list("work_id", flat=True)
    )


def _url_keys_under(prefix: str) -> list[str]:
    return [
        f"{Scheme.URL}:{value}"
        for value in Identifier.objects.filter(scheme=Scheme.URL, value__startswith=prefix).values_list(
            "value", flat=True
        )
    ]


def status_refresh_for_refusal(*, refusal: Refusal, cause: AuditEvent | None) -> RefreshResult:
    """A refusal was filed or withdrawn: its work, its holder's catalogue, or its prefix and the URLs under it."""
    if refusal.scope == RefusalScope.WORK:
        assert refusal.work_id is not None
        return status_refresh(cause=cause, work_ids=[refusal.work_id])
    if refusal.scope == RefusalScope.CATALOGUE:
        return status_refresh(cause=cause, work_ids=_live_claim_works(refusal.holder_id))
    return status_refresh(cause=cause, prefixes=[refusal.url_prefix], keys=_url_keys_under(refusal.url_prefix))


def status_refresh_for_domain(*, domain_id: int, cause: AuditEvent | None) -> RefreshResult:
    """A domain was verified (or lost): the prefixes refused on it, and the registered URLs under them."""
    prefixes = sorted(set(Refusal.objects.filter(domain_id=domain_id).values_list("url_prefix", flat=True)))
    keys = [key for prefix in prefixes for key in _url_keys_under(prefix)]
    return status_refresh(cause=cause, prefixes=prefixes, keys=keys)


def status_refresh_for_kind(*, kind: str, cause: AuditEvent | None) -> RefreshResult:
    """A regime was set for a kind: the kind and every work of it."""
    work_ids = list(Work.objects.filter(kind=kind).values_list("pk", flat=True))
    return status_refresh(cause=cause, work_ids=work_ids, kinds=[kind])


def status_rebuild() -> RefreshResult:
    """Recompute every subject. Run by the migration that creates the projection and by ``status_check --repair``.

    Any difference it finds is written with its change, caused by no event: the feed stays the record of what
    readers were told.
    """
    result = RefreshResult()
    # Keys that have segments but no longer belong to a work are recomputed too (they become unregistered); the
    # database finds them, so that no process holds every identifier of the registry.
    identifier_of_subject = Identifier.objects.annotate(
        key=Concat("scheme", Value(":"), "value", output_field=CharField())
    ).filter(key=OuterRef("subject"))
    stray = set(
        StatusSegment.objects.filter(subject_type=SubjectType.KEY, valid_to__isnull=True)
        .exclude(Exists(identifier_of_subject))
        .values_list("subject", flat=True)
    )
    prefixes = set(Refusal.objects.filter(scope=RefusalScope.URL_PREFIX).values_list("url_prefix", flat=True)) | set(
        StatusSegment.objects.filter(subject_type=SubjectType.URL_PREFIX).values_list("subject", flat=True)
    )
    # Works a chunk at a time, by primary key, so that memory stays flat at any registry size.
    last_pk = 0
    while True:
        work_ids = list(Work.objects.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[: CHUNK * 5])
        if not work_ids:
            break
        last_pk = work_ids[-1]
        part = status_refresh(cause=None, work_ids=work_ids)
        result.subjects += part.subjects
        result.rewritten += part.rewritten
        result.changes += part.changes
    part = status_refresh(cause=None, keys=sorted(stray), prefixes=sorted(prefixes), kinds=WorkKind.values)
    result.subjects += part.subjects
    result.rewritten += part.rewritten
    result.changes += part.changes
    return result
