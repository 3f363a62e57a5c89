"""Escrow release: money held for a work (or for an identifier nobody had registered) goes to its owners
once they are known.

A hold is the held part of one manifest line. It stands for ``open_bp`` of the work: the whole work when
no owner was known, or the share no verified claim covered. When claims are verified, each open hold is
split between the claims it has not paid yet (by share) and, if those still do not cover it, the part that
stays held; the parts sum exactly (largest remainder). Rows are locked and updated in the same transaction
as the ledger entry, so a hold is released at most once (ledger invariant 6); PostgreSQL backs this up by
refusing any escrow account whose balance would turn into a debit (migration 0004).

A hold for an identifier nobody had registered (``unmatched_held``) that a recording naming a musical work registers
later is divided as usage divides such a use (``musical_work_part``): by the recording split in force at the use's
``used_at``, the musical work's side released to the musical work's verified owners and the recording's to the
recording's, each by its own work's shares; what a side's owners do not cover stays held in the identifier's escrow,
for that side's work, and is released when that work's owners are verified. Which side a release paid is read from
the claims its ``allocation`` names (claims belong to one work).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from compensation.ledger.allocation import allocate_largest_remainder
from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import AccountKind, EntryKind, EscrowRelease, ManifestLine, RecordingSplit, UsageManifest
from compensation.notifications import escrow_released_notify
from compensation.usage.decisions import FULL_SHARE_BP, musical_work_part
from core.actors import Actor
from core.locks import advisory_lock
from registry.audit import audit_record
from registry.models import ClaimStatus, Identifier, OwnershipClaim, Work, WorkStatus

_BATCH = 5_000
_LOCK = "compensation.escrow"


def escrow_lock(*, exclusive: bool) -> None:
    """Order chunks of manifests (shared) against escrow releases (exclusive), for this transaction.

    A chunk decides lines as held from the claims it reads, and commits a moment later. A claim verified
    in between would start a release that cannot see those holds yet. The release waits here for chunks in
    flight, and chunks that start after it see the verified claim and pay the owner directly.
    """
    advisory_lock(_LOCK, shared=not exclusive)


def _release_key(work_id: int, line_ids: list[int], claim_ids: list[int]) -> str:
    text = f"release:work:{work_id}:lines:{line_ids[0]}-{line_ids[-1]}:{len(line_ids)}:claims:" + ".".join(
        map(str, claim_ids)
    )
    if len(text) <= 200:
        return text
    return f"release:work:{work_id}:" + hashlib.sha256(text.encode()).hexdigest()


class _SplitHold(NamedTuple):
    """How an unregistered identifier's hold divides between the recording now registering it and its musical work."""

    recording_id: int
    musical_work_id: int
    musical_work_bp: int  # the split in force at the use


def _splits_at() -> Callable[[str, datetime | None], int]:
    """The musical work's share of a use of a recording of a kind at an instant (the latest split started by then)."""
    starts: dict[str, list[datetime]] = defaultdict(list)
    shares: dict[str, list[int]] = defaultdict(list)
    for kind, share, effective_from in RecordingSplit.objects.order_by("effective_from", "pk").values_list(
        "kind", "musical_work_bp", "effective_from"
    ):
        starts[kind].append(effective_from)
        shares[kind].append(share)

    def at(kind: str, when: datetime | None) -> int:
        index = bisect.bisect_right(starts.get(kind, []), when) - 1 if when is not None else -1
        return shares[kind][index] if index >= 0 else 0

    return at


def escrow_release_for_work(*, work_id: int, batch: int = _BATCH) -> int:
    """Release what is held for ``work_id`` to its verified owners; returns the micro-won released.

    Covers holds of lines that matched the work (unclaimed or disputed shares) and of lines whose
    identifier matched no work then and is one of the work's identifiers now, or, for a musical work, one of its
    recordings' (their musical-work side, by the split in force at use). Nothing happens while the
    work is disputed or has no verified owner. Safe to run any number of times.
    """
    released_total = _release_for_work(work_id=work_id, batch=batch)
    # A recording registered or verified can free its musical work's side of uses held for its identifiers, which
    # the musical work's owners, verified long before, would otherwise wait for.
    musical_work_id = Work.objects.filter(pk=work_id).values_list("musical_work_id", flat=True).first()
    if musical_work_id is not None:
        released_total += _release_for_work(work_id=musical_work_id, batch=batch)
    return released_total


def _release_for_work(*, work_id: int, batch: int) -> int:
    released_total = 0
    after_pk = 0
    while True:
        with transaction.atomic():
            escrow_lock(exclusive=True)
            # One release per work at a time; claims cannot change under it (they lock the work too).
            work = Work.objects.select_for_update().filter(pk=work_id).first()
            if work is None or work.status == WorkStatus.DISPUTED:
                return released_total
            claims = list(
                OwnershipClaim.objects.filter(work=work, status=ClaimStatus.VERIFIED)
                .order_by("pk")
                .values_list("pk", "holder_id", "share_bp")
            )
            if not claims:
                return released_total
            # Identifier key -> the recording it names now, for the holds a recording split divides.
            recordings: dict[str, tuple[int, int, str]] = {
                f"{scheme}:{value}": (recording_id, musical_work_id, kind)
                for scheme, value, recording_id, musical_work_id, kind in Identifier.objects.filter(
                    Q(work=work) | Q(work__musical_work=work), work__musical_work__isnull=False
                ).values_list("scheme", "value", "work_id", "work__musical_work_id", "work__kind")
                if musical_work_id is not None
            }
            keys = [
                f"{scheme}:{value}"
                for scheme, value in Identifier.objects.filter(work=work).values_list("scheme", "value")
            ]
            own_count = len(keys)
            keys.extend(key for key, (recording_id, _m, _k) in recordings.items() if recording_id != work.pk)
            holds = list(
                ManifestLine.objects.select_for_update()
                .filter(Q(work_id=work_id) | Q(work__isnull=True, key__in=keys), hold_open=True, pk__gt=after_pk)
                .order_by("pk")[:batch]
            )
            if not holds:
                return released_total
            after_pk = holds[-1].pk
            splits: dict[int, _SplitHold] = {}
            split_at = _splits_at() if recordings else None
            for line in holds:
                if line.work_id is not None or line.key not in recordings:
                    continue
                recording_id, musical_work_id, kind = recordings[line.key]
                share = split_at(kind, line.used_at) if split_at is not None else 0
                if share:
                    splits[line.pk] = _SplitHold(recording_id, musical_work_id, share)
            # Every claim of the work, whatever its status now: which of a split hold's payments were this side's.
            work_claims = dict(OwnershipClaim.objects.filter(work=work).values_list("pk", "share_bp"))
            released_total += _release_batch(work, claims, holds, splits, frozenset(keys[:own_count]), work_claims)


def _side_of_hold(
    work: Work, line: ManifestLine, split: _SplitHold | None, own_keys: frozenset[str], work_claims: dict[int, int]
) -> tuple[int, int] | None:
    """What of ``line``'s hold is ``work``'s and still open: (micro-won, basis points of the work), or None if
    nothing of it is the work's (a recording's use made before any split, seen from its musical work)."""
    open_amount = line.held_micro - line.released_micro
    if split is None:
        if line.work_id is None and line.key not in own_keys:
            return None
        return open_amount, line.open_bp
    # Divided as usage divides the use: the musical work's part to the micro-won, the recording the rest.
    musical = musical_work_part(line.amount_micro or line.held_micro, split.musical_work_bp)
    side_amount = musical if work.pk == split.musical_work_id else line.held_micro - musical
    # The work's claims this hold has already paid (a claim is one work's): their parts and shares.
    paid = [(entry[1], int(entry[2])) for entry in line.allocation if entry[1] in work_claims]
    released = sum(part for _claim, part in paid)
    covered = sum(work_claims[claim] for claim, _part in paid)
    return min(side_amount - released, open_amount), max(FULL_SHARE_BP - covered, 0)


def _release_batch(
    work: Work,
    claims: list[tuple[int, int, int]],
    holds: list[ManifestLine],
    splits: dict[int, _SplitHold],
    own_keys: frozenset[str],
    work_claims: dict[int, int],
) -> int:
    debits: dict[int, int] = defaultdict(int)  # escrow account id -> amount
    credits: dict[int, int] = defaultdict(int)  # holder id -> amount
    changed: list[tuple[ManifestLine, list[tuple[int, int, int]]]] = []
    claims_paid: set[int] = set()
    for line in holds:
        paid_claims = {entry[1] for entry in line.allocation}
        new = [claim for claim in claims if claim[0] not in paid_claims]
        split = splits.get(line.pk)
        side = _side_of_hold(work, line, split, own_keys, work_claims)
        if side is None:
            continue
        open_amount, open_bp = side
        if not new or open_amount <= 0 or line.held_account_id is None:
            continue
        new_bp = sum(share for _pk, _holder, share in new)
        weights = [share for _pk, _holder, share in new]
        if new_bp < open_bp:
            weights.append(open_bp - new_bp)
        parts = allocate_largest_remainder(total=open_amount, weights=weights)
        paid = [(holder, pk, part) for (pk, holder, _share), part in zip(new, parts, strict=False) if part]
        amount = sum(part for _holder, _pk, part in paid)
        # Even a claim whose part rounds to nothing has now been paid its share of this hold.
        line.allocation = [
            *line.allocation,
            *([holder, pk, 0, None] for pk, holder, _s in new if not any(p[1] == pk for p in paid)),
        ]
        if split is None:
            line.open_bp = max(line.open_bp - new_bp, 0)
        else:
            # Each side keeps its own open share (read back from the claims paid); the row's is what stays open of
            # the recording's side, the side its identifier names.
            line.open_bp = open_bp - new_bp if work.pk == split.recording_id else line.open_bp
        line.released_micro += amount
        line.hold_open = line.released_micro < line.held_micro
        if amount:
            debits[line.held_account_id] += amount
            for holder, pk, part in paid:
                credits[holder] += part
                claims_paid.add(pk)
        changed.append((line, paid))
    if not changed:
        return 0
    total = sum(debits.values())
    entry_id: int | None = None
    if total:
        payables = accounts_ensure(keys=[AccountKey(AccountKind.HOLDER_PAYABLE, holder) for holder in credits])
        line_ids = [line.pk for line, _paid in changed]
        claim_ids = sorted(claims_paid)
        hold_entries = sorted({line.entry_id for line, _paid in changed if line.entry_id is not None})
        source: dict[str, Any] = {
            "work": work.pk,
            "claims": claim_ids,
            "lines": len(line_ids),
            "hold_entries": hold_entries,
        }
        posting = Posting(
            idempotency_key=_release_key(work.pk, line_ids, claim_ids),
            kind=EntryKind.RELEASE,
            effective_at=timezone.now(),
            lines=[
                *sorted(debits.items()),
                *(
                    (payables[AccountKey(AccountKind.HOLDER_PAYABLE, holder)].pk, -amount)
                    for holder, amount in sorted(credits.items())
                ),
            ],
            memo=f"escrow released to the owners of work {work.pk}",
            source=source,
        )
        entry_id = ledger_post_entries(postings=[posting])[posting.idempotency_key]
        EscrowRelease.objects.create(
            work=work, entry_id=entry_id, claims=claim_ids, lines=len(line_ids), amount_micro=total
        )
        audit_record(
            code="compensation.escrow.released",
            actor=Actor.system(),
            target=work,
            data={"entry": entry_id, "amount_micro": total, "lines": len(line_ids), "claims": claim_ids},
        )
        escrow_released_notify(work=work, entry_id=entry_id, credits=dict(credits))
    for line, paid in changed:
        line.allocation = [*line.allocation, *([holder, pk, part, entry_id] for holder, pk, part in paid)]
    ManifestLine.objects.bulk_update(
        [line for line, _paid in changed], ["allocation", "open_bp", "released_micro", "hold_open"], batch_size=1000
    )
    UsageManifest.objects.filter(pk__in={line.manifest_id for line, _paid in changed}).update(summary=None)
    return total
