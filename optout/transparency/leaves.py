"""Which events the transparency log records, and the leaf each becomes.

A leaf is the RFC 8785 (JCS) serialization of

    {"v": 1, "id": <audit event id>, "kind": "<kind>", "time": "<RFC 3339, UTC>", "subject": {...}}

``subject`` holds the keys that say what changed: ids of works, claims, refusals, domains and parties, identifier
keys, URL prefixes, purposes, kinds, instants. Nothing else from the event is copied: no actor, no person, no free
text (a claim's or dispute's reason stays in the audit log), so a leaf says no more than the public work page.
Each kind names the data keys it takes, and a test holds this table to the events the services record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.dates import rfc3339
from core.jcs import canonical_json

LEAF_VERSION = 1
# C2SP tlog-tiles entry bundles prefix each entry with its length as a big-endian uint16.
MAX_LEAF_BYTES = 65535


@dataclass(frozen=True)
class LeafKind:
    kind: str
    # The subject key the event's object id is written under ("" when the object is not a subject key).
    object_key: str
    # The event data keys copied into the subject.
    data_keys: tuple[str, ...]


# Audit code -> the leaf it becomes. Every event that changes what a lookup answers or who is paid.
LOGGED: dict[str, LeafKind] = {
    "optout.refusal.filed": LeafKind(
        "refusal.filed", "refusal", ("holder", "scope", "purpose", "work", "url_prefix", "effective_from")
    ),
    "optout.refusal.withdrawn": LeafKind("refusal.withdrawn", "refusal", ("effective_at",)),
    "optout.refusal.rekeyed": LeafKind("refusal.rekeyed", "refusal", ("url_prefix_before", "url_prefix")),
    "optout.regime.set": LeafKind("regime.set", "", ("kind", "regime", "effective_from")),
    "registry.work.registered": LeafKind("work.registered", "work", ("holder", "identifiers", "claim", "share_bp")),
    "registry.work.identifier_added": LeafKind("identifier.added", "work", ("identifier",)),
    "registry.work.identifier_merged": LeafKind("identifier.merged", "work", ("identifier",)),
    "registry.claim.verified": LeafKind("claim.verified", "claim", ("work", "holder", "share_bp")),
    "registry.claim.rejected": LeafKind("claim.rejected", "claim", ("work", "holder")),
    "registry.claim.accepted_for_review": LeafKind("claim.accepted_for_review", "claim", ("work", "holder")),
    "registry.work.disputed": LeafKind("dispute.opened", "work", ()),
    "registry.work.dispute_resolved": LeafKind("dispute.resolved", "work", ("status",)),
    "registry.identifier.conflict_opened": LeafKind(
        "identifier_conflict.opened", "conflict", ("identifier", "work", "kept_by")
    ),
    "registry.identifier.conflict_resolved": LeafKind(
        "identifier_conflict.resolved", "conflict", ("identifier", "resolution", "work", "kept_by")
    ),
    "registry.mandate.conflict_opened": LeafKind("mandate_conflict.opened", "conflict", ("kind", "member", "work")),
    "registry.mandate.conflict_resolved": LeafKind("mandate_conflict.resolved", "conflict", ()),
    "registry.domain.verified": LeafKind("domain.verified", "domain", ("holder", "origin")),
}

# A refusal or withdrawal dated later than it was filed takes effect then; beat appends this leaf at that instant.
TOOK_EFFECT = {"refusal.filed": "refusal.took_effect", "refusal.withdrawn": "withdrawal.took_effect"}
# The subject key of each kind that carries the instant a filed event takes effect.
EFFECTIVE_KEYS = {"refusal.filed": "effective_from", "refusal.withdrawn": "effective_at"}

INSTANT_KEYS = frozenset({"effective_from", "effective_at"})

KINDS = sorted({leaf.kind for leaf in LOGGED.values()} | set(TOOK_EFFECT.values()))


def leaf_subject(*, code: str, object_id: str, data: dict[str, Any]) -> dict[str, Any]:
    leaf = LOGGED[code]
    subject: dict[str, Any] = {}
    if leaf.object_key:
        subject[leaf.object_key] = int(object_id) if object_id.isdigit() else object_id
    for key in leaf.data_keys:
        value = data.get(key)
        if value in (None, "", []):
            continue
        # Instants in one form, as the leaf's own time: RFC 3339 in UTC.
        subject[key] = rfc3339(datetime.fromisoformat(value)) if key in INSTANT_KEYS else value
    return subject


def leaf_bytes(*, event_id: int, kind: str, time: datetime, subject: dict[str, Any]) -> bytes:
    data = canonical_json({"v": LEAF_VERSION, "id": event_id, "kind": kind, "time": rfc3339(time), "subject": subject})
    if len(data) > MAX_LEAF_BYTES:
        raise ValueError(f"a {kind} leaf of {len(data)} bytes exceeds the tile entry limit of {MAX_LEAF_BYTES}")
    return data
