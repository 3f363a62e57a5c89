"""Reads of the status projection: lookups at the current instant, consistent read points for snapshots, and
the comparison ``status_check`` reports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from optout.lookup_engines import lookup_engine_for
from optout.models import Purpose, Refusal, RefusalEvent, RefusalScope, StatusChange, StatusSegment
from optout.models.status import SubjectType
from optout.selectors import (
    LookupAnswer,
    LookupStatus,
    lookup_batch,
    lookup_result,
    lookup_result_invalid,
    lookup_result_unregistered,
    refusal_brief,
)
from optout.status.services import STATUS_LOCK, feed_state, status_now, stored_segments, stored_timeline
from optout.status.timelines import (
    Subject,
    Timeline,
    key_timelines,
    kind_timelines,
    prefix_timelines,
    status_at,
)
from registry.errors import InvalidIdentifier
from registry.identifiers import Scheme, identifier_normalize
from registry.models import Identifier, Work, WorkKind


@dataclass(frozen=True)
class ReadPoint:
    """An instant and the feed's cursor that agree: every change after ``cursor`` takes effect at ``as_of`` or
    later, and every change at or before it is visible to the reads in this transaction."""

    as_of: datetime
    cursor: int
    last_refusal_event_id: int


@contextmanager
def status_read_point() -> Iterator[ReadPoint]:
    """A read-only transaction over one consistent view of the projection and the feed, for snapshots.

    On PostgreSQL the writers' lock is taken (as a session lock, outside the transaction) until the view is
    taken: writers that hold it have committed by then, and writers after it read the clock later than
    ``as_of``. The lock is held for the few statements that open the view, not while the caller reads.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            yield _read_point()
        return
    if connection.in_atomic_block:
        raise RuntimeError("status_read_point opens its own transaction; call it outside one.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [STATUS_LOCK])
    locked = True
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            point = _read_point()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [STATUS_LOCK])
            locked = False
            yield point
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [STATUS_LOCK])


def _read_point() -> ReadPoint:
    as_of = status_now()
    cursor = StatusChange.objects.aggregate(last=Max("id"))["last"] or 0
    last_event = RefusalEvent.objects.aggregate(last=Max("id"))["last"] or 0
    return ReadPoint(as_of=as_of, cursor=cursor, last_refusal_event_id=last_event)


def in_force_at(at: datetime) -> Q:
    return Q(valid_from__lte=at) & (Q(valid_to__isnull=True) | Q(valid_to__gt=at))


# --- Lookups from the projection ---------------------------------------------------------------------


def lookup_batch_current(*, items: Sequence[Mapping[str, Any]], purpose: str, at: datetime) -> LookupAnswer:
    """``lookup_batch`` at the current instant ``at``, read from the projection: one row per registered key.

    Keys without a segment are not registered; those that are URLs are answered by the event path, which for an
    unregistered URL reads only the refused prefixes of its host. The answers are those of ``lookup_batch`` at
    ``at`` (``tests/optout/test_status_projection.py`` holds the two together on random registries).

    Without URLs the read is one statement (``current_statuses``), which sees one view of the projection and of
    the event id it reports: no transaction to open and close. With URLs, both reads share one snapshot.
    """
    inputs = [{"scheme": str(item.get("scheme", "")), "value": str(item.get("value", ""))} for item in items]
    # Per item: its key's text, or why it is invalid.
    keys: list[str | InvalidIdentifier] = []
    has_urls = False
    for item_input in inputs:
        try:
            key = identifier_normalize(scheme=item_input["scheme"], value=item_input["value"])
        except InvalidIdentifier as exc:
            keys.append(exc)
            continue
        keys.append(f"{key.scheme}:{key.value}")
        has_urls = has_urls or key.scheme == Scheme.URL
    texts = sorted({k for k in keys if isinstance(k, str)})
    engine = lookup_engine_for()
    url_answers: dict[str, dict[str, Any]] = {}
    if not has_urls:
        rows, last_event_id = engine.current_statuses(keys=texts, purpose=purpose, at=at)
        by_key = {row[0]: row for row in rows}
    else:
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                engine.snapshot_begin()
            rows, last_event_id = engine.current_statuses(keys=texts, purpose=purpose, at=at)
            by_key = {row[0]: row for row in rows}
            unregistered_urls = [
                {"scheme": "url", "value": k[4:]}
                for k in keys
                if isinstance(k, str) and k.startswith("url:") and k not in by_key
            ]
            if unregistered_urls:
                answer = lookup_batch(items=unregistered_urls, purpose=purpose, as_of=at, engine=engine)
                url_answers = {r["key"]: r for r in answer.results}
    results: list[dict[str, Any]] = []
    briefs: dict[int, dict[str, Any]] = {}
    for index, (item_input, text) in enumerate(zip(inputs, keys, strict=True)):
        if isinstance(text, InvalidIdentifier):
            results.append(lookup_result_invalid(index=index, item_input=item_input, error=text))
            continue
        row = by_key.get(text)
        if row is None:
            from_event_path = url_answers.get(text)
            if from_event_path is not None:
                results.append({**from_event_path, "index": index, "input": item_input})
            else:
                results.append(lookup_result_unregistered(index=index, item_input=item_input, key=text))
            continue
        (_s, status, compensation, regime, pending, work_id, title, kind, refusal_id, scope, rpurpose, starts) = row
        brief = briefs.get(work_id)
        if brief is None:
            brief = briefs[work_id] = {"id": work_id, "title": title, "kind": kind}
        refusal = None
        if refusal_id is not None:
            refusal = refusal_brief(refusal_id=refusal_id, scope=scope, purpose=rpurpose, effective_from=starts)
        results.append(
            lookup_result(
                index=index,
                item_input=item_input,
                key=text,
                status=status,
                compensation=compensation,
                work=brief,
                refusal=refusal,
                regime=regime,
                pending_refusal=pending,
            )
        )
    return LookupAnswer(results=results, last_refusal_event_id=last_event_id)


# --- status_check -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusDifference:
    subject: Subject
    expected: Timeline
    stored: Timeline
    feed_status: str | None = None

    def describe(self) -> str:
        def show(timeline: Timeline) -> str:
            return (
                "; ".join(
                    f"{s.answer.status} [{s.valid_from.isoformat()}, {s.valid_to.isoformat() if s.valid_to else '-'})"
                    for s in timeline
                )
                or f"({self.subject.default.status})"
            )

        text = (
            f"{self.subject.subject_type} {self.subject.subject} {self.subject.purpose}: "
            f"events say {show(self.expected)}, projection has {show(self.stored)}"
        )
        if self.feed_status is not None:
            text += f", change feed says {self.feed_status}"
        return text


def status_differences(*, chunk: int = 2000) -> Iterator[StatusDifference]:
    """Every subject whose stored segments (from now on) or change feed (now) differ from what the events give.

    Reads: every registered key, every key with segments, every URL prefix with a refusal or segments, every
    kind. A difference is a defect to report; ``status_check --repair`` rewrites the projection from the events.
    """
    now = status_now()
    registered = {f"{s}:{v}" for s, v in Identifier.objects.values_list("scheme", "value")}
    with_segments = set(
        StatusSegment.objects.filter(subject_type=SubjectType.KEY).values_list("subject", flat=True).distinct()
    )
    keys = sorted(registered | with_segments)
    prefixes = set(Refusal.objects.filter(scope=RefusalScope.URL_PREFIX).values_list("url_prefix", flat=True)) | set(
        StatusSegment.objects.filter(subject_type=SubjectType.URL_PREFIX).values_list("subject", flat=True)
    )
    for start in range(0, len(keys), chunk):
        yield from _compare(key_timelines(keys=keys[start : start + chunk], now=now), now)
    yield from _compare(prefix_timelines(prefixes=prefixes, now=now), now)
    yield from _compare(kind_timelines(kinds=WorkKind.values, now=now), now)


def _compare(expected: Mapping[Subject, Timeline], now: datetime) -> Iterator[StatusDifference]:
    subjects = list(expected)
    stored = stored_segments(subjects, now)
    feed = feed_state(subjects, now)
    for subject in subjects:
        want = expected[subject]
        have = stored_timeline(stored.get(subject, []), now)
        base, scheduled = feed[subject]
        at_now = scheduled.get(now, base if base is not None else subject.default.status)
        feed_ok = at_now == status_at(want, subject, now)
        if have != want or not feed_ok:
            yield StatusDifference(subject, want, have, None if feed_ok else at_now)


def work_statuses_now(*, works: Sequence[Work]) -> dict[int, str]:
    """Each work's lookup status now for generative training (the strictest purpose), as its public page says
    it: ``refused`` when any of its identifiers is, else its first identifier's. One read for a page of works
    (with their identifiers prefetched); a work without identifiers has no status."""
    items: list[dict[str, str]] = []
    owners: list[int] = []
    for work in works:
        for identifier in sorted(work.identifiers.all(), key=lambda i: (i.scheme, i.value)):
            items.append({"scheme": identifier.scheme, "value": identifier.value})
            owners.append(work.pk)
    if not items:
        return {}
    answer = lookup_batch_current(items=items, purpose=Purpose.TRAIN_GENAI, at=timezone.now())
    statuses: dict[int, str] = {}
    for work_id, result in zip(owners, answer.results, strict=True):
        status = str(result["status"])
        if work_id not in statuses or status == LookupStatus.REFUSED:
            statuses[work_id] = status
    return statuses
