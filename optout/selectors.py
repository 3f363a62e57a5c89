"""Reads for refusals and the lookup. A lookup batch costs a constant number of queries."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from core.actors import Actor
from core.dates import rfc3339
from core.errors import NotFound
from optout.lookup_engines import LookupEngine, lookup_engine_for
from optout.models import KindRegime, Purpose, Refusal, RefusalEvent, RefusalEventKind, RefusalScope, Regime
from registry.errors import InvalidIdentifier
from registry.identifiers import IdentifierKey, Scheme, identifier_normalize, url_prefix_covers
from registry.models import ClaimStatus, OwnershipClaim, Work, WorkKind, WorkStatus

USE_FIRST = Regime.USE_FIRST.value
LICENSE_REQUIRED = Regime.LICENSE_REQUIRED.value


class LookupStatus:
    REFUSED = "refused"
    PERMITTED = "permitted"
    UNREGISTERED = "unregistered"
    LICENSE_REQUIRED = "license_required"
    INVALID = "invalid"


@dataclass
class _Work:
    id: int
    title: str
    kind: str
    status: str
    # holder id -> whether that holder's claim was verified by the instant asked about
    claims: dict[int, bool] = field(default_factory=dict)


@dataclass
class _Refusal:
    id: int
    holder_id: int
    scope: str
    purpose: str
    work_id: int | None
    url_prefix: str
    url_host: str
    effective_from: datetime
    withdrawn_at: datetime | None
    domain_verified: bool
    domain_verified_at: datetime | None = None

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.withdrawn_at is None or self.withdrawn_at > at)

    def as_result(self) -> dict[str, Any]:
        return refusal_brief(
            refusal_id=self.id, scope=self.scope, purpose=self.purpose, effective_from=self.effective_from
        )


@dataclass(frozen=True)
class LookupAnswer:
    results: list[dict[str, Any]]
    last_refusal_event_id: int


# --- One result's shape, shared by the event path and the projection path ---------------------------------


def refusal_brief(*, refusal_id: int, scope: str, purpose: str, effective_from: datetime) -> dict[str, Any]:
    """The refusal that decided a result, as a lookup shows it: a ``train-ai`` refusal refuses both purposes."""
    purposes = [Purpose.TRAIN_AI, Purpose.TRAIN_GENAI] if purpose == Purpose.TRAIN_AI else [purpose]
    return {
        "id": refusal_id,
        "scope": scope,
        "purposes": [str(p) for p in purposes],
        "effective_from": rfc3339(effective_from),
    }


def lookup_result(
    *,
    index: int,
    item_input: dict[str, str],
    key: str,
    status: str,
    compensation: str,
    work: dict[str, Any] | None,
    refusal: dict[str, Any] | None,
    regime: str,
    pending_refusal: bool,
) -> dict[str, Any]:
    """One item's answer; ``may_train`` follows from the status."""
    return {
        "index": index,
        "input": item_input,
        "key": key,
        "status": status,
        "may_train": status in (LookupStatus.PERMITTED, LookupStatus.UNREGISTERED),
        "compensation": compensation,
        # How the item found its work: by its own identifier ("exact"), or an ISCC by a near copy ("similar",
        # optout.similar); None without a work.
        "match": "exact" if work is not None else None,
        "work": work,
        "refusal": refusal,
        "regime": regime,
        "pending_refusal": pending_refusal,
    }


def lookup_result_unregistered(*, index: int, item_input: dict[str, str], key: str) -> dict[str, Any]:
    """A valid identifier no work holds and no refusal covers: it may be used, and what it earns is held."""
    return lookup_result(
        index=index,
        item_input=item_input,
        key=key,
        status=LookupStatus.UNREGISTERED,
        compensation="escrow",
        work=None,
        refusal=None,
        regime=USE_FIRST,
        pending_refusal=False,
    )


def lookup_result_invalid(*, index: int, item_input: dict[str, str], error: InvalidIdentifier) -> dict[str, Any]:
    """An identifier that cannot be checked is never answered as usable."""
    return {
        "index": index,
        "input": item_input,
        "key": None,
        "status": LookupStatus.INVALID,
        "may_train": False,
        "compensation": "none",
        "match": None,
        "work": None,
        "refusal": None,
        "regime": None,
        "pending_refusal": False,
        "reason": {"code": error.code, "message": str(error.message)},
    }


def purposes_refusing(purpose: str) -> list[str]:
    """Stored purposes that refuse ``purpose``: train-ai refuses both."""
    return [Purpose.TRAIN_AI] if purpose == Purpose.TRAIN_AI else [Purpose.TRAIN_AI, Purpose.TRAIN_GENAI]


def _regime_at(rows: Sequence[tuple[str, str, datetime]], kind: str, at: datetime) -> str:
    in_force = [(starts, regime) for row_kind, regime, starts in rows if row_kind == kind and starts <= at]
    return max(in_force)[1] if in_force else Regime.USE_FIRST


def lookup_batch(
    *, items: Sequence[Mapping[str, Any]], purpose: str, as_of: datetime, engine: LookupEngine | None = None
) -> LookupAnswer:
    """Answer each item's status for ``purpose`` at ``as_of``, in input order.

    Five queries whatever the batch size, read from one snapshot so the answer matches the
    ``last_refusal_event_id`` it reports. ``engine`` fetches the rows (``optout.lookup_engines``; by default
    the database's own).
    """
    return lookup_batch_purposes(items=items, purposes=[purpose], as_of=as_of, engine=engine)[purpose]


def lookup_batch_purposes(
    *,
    items: Sequence[Mapping[str, Any]],
    purposes: Sequence[str],
    as_of: datetime,
    engine: LookupEngine | None = None,
) -> dict[str, LookupAnswer]:
    """``lookup_batch`` for each of ``purposes``, from one read: the identifiers are normalised and the works,
    claims and refusals (of every purpose refusing one of them) read once, then each purpose decided apart."""
    engine = engine or lookup_engine_for()
    keys: list[IdentifierKey | InvalidIdentifier] = []
    for item in items:
        try:
            keys.append(identifier_normalize(scheme=str(item.get("scheme", "")), value=str(item.get("value", ""))))
        except InvalidIdentifier as exc:
            keys.append(exc)
    valid = [k for k in keys if isinstance(k, IdentifierKey)]
    url_hosts = {urlsplit(k.value).hostname or "" for k in valid if k.scheme == Scheme.URL}

    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            engine.snapshot_begin()
        last_event_id = RefusalEvent.objects.aggregate(last=Max("id"))["last"] or 0
        works_by_key, works = _works_for(valid, as_of, engine)
        # A recording is refused by its musical work's refusals too (never the reverse).
        musical = musical_works_of(works.values(), as_of)
        refusing = sorted({stored for purpose in purposes for stored in purposes_refusing(purpose)})
        all_refusals = _refusals_for(
            [*works.values(), *musical.values()], url_hosts, "", as_of, engine, refusing=refusing
        )
        regimes = list(KindRegime.objects.values_list("kind", "regime", "effective_from"))
    regime_by_kind = {kind: str(_regime_at(regimes, kind, as_of)) for kind in WorkKind.values}
    return {
        purpose: _lookup_decide(
            items=items,
            keys=keys,
            works_by_key=works_by_key,
            musical=musical,
            refusals=[r for r in all_refusals if r.purpose in purposes_refusing(purpose)],
            regime_by_kind=regime_by_kind,
            as_of=as_of,
            last_event_id=last_event_id,
        )
        for purpose in purposes
    }


def _lookup_decide(
    *,
    items: Sequence[Mapping[str, Any]],
    keys: Sequence[IdentifierKey | InvalidIdentifier],
    works_by_key: dict[str, _Work],
    musical: dict[int, _Work],
    refusals: Sequence[_Refusal],
    regime_by_kind: dict[str, str],
    as_of: datetime,
    last_event_id: int,
) -> LookupAnswer:
    by_work: dict[int, list[_Refusal]] = defaultdict(list)
    by_holder: dict[int, list[_Refusal]] = defaultdict(list)
    by_host: dict[str, list[_Refusal]] = defaultdict(list)
    for refusal in refusals:
        if refusal.scope == RefusalScope.WORK and refusal.work_id is not None:
            by_work[refusal.work_id].append(refusal)
        elif refusal.scope == RefusalScope.CATALOGUE:
            by_holder[refusal.holder_id].append(refusal)
        else:
            by_host[refusal.url_host].append(refusal)

    results: list[dict[str, Any]] = []
    work_briefs: dict[int, dict[str, Any]] = {}
    for index, (item, key) in enumerate(zip(items, keys, strict=True)):
        item_input = {"scheme": str(item.get("scheme", "")), "value": str(item.get("value", ""))}
        if isinstance(key, InvalidIdentifier):
            results.append(lookup_result_invalid(index=index, item_input=item_input, error=key))
            continue
        key_text = str(key)
        work = works_by_key.get(key_text)
        candidates: list[tuple[_Refusal, bool]] = []
        if work is not None:
            for refusal in by_work.get(work.id, ()):
                candidates.append((refusal, work.claims.get(refusal.holder_id, False)))
            for holder_id, verified in work.claims.items():
                candidates.extend((refusal, verified) for refusal in by_holder.get(holder_id, ()))
            composition = musical.get(work.id)
            if composition is not None:
                for refusal in by_work.get(composition.id, ()):
                    candidates.append((refusal, composition.claims.get(refusal.holder_id, False)))
                for holder_id, verified in composition.claims.items():
                    candidates.extend((refusal, verified) for refusal in by_holder.get(holder_id, ()))
        if by_host and key.scheme == "url":
            prefix = _longest_prefix(by_host.get(urlsplit(key.value).hostname or "", []), key.value, as_of)
            if prefix is not None:
                candidates.append((prefix, prefix.domain_verified))
        deciding, pending = _decide(candidates, as_of) if candidates else (None, False)
        regime = regime_by_kind[work.kind] if work is not None else USE_FIRST
        refusal_result = None
        if deciding is not None:
            status, compensation = LookupStatus.REFUSED, "none"
            refusal_result = deciding.as_result()
        elif regime == LICENSE_REQUIRED:
            status, compensation = LookupStatus.LICENSE_REQUIRED, "none"
        elif work is not None:
            owners_known = work.status != WorkStatus.DISPUTED and any(work.claims.values())
            status, compensation = LookupStatus.PERMITTED, "owners" if owners_known else "escrow"
        else:
            status, compensation = LookupStatus.UNREGISTERED, "escrow"
        brief = None
        if work is not None:
            brief = work_briefs.get(work.id)
            if brief is None:
                brief = work_briefs[work.id] = {"id": work.id, "title": work.title, "kind": work.kind}
        results.append(
            lookup_result(
                index=index,
                item_input=item_input,
                key=key_text,
                status=status,
                compensation=compensation,
                work=brief,
                refusal=refusal_result,
                regime=regime,
                pending_refusal=pending,
            )
        )
    return LookupAnswer(results=results, last_refusal_event_id=last_event_id)


def _works_for(
    keys: Sequence[IdentifierKey], as_of: datetime, engine: LookupEngine
) -> tuple[dict[str, _Work], dict[int, _Work]]:
    """Works by identifier key text (``scheme:value``) and by id, with their live claims."""
    if not keys:
        return {}, {}
    values_by_scheme: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        values_by_scheme[key.scheme].add(key.value)
    works: dict[int, _Work] = {}
    works_by_key: dict[str, _Work] = {}
    # One row per identifier and live claim (LEFT JOIN: a work may have none). Whether a claim was
    # verified by ``as_of`` is computed by the database: parsing a timestamp per claim costs more.
    for scheme, value, work_id, title, kind, status, holder_id, verified_then in engine.works(values_by_scheme, as_of):
        work = works.get(work_id)
        if work is None:
            work = works[work_id] = _Work(id=work_id, title=title, kind=kind, status=status)
        works_by_key[f"{scheme}:{value}"] = work
        if holder_id is not None:
            work.claims[holder_id] = bool(verified_then)
    return works_by_key, works


def musical_works_of(works: Iterable[_Work], as_of: datetime) -> dict[int, _Work]:
    """The musical work of each recording among ``works`` (by the recording's id), with its live claims and whether
    each was verified by ``as_of``: two queries, and none when no recording names one."""
    ids = [w.id for w in works if w.kind == WorkKind.AUDIO]
    if not ids:
        return {}
    links = dict(Work.objects.filter(pk__in=ids, musical_work__isnull=False).values_list("pk", "musical_work_id"))
    if not links:
        return {}
    compositions = {
        pk: _Work(id=pk, title=title, kind=kind, status=status)
        for pk, title, kind, status in Work.objects.filter(pk__in=set(links.values())).values_list(
            "pk", "title", "kind", "status"
        )
    }
    for work_id, holder_id, status, decided_at in (
        OwnershipClaim.objects.filter(work_id__in=list(compositions))
        .exclude(status=ClaimStatus.REJECTED)
        .values_list("work_id", "holder_id", "status", "decided_at")
    ):
        verified_then = status == ClaimStatus.VERIFIED and decided_at is not None and decided_at <= as_of
        claims = compositions[work_id].claims
        claims[holder_id] = claims.get(holder_id, False) or verified_then
    return {recording: compositions[composition] for recording, composition in links.items()}


def _refusals_for(
    works: Iterable[_Work],
    url_hosts: set[str],
    purpose: str,
    as_of: datetime,
    engine: LookupEngine | None = None,
    *,
    refusing: Sequence[str] | None = None,
) -> list[_Refusal]:
    """Refusals of ``works``, their owners' catalogues and ``url_hosts`` refusing ``purpose`` (or of the stored
    purposes ``refusing``)."""
    works = list(works)
    work_ids = [w.id for w in works]
    holder_ids = {h for w in works for h in w.claims}
    if not (work_ids or holder_ids or url_hosts):
        return []
    rows = (engine or lookup_engine_for()).refusals(
        work_ids=work_ids,
        holder_ids=holder_ids,
        url_hosts=url_hosts,
        purposes=purposes_refusing(purpose) if refusing is None else refusing,
        as_of=as_of,
    )
    return [
        _Refusal(
            id=rid,
            holder_id=holder_id,
            scope=scope,
            purpose=rpurpose,
            work_id=work_id,
            url_prefix=prefix,
            url_host=host,
            effective_from=starts,
            withdrawn_at=withdrawn_at,
            domain_verified=bool(domain_verified),
            domain_verified_at=domain_verified_at,
        )
        for (
            rid,
            holder_id,
            scope,
            rpurpose,
            work_id,
            prefix,
            host,
            starts,
            withdrawn_at,
            domain_verified,
            domain_verified_at,
        ) in rows
    ]


def _longest_prefix(refusals: Sequence[_Refusal], url: str, at: datetime) -> _Refusal | None:
    """The URL-prefix refusal in force at ``at`` with the longest prefix of ``url``, if any."""
    matching = [r for r in refusals if url_prefix_covers(r.url_prefix, url) and r.in_force(at)]
    return max(matching, key=lambda r: (len(r.url_prefix), -r.id)) if matching else None


def _decide(candidates: Sequence[tuple[_Refusal, bool]], at: datetime) -> tuple[_Refusal | None, bool]:
    """The refusal deciding at ``at`` (the earliest effective, then the oldest), and whether one awaits verification.

    A refusal decides once the filer's ownership is verified; one verified co-owner is enough,
    since copyright in a joint work is exercised jointly.
    """
    effective: list[tuple[datetime, int, _Refusal]] = []
    pending = False
    for refusal, ownership_verified in candidates:
        if not refusal.in_force(at):
            continue
        if ownership_verified:
            effective.append((refusal.effective_from, refusal.id, refusal))
        else:
            pending = True
    if effective:
        return min(effective)[2], pending
    return None, pending


# --- Eligibility of reported uses (usage manifests) -----------------------------------------


@dataclass(frozen=True)
class OwnerClaim:
    id: int
    holder_id: int
    share_bp: int
    # When the claim was verified, in seconds since the epoch (cheaper to load and compare by the
    # million than datetimes); None while pending. Rejected claims are not loaded.
    verified_at: float | None


@dataclass
class UsageWork:
    id: int
    kind: str
    status: str
    claims: list[OwnerClaim] = field(default_factory=list)
    # A recording's musical work: its refusals refuse the recording, and a recording split pays it a share.
    musical_work: UsageWork | None = None

    def verified_claims(self) -> list[OwnerClaim]:
        """Verified claims in claim order: the order ties are broken in when money is split."""
        return sorted((claim for claim in self.claims if claim.verified_at is not None), key=lambda c: c.id)


@dataclass(frozen=True)
class UseDecision:
    work: UsageWork | None
    refusal_id: int | None
    regime: str


class UsageContext:
    """Everything needed to decide, for many identifiers, their status at any instant.

    Loaded with a constant number of queries for a whole chunk of manifest lines; each line is then
    decided at its own ``used_at`` by the same rules as a lookup ``as_of`` that instant (ledger
    invariant 5: eligibility is the status at use, never today's).
    """

    def __init__(
        self,
        *,
        works_by_key: dict[str, UsageWork],
        refusals: Sequence[_Refusal],
        regimes: Sequence[tuple[str, str, datetime]],
    ) -> None:
        self.works_by_key = works_by_key
        self._by_work: dict[int, list[_Refusal]] = defaultdict(list)
        self._by_holder: dict[int, list[_Refusal]] = defaultdict(list)
        self._by_host: dict[str, list[_Refusal]] = defaultdict(list)
        for refusal in refusals:
            if refusal.scope == RefusalScope.WORK and refusal.work_id is not None:
                self._by_work[refusal.work_id].append(refusal)
            elif refusal.scope == RefusalScope.CATALOGUE:
                self._by_holder[refusal.holder_id].append(refusal)
            else:
                self._by_host[refusal.url_host].append(refusal)

        # Per kind: the instants regimes start, and the regimes, for bisection.
        self._regime_starts: dict[str, list[datetime]] = defaultdict(list)
        self._regime_values: dict[str, list[str]] = defaultdict(list)
        for kind, regime, starts in sorted(regimes, key=lambda row: (row[0], row[2])):
            self._regime_starts[kind].append(starts)
            self._regime_values[kind].append(regime)

    def regime_at(self, kind: str, at: datetime) -> str:
        starts = self._regime_starts.get(kind)
        if not starts:
            return USE_FIRST
        index = bisect.bisect_right(starts, at) - 1
        return self._regime_values[kind][index] if index >= 0 else USE_FIRST

    def _work_candidates(self, work: UsageWork, at: datetime, candidates: list[tuple[_Refusal, bool]]) -> None:
        """The refusals of ``work`` and its owners' catalogues, each with whether its filer was verified by ``at``."""
        if work.id not in self._by_work and not self._by_holder:
            return
        at_epoch = at.timestamp()
        verified_then = {c.holder_id for c in work.claims if c.verified_at is not None and c.verified_at <= at_epoch}
        holders = {c.holder_id for c in work.claims}
        for refusal in self._by_work.get(work.id, ()):
            candidates.append((refusal, refusal.holder_id in verified_then))
        for holder_id in holders:
            verified = holder_id in verified_then
            candidates.extend((refusal, verified) for refusal in self._by_holder.get(holder_id, ()))

    def decide(self, key: IdentifierKey, at: datetime) -> UseDecision:
        work = self.works_by_key.get(f"{key.scheme}:{key.value}")
        candidates: list[tuple[_Refusal, bool]] = []
        if work is not None:
            self._work_candidates(work, at, candidates)
            # A recording is refused by its musical work's refusals too (never the reverse), as in lookups.
            if work.musical_work is not None:
                self._work_candidates(work.musical_work, at, candidates)
        if self._by_host and key.scheme == Scheme.URL:
            prefix = _longest_prefix(self._by_host.get(urlsplit(key.value).hostname or "", []), key.value, at)
            if prefix is not None:
                verified_at = prefix.domain_verified_at
                candidates.append((prefix, verified_at is not None and verified_at <= at))
        deciding, _pending = _decide(candidates, at) if candidates else (None, False)
        regime = self.regime_at(work.kind, at) if work is not None else USE_FIRST
        return UseDecision(work=work, refusal_id=deciding.id if deciding is not None else None, regime=regime)


def usage_context_load(
    *, keys: Iterable[IdentifierKey], purpose: str, engine: LookupEngine | None = None
) -> UsageContext:
    """The works, live claims, refusals for ``purpose`` and regimes behind ``keys``, and the musical works of the
    recordings among them with their live claims: four queries, two more when a recording is among them."""
    engine = engine or lookup_engine_for()
    values_by_scheme: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        values_by_scheme[key.scheme].add(key.value)
    works: dict[int, UsageWork] = {}
    works_by_key: dict[str, UsageWork] = {}
    seen_claims: set[int] = set()
    verified = ClaimStatus.VERIFIED.value
    rows = engine.usage_works(values_by_scheme) if values_by_scheme else ()
    for scheme, value, work_id, kind, status, claim_id, holder_id, share_bp, claim_status, decided_at in rows:
        work = works.get(work_id)
        if work is None:
            work = works[work_id] = UsageWork(id=work_id, kind=kind, status=status)
        works_by_key[f"{scheme}:{value}"] = work
        if claim_id is not None and claim_id not in seen_claims:
            seen_claims.add(claim_id)
            verified_at = decided_at if claim_status == verified else None
            work.claims.append(OwnerClaim(claim_id, holder_id, share_bp, verified_at))
    musical = _usage_musical_works(works)
    url_hosts = {urlsplit(value).hostname or "" for value in values_by_scheme.get(Scheme.URL, ())}
    lookup_works = [
        _Work(id=w.id, title="", kind=w.kind, status=w.status, claims={c.holder_id: False for c in w.claims})
        for w in [*works.values(), *musical]
    ]
    refusals = _refusals_for(lookup_works, url_hosts, purpose, timezone.now(), engine)
    regimes = list(KindRegime.objects.values_list("kind", "regime", "effective_from"))
    return UsageContext(works_by_key=works_by_key, refusals=refusals, regimes=regimes)


def _usage_musical_works(works: Mapping[int, UsageWork]) -> list[UsageWork]:
    """Attach to each recording among ``works`` its musical work, with its live claims; returns those musical works."""
    recordings = [w.id for w in works.values() if w.kind == WorkKind.AUDIO]
    if not recordings:
        return []
    links = list(
        Work.objects.filter(pk__in=recordings, musical_work__isnull=False).values_list(
            "pk", "musical_work_id", "musical_work__kind", "musical_work__status"
        )
    )
    if not links:
        return []
    musical: dict[int, UsageWork] = {}
    for recording, pk, kind, status in links:
        composition = musical.get(pk) or works.get(pk) or UsageWork(id=pk, kind=kind, status=status)
        musical[pk] = works[recording].musical_work = composition
    missing = [pk for pk in musical if pk not in works]  # a musical work also used by its ISWC has its claims
    verified = ClaimStatus.VERIFIED.value
    for claim_id, work_id, holder_id, share_bp, status, decided_at in (
        OwnershipClaim.objects.filter(work_id__in=missing)
        .exclude(status=ClaimStatus.REJECTED)
        .order_by("pk")
        .values_list("pk", "work_id", "holder_id", "share_bp", "status", "decided_at")
    ):
        verified_at = decided_at.timestamp() if status == verified and decided_at is not None else None
        musical[work_id].claims.append(OwnerClaim(claim_id, holder_id, share_bp, verified_at))
    return [composition for pk, composition in musical.items() if pk not in works]


# --- Refusal listings ---------------------------------------------------------------------


def _verified_claim_at() -> Subquery:
    return Subquery(
        OwnershipClaim.objects.filter(
            work=OuterRef("work"), holder=OuterRef("holder"), status=ClaimStatus.VERIFIED
        ).values("decided_at")[:1]
    )


def refusal_list_for_actor(*, actor: Actor) -> QuerySet[Refusal]:
    """Refusals with their events and when the filer's claim was verified, in two queries."""
    refusals = (
        Refusal.objects.select_related("work", "domain", "holder", "agent")
        .prefetch_related("events")
        .annotate(claim_verified_at=_verified_claim_at())
        .order_by("-filed_at", "-pk")
    )
    if actor.is_staff:
        return refusals
    if actor.party is None:
        return refusals.none()
    if actor.on_behalf_of is not None:
        return refusals.filter(holder=actor.on_behalf_of)
    # A society or agent also sees the refusals it filed for its members.
    return refusals.filter(Q(holder=actor.party) | Q(agent=actor.party))


def refusal_get_for_actor(*, actor: Actor, refusal_id: int) -> Refusal:
    refusal = refusal_list_for_actor(actor=actor).filter(pk=refusal_id).first()
    if refusal is None:
        raise NotFound()
    return refusal


def refusal_history(*, refusal: Refusal) -> list[dict[str, Any]]:
    """Filing, taking effect and withdrawal, in order. Taking effect is when ownership was verified."""
    events: list[dict[str, Any]] = []
    withdrawn_at = None
    for event in refusal.events.all():
        events.append({"event": event.kind, "at": event.effective_at, "recorded_at": event.recorded_at})
        if event.kind == RefusalEventKind.WITHDRAWN:
            withdrawn_at = event.effective_at
    verified_at = _ownership_verified_at(refusal)
    if verified_at is not None:
        takes_effect = max(refusal.effective_from, verified_at)
        if withdrawn_at is None or takes_effect < withdrawn_at:
            events.append({"event": "effective", "at": takes_effect, "recorded_at": verified_at})
    return sorted(events, key=lambda e: e["at"])


def _ownership_verified_at(refusal: Refusal) -> datetime | None:
    if refusal.scope == RefusalScope.URL_PREFIX:
        return refusal.domain.verified_at if refusal.domain and refusal.domain.status == "verified" else None
    if refusal.scope == RefusalScope.WORK:
        # Annotated by refusal_list_for_actor, which every listing goes through.
        verified_at: datetime | None = getattr(refusal, "claim_verified_at", None)
        return verified_at
    # A catalogue refusal is in force for the holder at once; each work follows its own claim.
    return refusal.effective_from


def lookup_caller(*, actor: Actor) -> str:
    """How a receipt names who asked: the key (not its secret), the person, or anonymous."""
    if actor.api_key is not None:
        owner = f"party:{actor.party.pk}" if actor.party is not None else f"user:{actor.user_id}"
        return f"{owner}/key:{actor.api_key.prefix}"
    if actor.user_id is not None:
        return f"user:{actor.user_id}"
    return "anonymous"


def lookup_answer_signed(
    *, actor: Actor, items: Sequence[Mapping[str, Any]], purpose: str, as_of: datetime | None
) -> dict[str, Any]:
    """The lookup response: the request, one result per item, and the registry's receipt over both."""
    from optout.receipts import receipt_sign

    body = _lookup_answer(actor=actor, items=items, purpose=purpose, as_of=as_of)
    body["receipt"] = receipt_sign(payload=body, own_payload=True)
    return body


def refusal_filers_attach(*, results: Sequence[dict[str, Any]]) -> None:
    """Say who filed each deciding refusal: the holder itself, or an agent for it (``filed_by``), in one query."""
    briefs = [r["refusal"] for r in results if r.get("refusal")]
    for result in results:
        for match in result.get("candidates") or ():
            if isinstance(match, dict) and match.get("refusal"):
                briefs.append(match["refusal"])
    if not briefs:
        return
    filers = {
        pk: (holder_id, holder_name, agent_id, agent_name, scope, work_id)
        for pk, holder_id, holder_name, agent_id, agent_name, scope, work_id in Refusal.objects.filter(
            pk__in={b["id"] for b in briefs}
        ).values_list("pk", "holder_id", "holder__name", "agent_id", "agent__name", "scope", "work_id")
    }
    for brief in briefs:
        holder_id, holder_name, agent_id, agent_name, _scope, _work = filers[brief["id"]]
        brief["filed_by"] = {
            "holder": {"id": holder_id, "name": holder_name},
            "agent": {"id": agent_id, "name": agent_name} if agent_id is not None else None,
        }
    _refusal_applies_attach(results=results, filers=filers)


def _refusal_applies_attach(*, results: Sequence[dict[str, Any]], filers: Mapping[int, tuple[Any, ...]]) -> None:
    """For a recording refused by its musical work's refusal, say so: ``"applies_to": "musical_work"`` and the
    musical work; a refusal of the recording itself (or of its owner's catalogue) ``"applies_to": "recording"``."""
    recordings = {
        r["work"]["id"] for r in results if r.get("refusal") and r.get("work") and r["work"]["kind"] == WorkKind.AUDIO
    }
    if not recordings:
        return
    links = dict(
        Work.objects.filter(pk__in=recordings, musical_work__isnull=False).values_list("pk", "musical_work_id")
    )
    owners: dict[int, set[int]] = defaultdict(set)
    for work_id, holder_id in (
        OwnershipClaim.objects.filter(work_id__in=recordings)
        .exclude(status=ClaimStatus.REJECTED)
        .values_list("work_id", "holder_id")
    ):
        owners[work_id].add(holder_id)
    titles = dict(Work.objects.filter(pk__in=set(links.values())).values_list("pk", "title"))
    for result in results:
        refusal, work = result.get("refusal"), result.get("work")
        if not refusal or not work or work["id"] not in recordings:
            continue
        holder_id, _hn, _ai, _an, scope, refused_work = filers[refusal["id"]]
        if scope == RefusalScope.WORK:
            own = refused_work == work["id"]
        else:
            # A URL prefix names the recording's own URL; a catalogue, its owner's (else the composition's owner's).
            own = scope == RefusalScope.URL_PREFIX or holder_id in owners[work["id"]]
        composition = links.get(work["id"])
        if own or composition is None:
            refusal["applies_to"] = "recording"
        else:
            refusal["applies_to"] = "musical_work"
            refusal["musical_work"] = {"id": composition, "title": titles.get(composition, "")}


def lookup_answer_signed_json(
    *, actor: Actor, items: Sequence[Mapping[str, Any]], purpose: str, as_of: datetime | None
) -> bytes:
    """``lookup_answer_signed`` as the JSON bytes the API sends, serialized once (``receipt_signed_json``)."""
    from optout.receipts import receipt_signed_json

    return receipt_signed_json(payload=_lookup_answer(actor=actor, items=items, purpose=purpose, as_of=as_of))


def _lookup_answer(
    *, actor: Actor, items: Sequence[Mapping[str, Any]], purpose: str, as_of: datetime | None
) -> dict[str, Any]:
    """The lookup response without its receipt."""
    from optout.status.selectors import lookup_batch_current
    from optout.transparency.selectors import log_checkpoint_ref
    from optout.transparency.services import log_checkpoint_for_answer

    # Named before the answer is read: every event the answer rests on is in this checkpoint's tree.
    checkpoint = log_checkpoint_ref(log_checkpoint_for_answer())
    now = timezone.now()
    at = as_of or now
    # Without as_of the maintained projection answers (one row per key); an instant asked for keeps the exact
    # event path, which any instant can be replayed on.
    if as_of is None:
        answer = lookup_batch_current(items=items, purpose=purpose, at=at)
    else:
        answer = lookup_batch(items=items, purpose=purpose, as_of=at)
    # An ISCC is also decided by the registered works near it, each read by the same path as the items.
    from optout.similar import similar_matches_attach

    def same_path(more: Sequence[Mapping[str, Any]]) -> LookupAnswer:
        if as_of is None:
            return lookup_batch_current(items=more, purpose=purpose, at=at)
        return lookup_batch(items=more, purpose=purpose, as_of=at)

    similar_matches_attach(results=answer.results, purpose=purpose, at=at, lookup=same_path)
    # A URL on a verified domain also carries the site's own signals as last observed by then (signed with the rest).
    from optout.observations import site_signals_attach

    site_signals_attach(results=answer.results, at=at)
    refusal_filers_attach(results=answer.results)
    return {
        # Each result echoes its input, so the request is signed through them; repeating the items here
        # would double what is encoded, signed and sent.
        # Instants in UTC (RFC 3339 for every date: before 1908, Seoul's zone has a seconds offset).
        "request": {"purpose": purpose, "as_of": rfc3339(at), "item_count": len(items)},
        "results": answer.results,
        "issued_at": rfc3339(now),
        "caller": lookup_caller(actor=actor),
        "last_refusal_event_id": answer.last_refusal_event_id,
        "checkpoint": checkpoint,
    }
