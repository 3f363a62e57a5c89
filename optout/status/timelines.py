"""Subjects' status timelines from an instant on, computed from the events by the lookup's own rules.

A timeline is the list of segments, from ``now`` on, in which a subject's answer differs from its default (a key
without segments is unregistered; a prefix or kind without segments is permitted). The projection stores exactly
these, and ``status_check`` compares the two. The answers come from ``optout.selectors.lookup_batch``, evaluated
at ``now`` and at every later instant one of the subject's inputs starts or ends (a future-dated refusal, a
scheduled withdrawal, a regime from a date): between those instants nothing can change, since claims and domains
are verified at the moment they are, never ahead of time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.db.models import Q

from optout.models import KindRegime, Purpose, Refusal, RefusalEvent, RefusalEventKind, RefusalScope, Regime
from optout.models.status import SubjectStatus, SubjectType
from optout.selectors import lookup_batch_purposes, purposes_refusing
from registry.identifiers import Scheme
from registry.models import ClaimStatus, DomainStatus, Identifier, OwnershipClaim, Work, WorkKind

PURPOSES: tuple[str, ...] = (Purpose.TRAIN_AI.value, Purpose.TRAIN_GENAI.value)

DEFAULT_STATUS = {
    SubjectType.KEY.value: SubjectStatus.UNREGISTERED.value,
    SubjectType.URL_PREFIX.value: SubjectStatus.PERMITTED.value,
    SubjectType.KIND.value: SubjectStatus.PERMITTED.value,
}


@dataclass(frozen=True)
class Answer:
    """What a subject answers over a segment; a key's carries the rest of the lookup result."""

    status: str
    compensation: str = ""
    regime: str = ""
    pending_refusal: bool = False
    work_id: int | None = None
    refusal_id: int | None = None


@dataclass(frozen=True)
class Segment:
    valid_from: datetime
    valid_to: datetime | None
    answer: Answer


@dataclass(frozen=True)
class Subject:
    subject_type: str
    subject: str
    purpose: str
    host: str = ""

    @property
    def default(self) -> Answer:
        return Answer(status=DEFAULT_STATUS[self.subject_type])


Timeline = list[Segment]


def timeline_from_samples(subject: Subject, samples: Sequence[tuple[datetime, Answer]]) -> Timeline:
    """Segments from answers sampled at ascending instants (each holding until the next), default ones dropped."""
    segments: Timeline = []
    for index, (start, answer) in enumerate(samples):
        end = samples[index + 1][0] if index + 1 < len(samples) else None
        if segments and segments[-1].answer == answer and segments[-1].valid_to == start:
            segments[-1] = Segment(segments[-1].valid_from, end, answer)
        else:
            segments.append(Segment(start, end, answer))
    default = subject.default
    return [s for s in segments if s.answer != default]


def status_at(timeline: Timeline, subject: Subject, at: datetime) -> str:
    for segment in timeline:
        if segment.valid_from <= at and (segment.valid_to is None or at < segment.valid_to):
            return segment.answer.status
    return subject.default.status


# --- Keys --------------------------------------------------------------------------------------


def _future_instants_for_keys(keys: Sequence[str], now: datetime) -> list[datetime]:
    """Instants after ``now`` at which an input of one of ``keys`` starts or ends."""
    pairs = [key.split(":", 1) for key in keys]
    condition = Q(pk__in=[])
    by_scheme: dict[str, list[str]] = defaultdict(list)
    for scheme, value in pairs:
        by_scheme[scheme].append(value)
    for scheme, values in by_scheme.items():
        condition |= Q(scheme=scheme, value__any_of=set(values))
    works = dict(Identifier.objects.filter(condition).values_list("work_id", "work__kind"))
    # A recording's musical work: its refusals and its owners' catalogue refusals decide the recording too.
    works.update(
        Work.objects.filter(recordings__in=[pk for pk, kind in works.items() if kind == WorkKind.AUDIO])
        .values_list("pk", "kind")
        .distinct()
    )
    holders = set(
        OwnershipClaim.objects.filter(work__id__any_of=set(works))
        .exclude(status=ClaimStatus.REJECTED)
        .values_list("holder_id", flat=True)
    )
    hosts = {urlsplit(value).hostname or "" for scheme, value in pairs if scheme == Scheme.URL}
    refusal_filter = (
        Q(scope=RefusalScope.WORK, work__id__any_of=set(works))
        | Q(scope=RefusalScope.CATALOGUE, holder__id__any_of=holders)
        | Q(scope=RefusalScope.URL_PREFIX, url_host__in=hosts)
    )
    instants = set(_future_instants(refusal_filter, set(works.values()), now))
    # Verifying a claim stamps the verifier's clock, which may run ahead of the instant the projection is
    # computed at (the database's): the verification then takes effect at its own instant.
    instants.update(
        at
        for at in OwnershipClaim.objects.filter(work__id__any_of=set(works), decided_at__gt=now).values_list(
            "decided_at", flat=True
        )
        if at is not None
    )
    return sorted(instants)


def _future_instants(refusal_filter: Q, kinds: set[str], now: datetime) -> list[datetime]:
    instants: set[datetime] = set(
        Refusal.objects.filter(refusal_filter, effective_from__gt=now).values_list("effective_from", flat=True)
    )
    instants.update(
        RefusalEvent.objects.filter(
            kind=RefusalEventKind.WITHDRAWN, effective_at__gt=now, refusal__in=Refusal.objects.filter(refusal_filter)
        ).values_list("effective_at", flat=True)
    )
    # A URL-prefix refusal decides from when its domain is verified: never in the future, but read alike.
    for verified_at in Refusal.objects.filter(refusal_filter, domain__verified_at__gt=now).values_list(
        "domain__verified_at", flat=True
    ):
        if verified_at is not None:
            instants.add(verified_at)
    if kinds:
        instants.update(
            KindRegime.objects.filter(kind__in=kinds, effective_from__gt=now).values_list("effective_from", flat=True)
        )
    return sorted(instants)


def key_timelines(*, keys: Sequence[str], now: datetime) -> dict[Subject, Timeline]:
    """Every purpose's timeline for each key text (``scheme:value``), by the lookup's rules."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    instants = [now, *_future_instants_for_keys(keys, now)]
    items = [{"scheme": key.split(":", 1)[0], "value": key.split(":", 1)[1]} for key in keys]
    samples: dict[Subject, list[tuple[datetime, Answer]]] = defaultdict(list)
    # The plain text, equal to the member: a Subject is made and hashed twice per key and purpose, and a member's
    # hash goes through the enum's machinery.
    key_type = SubjectType.KEY.value
    # Both purposes from one read per instant: the keys' normalisation, works and claims are the same for each.
    answers = [lookup_batch_purposes(items=items, purposes=PURPOSES, as_of=at) for at in instants]
    for purpose in PURPOSES:
        for at, by_purpose in zip(instants, answers, strict=True):
            for key, result in zip(keys, by_purpose[purpose].results, strict=True):
                # A key the lookup would not accept is not a subject (it cannot be registered). One the lookup now
                # reads as another key (a URL key from before canonical URLs) has an empty timeline, so the
                # segments it still has are closed and the feed says so.
                if result["key"] != key:
                    if result["key"] is not None:
                        samples.setdefault(Subject(key_type, key, purpose), [])
                    continue
                refusal = result["refusal"]
                work = result["work"]
                samples[Subject(key_type, key, purpose)].append(
                    (
                        at,
                        Answer(
                            status=result["status"],
                            compensation=result["compensation"] if work is not None else "",
                            regime=result["regime"] if work is not None else "",
                            pending_refusal=bool(result["pending_refusal"]),
                            work_id=work["id"] if work is not None else None,
                            refusal_id=refusal["id"] if refusal is not None else None,
                        ),
                    )
                )
    return {subject: timeline_from_samples(subject, rows) for subject, rows in samples.items()}


# --- URL prefixes ------------------------------------------------------------------------------


def prefix_timelines(*, prefixes: Iterable[str], now: datetime) -> dict[Subject, Timeline]:
    """Each URL prefix's timeline: refused while a url_prefix refusal on it is in force and its domain verified."""
    prefixes = sorted(set(prefixes))
    if not prefixes:
        return {}
    refusals = list(
        Refusal.objects.filter(scope=RefusalScope.URL_PREFIX, url_prefix__in=prefixes)
        .select_related("domain")
        .order_by("effective_from", "pk")
    )
    withdrawn: dict[int, datetime] = {}
    for refusal_id, at in RefusalEvent.objects.filter(
        kind=RefusalEventKind.WITHDRAWN, refusal__in=[r.pk for r in refusals]
    ).values_list("refusal_id", "effective_at"):
        withdrawn[refusal_id] = min(at, withdrawn.get(refusal_id, at))
    timelines: dict[Subject, Timeline] = {}
    by_prefix: dict[str, list[Refusal]] = defaultdict(list)
    for refusal in refusals:
        by_prefix[refusal.url_prefix].append(refusal)
    for prefix in prefixes:
        rows = by_prefix.get(prefix, [])
        host = urlsplit(prefix).hostname or ""
        instants = {now}
        for refusal in rows:
            for maybe in (refusal.effective_from, withdrawn.get(refusal.pk), _domain_verified_at(refusal)):
                if maybe is not None and maybe > now:
                    instants.add(maybe)
        for purpose in PURPOSES:
            subject = Subject(SubjectType.URL_PREFIX, prefix, purpose, host)
            refusing = [r for r in rows if r.purpose in purposes_refusing(purpose)]
            samples = []
            for at in sorted(instants):
                deciding = next((r for r in refusing if _prefix_refuses(r, withdrawn.get(r.pk), at)), None)
                if deciding is None:
                    samples.append((at, subject.default))
                else:
                    samples.append((at, Answer(status=SubjectStatus.REFUSED, refusal_id=deciding.pk)))
            timelines[subject] = timeline_from_samples(subject, samples)
    return timelines


def _domain_verified_at(refusal: Refusal) -> datetime | None:
    domain = refusal.domain
    if domain is None or domain.status != DomainStatus.VERIFIED:
        return None
    return domain.verified_at


def _prefix_refuses(refusal: Refusal, withdrawn_at: datetime | None, at: datetime) -> bool:
    verified_at = _domain_verified_at(refusal)
    in_force = refusal.effective_from <= at and (withdrawn_at is None or withdrawn_at > at)
    return in_force and verified_at is not None and verified_at <= at


# --- Work kinds --------------------------------------------------------------------------------


def kind_timelines(*, kinds: Iterable[str], now: datetime) -> dict[Subject, Timeline]:
    """Each kind's timeline: ``license_required`` while its regime is."""
    kinds = sorted(set(kinds))
    rows = list(KindRegime.objects.filter(kind__in=kinds).values_list("kind", "regime", "effective_from"))
    timelines: dict[Subject, Timeline] = {}
    for kind in kinds:
        own = sorted((starts, regime) for row_kind, regime, starts in rows if row_kind == kind)
        instants = sorted({now, *(starts for starts, _regime in own if starts > now)})
        for purpose in PURPOSES:
            subject = Subject(SubjectType.KIND, kind, purpose)
            samples = []
            for at in instants:
                in_force = [regime for starts, regime in own if starts <= at]
                regime = in_force[-1] if in_force else Regime.USE_FIRST
                answer = (
                    Answer(status=SubjectStatus.LICENSE_REQUIRED, regime=regime)
                    if regime == Regime.LICENSE_REQUIRED
                    else subject.default
                )
                samples.append((at, answer))
            timelines[subject] = timeline_from_samples(subject, samples)
    return timelines
