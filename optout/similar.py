"""Deciding an ISCC by the registered works near it: lookups and usage manifests, by one rule.

The rule (README, "Near copies"): the candidates of an item given as an ISCC are the work that holds the very
same ISCC (``match: exact``, distance 0) and every work whose Content-Code of the same modality lies within the
threshold in force at the instant asked about (``match: similar``), nearest first, ties to the older work.

- If any candidate is refused then, the nearest refused one decides: the item is refused (a refusing work
  within the threshold refuses the item).
- Otherwise the nearest candidate decides: its regime, and its owners (or escrow) for the compensation.
- Without candidates the item is what an unregistered identifier is.

Each candidate's status is read exactly as if it had been looked up by its own ISCC, through the same path
(the projection now, the events for an earlier instant), so a near copy is answered by the same code as an
exact one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from optout.selectors import LookupAnswer, LookupStatus, UsageContext, usage_context_load
from registry.identifiers import IdentifierKey, Scheme
from registry.models import Identifier
from registry.similarity import ContentUnit, SimilarHit, ThresholdHistory, content_unit_of, similar_search

_ISCC_PREFIX = f"{Scheme.ISCC}:"


@dataclass(frozen=True)
class _Candidate:
    work_id: int
    key: str  # "iscc:ISCC:..." of the identifier that matched
    distance: int
    exact: bool


def _candidates(
    *,
    units: Sequence[ContentUnit],
    thresholds: Sequence[int],
    exact_work_ids: Sequence[int | None],
    own_keys: Sequence[str],
) -> list[list[_Candidate]]:
    """Per unit: the exact work first (if any), then one entry per other work within its threshold, nearest
    first. Identifiers removed since the search base was built are read back and dropped here."""
    hits: list[list[SimilarHit]] = similar_search(units=units, thresholds=thresholds)
    wanted = {hit.identifier_id for unit_hits in hits for hit in unit_hits}
    live: dict[int, tuple[str, int]] = {
        identifier_id: (f"{scheme}:{value}", work_id)
        for identifier_id, scheme, value, work_id in Identifier.objects.filter(id__in=wanted).values_list(
            "id", "scheme", "value", "work_id"
        )
    }
    answer: list[list[_Candidate]] = []
    for unit_hits, exact_work_id, own_key in zip(hits, exact_work_ids, own_keys, strict=True):
        found: list[_Candidate] = []
        seen: set[int] = set()
        if exact_work_id is not None:
            found.append(_Candidate(work_id=exact_work_id, key=own_key, distance=0, exact=True))
            seen.add(exact_work_id)
        for hit in unit_hits:
            identifier = live.get(hit.identifier_id)
            if identifier is None or identifier[1] in seen:
                continue
            seen.add(identifier[1])
            found.append(_Candidate(work_id=identifier[1], key=identifier[0], distance=hit.distance, exact=False))
        answer.append(found)
    return answer


# --- lookups --------------------------------------------------------------------------------------------------


def similar_matches_attach(
    *,
    results: list[dict[str, Any]],
    purpose: str,
    at: datetime,
    lookup: Callable[[Sequence[Mapping[str, Any]]], LookupAnswer],
) -> None:
    """Decide every ISCC result by the rule above, in place, adding ``match``, ``distance`` and ``candidates``.

    ``lookup`` answers items the way the results were answered (the projection, or the events as of ``at``).
    """
    positions: list[int] = []
    units: list[ContentUnit] = []
    for position, result in enumerate(results):
        key = result.get("key")
        if result["status"] == LookupStatus.INVALID or not key or not key.startswith(_ISCC_PREFIX):
            continue
        result["distance"] = 0 if result["work"] is not None else None
        result["candidates"] = []
        unit = content_unit_of(key[len(_ISCC_PREFIX) :])
        if unit is not None:
            positions.append(position)
            units.append(unit)
    if not positions:
        return
    history = ThresholdHistory()
    found = _candidates(
        units=units,
        thresholds=[history.at(unit.modality, at) for unit in units],
        exact_work_ids=[results[p]["work"]["id"] if results[p]["work"] is not None else None for p in positions],
        own_keys=[results[p]["key"] for p in positions],
    )
    similar_keys = sorted({c.key for candidates in found for c in candidates if not c.exact})
    answers: dict[str, dict[str, Any]] = {}
    if similar_keys:
        items = [{"scheme": Scheme.ISCC, "value": key[len(_ISCC_PREFIX) :]} for key in similar_keys]
        answers = {result["key"]: result for result in lookup(items).results}
    limit = settings.SIMILARITY_MAX_CANDIDATES
    for position, candidates in zip(positions, found, strict=True):
        result = results[position]
        shown: list[tuple[_Candidate, dict[str, Any]]] = []
        for candidate in candidates:
            answer = result if candidate.exact else answers.get(candidate.key)
            # A candidate whose identifier vanished between the search and its lookup is no candidate.
            if answer is not None and answer.get("work") is not None:
                shown.append((candidate, answer))
        if not shown:
            continue
        refused = next(((c, a) for c, a in shown if a["status"] == LookupStatus.REFUSED), None)
        deciding, deciding_answer = refused or shown[0]
        listed = shown[:limit]
        if all(c is not deciding for c, _a in listed):
            listed[-1] = (deciding, deciding_answer)
        result["candidates"] = [
            {
                "work": answer["work"],
                "match": "exact" if candidate.exact else "similar",
                "distance": candidate.distance,
                "status": answer["status"],
                "refusal": answer["refusal"],
            }
            for candidate, answer in listed
        ]
        result["match"] = "exact" if deciding.exact else "similar"
        result["distance"] = deciding.distance
        if not deciding.exact:
            for field in ("status", "may_train", "compensation", "work", "refusal", "regime"):
                result[field] = deciding_answer[field]
        result["pending_refusal"] = any(a["pending_refusal"] for _c, a in shown)


# --- usage manifests -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageMatch:
    """The identifier a manifest line is decided by: its own, or a near copy's; with how it matched."""

    key: IdentifierKey
    match: str  # "exact", "similar", or "" (no registered work)
    distance: int | None


def usage_similar_resolve(*, lines: Sequence[tuple[IdentifierKey, datetime]], purpose: str) -> list[UsageMatch]:
    """For manifest lines given as ISCCs, with the instants of use: the key each is decided by, by the rule above.

    A line matched by a near copy is then decided, priced and paid exactly as a line naming that copy's own
    ISCC (so both usage engines decide it alike); its ``match`` and ``distance`` are recorded on the line.
    """
    if not lines:
        return []
    own_keys = [f"{key.scheme}:{key.value}" for key, _at in lines]
    units = [content_unit_of(key.value) if key.scheme == Scheme.ISCC else None for key, _at in lines]
    searched = [i for i, unit in enumerate(units) if unit is not None]
    searched_units = [unit for unit in units if unit is not None]
    history = ThresholdHistory()
    own_context = usage_context_load(keys=[key for key, _at in lines], purpose=purpose)
    exact_ids = [work.id if (work := own_context.works_by_key.get(k)) else None for k in own_keys]
    found = _candidates(
        units=searched_units,
        # Searched as wide as any instant needs; each line then keeps what was within the threshold of its use.
        thresholds=[history.widest(unit.modality) for unit in searched_units],
        exact_work_ids=[exact_ids[i] for i in searched],
        own_keys=[own_keys[i] for i in searched],
    )
    by_line = dict(zip(searched, found, strict=True))
    candidate_keys = {c.key for candidates in found for c in candidates}
    context: UsageContext = (
        usage_context_load(keys=[_key(k) for k in candidate_keys], purpose=purpose) if candidate_keys else own_context
    )
    matches: list[UsageMatch] = []
    for index, (key, used_at) in enumerate(lines):
        unit = units[index]
        candidates = by_line.get(index, [])
        if unit is not None:
            threshold = history.at(unit.modality, used_at)
            candidates = [c for c in candidates if c.distance <= threshold]
        if not candidates:
            exact = exact_ids[index] is not None
            matches.append(UsageMatch(key=key, match="exact" if exact else "", distance=0 if exact else None))
            continue
        deciding = next((c for c in candidates if context.decide(_key(c.key), used_at).refusal_id), candidates[0])
        matches.append(
            UsageMatch(
                key=_key(deciding.key), match="exact" if deciding.exact else "similar", distance=deciding.distance
            )
        )
    return matches


def _key(text: str) -> IdentifierKey:
    scheme, _sep, value = text.partition(":")
    return IdentifierKey(scheme=scheme, value=value)
