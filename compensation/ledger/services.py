"""The one writer of the ledger: balanced, idempotent, append-only postings.

Every posting carries an idempotency key. Posting the same key again returns the entry already
there and writes nothing, however often a task runs or crashes (ledger invariant 3); posting it with
other lines is an error. The database backs the rules up: on PostgreSQL a deferred trigger refuses an
unbalanced entry at commit and others refuse UPDATE, DELETE and TRUNCATE (migration 0002).

Posting is checked in Python, the same on every database; only the inserts differ, behind one seam: a
``LedgerWriter`` (the ORM's, or PostgreSQL's set-based one), chosen by ``ledger_writer_for``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from django.db import connection as default_connection
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.errors import LedgerError
from compensation.models import (
    ESCROW_ACCOUNT_KINDS,
    PARTY_ACCOUNT_KINDS,
    Account,
    AccountKind,
    EntryKind,
    LedgerEntry,
    LedgerLine,
)
from compensation.settlement.periods import books_closed, period_lock
from compensation.unclaimed.services import unclaimed_notices_record
from core.actors import Actor, require_staff
from core.errors import InvalidInput
from registry.audit import audit_record
from registry.models import Party

_BIGINT_MAX = 2**63 - 1
# Bounds the parameters of one IN (...) list; ingestion chunks are smaller than this anyway.
_LOOKUP_CHUNK = 5_000

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = _LOOKUP_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- Accounts ------------------------------------------------------------------------------


class AccountKey(NamedTuple):
    """What identifies an account: its kind, its party (for payables and receivables), its escrow key."""

    kind: str
    party_id: int | None = None
    escrow_key: str = ""


def _account_key_check(key: AccountKey) -> None:
    if key.kind not in AccountKind.values:
        raise LedgerError(_("Unknown account kind."), code="invalid_account", extra={"account": list(key)})
    if key.kind in PARTY_ACCOUNT_KINDS and key.party_id is None:
        raise LedgerError(_("This account belongs to a party."), code="invalid_account", extra={"account": list(key)})
    if key.kind in ESCROW_ACCOUNT_KINDS and (key.party_id is not None or not key.escrow_key):
        raise LedgerError(
            _("An escrow account is keyed by what it holds for, not by a party."),
            code="invalid_account",
            extra={"account": list(key)},
        )


def _accounts_fetch(keys: Sequence[AccountKey]) -> dict[AccountKey, Account]:
    wanted = set(keys)
    groups: dict[tuple[str, bool], tuple[set[int], set[str]]] = {}
    for key in wanted:
        party_ids, escrow_keys = groups.setdefault((key.kind, key.party_id is not None), (set(), set()))
        if key.party_id is not None:
            party_ids.add(key.party_id)
        escrow_keys.add(key.escrow_key)
    # One query: a branch per (kind, with or without party); exact keys are picked out below.
    condition = Q()
    for (kind, has_party), (party_ids, escrow_keys) in groups.items():
        # any_of binds each set as one array: a chunk of a manifest ensures thousands of escrow accounts.
        party_filter = Q(party__id__any_of=frozenset(party_ids)) if has_party else Q(party__isnull=True)
        condition |= Q(kind=kind, escrow_key__any_of=frozenset(escrow_keys)) & party_filter
    found: dict[AccountKey, Account] = {}
    for account in Account.objects.filter(condition):
        key = AccountKey(account.kind, account.party_id, account.escrow_key)
        if key in wanted:
            found[key] = account
    return found


def accounts_ensure(*, keys: Iterable[AccountKey]) -> dict[AccountKey, Account]:
    """The accounts for ``keys``, creating the missing ones; a constant number of queries for any number.

    Race-safe: two workers creating the same account insert it once (ON CONFLICT DO NOTHING) and
    both read the same row.
    """
    wanted = list(dict.fromkeys(AccountKey(*k) for k in keys))
    if not wanted:
        return {}
    for key in wanted:
        _account_key_check(key)
    party_kinds_needed: dict[int, str] = {
        k.party_id: PARTY_ACCOUNT_KINDS[k.kind]
        for k in wanted
        if k.kind in PARTY_ACCOUNT_KINDS and k.party_id is not None
    }
    if party_kinds_needed:
        actual = dict(Party.objects.filter(pk__in=party_kinds_needed).values_list("pk", "kind"))
        for party_id, party_kind in party_kinds_needed.items():
            if actual.get(party_id) != party_kind:
                raise LedgerError(
                    _("A receivable belongs to a lab and a payable to a rights holder."),
                    code="invalid_account",
                    extra={"party": party_id},
                )
    with transaction.atomic():
        found = _accounts_fetch(wanted)
        # Sorted like postings, so concurrent workers never wait on each other in a cycle.
        missing = sorted((k for k in wanted if k not in found), key=lambda k: (k.kind, k.party_id or 0, k.escrow_key))
        if missing:
            Account.objects.bulk_create(
                [Account(kind=k.kind, party_id=k.party_id, escrow_key=k.escrow_key) for k in missing],
                ignore_conflicts=True,
            )
            found.update(_accounts_fetch(missing))
    return found


def account_get_or_create(*, kind: str, party: Party | None = None, escrow_key: str = "") -> Account:
    key = AccountKey(kind, party.pk if party is not None else None, escrow_key)
    return accounts_ensure(keys=[key])[key]


# --- Postings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posting:
    """One entry to post: lines are ``(account or account id, amount in micro-won)``."""

    idempotency_key: str
    kind: str
    effective_at: datetime
    lines: Sequence[tuple[Account | int, int]]
    memo: str = ""
    source: dict[str, Any] | None = None
    reverses_id: int | None = None


@dataclass(frozen=True)
class _Checked:
    key: str
    kind: str
    effective_at: datetime
    lines: tuple[tuple[int, int], ...]  # (account id, amount), sorted: the entry's identity with its key
    memo: str
    source: dict[str, Any]
    reverses_id: int | None
    unsorted_lines: tuple[tuple[int, int], ...]
    # The date the caller asked for, when a closed period moved the entry to the open one.
    requested_at: datetime | None = None

    def same_effect(
        self,
        kind: str,
        effective_at: datetime,
        reverses_id: int | None,
        lines: Iterable[Any],
        moved_from: str | None = None,
    ) -> bool:
        asked = self.requested_at or self.effective_at
        same_date = effective_at == asked or (moved_from is not None and moved_from == asked.isoformat())
        return (
            self.kind == kind and same_date and self.reverses_id == reverses_id and self.lines == tuple(sorted(lines))
        )


def _check(posting: Posting) -> _Checked:
    key = posting.idempotency_key
    if not key or len(key) > 200:
        raise LedgerError(_("An idempotency key has 1 to 200 characters."), code="invalid_posting")
    where = {"idempotency_key": key}
    if posting.kind not in EntryKind.values:
        raise LedgerError(_("Unknown entry kind."), code="invalid_posting", extra=where)
    if (posting.kind == EntryKind.REVERSAL) != (posting.reverses_id is not None):
        raise LedgerError(
            _("A reversal, and only a reversal, names the entry it reverses."), code="invalid_posting", extra=where
        )
    if timezone.is_naive(posting.effective_at):
        raise LedgerError(_("effective_at needs a time zone."), code="invalid_posting", extra=where)
    lines: list[tuple[int, int]] = []
    for account, amount in posting.lines:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LedgerError(_("Amounts are integers in micro-won."), code="unbalanced", extra=where)
        if amount == 0 or abs(amount) > _BIGINT_MAX:
            raise LedgerError(_("A line moves a non-zero amount."), code="unbalanced", extra=where)
        account_id = account.pk if isinstance(account, Account) else account
        if not isinstance(account_id, int):
            raise LedgerError(_("A line needs a saved account."), code="invalid_account", extra=where)
        lines.append((account_id, amount))
    if len(lines) < 2 or sum(amount for _account, amount in lines) != 0:
        raise LedgerError(_("An entry has at least two lines that sum to zero."), code="unbalanced", extra=where)
    return _Checked(
        key=key,
        kind=posting.kind,
        effective_at=posting.effective_at,
        lines=tuple(sorted(lines)),
        memo=posting.memo,
        source=dict(posting.source or {}),
        reverses_id=posting.reverses_id,
        unsorted_lines=tuple(lines),
    )


class _Stored(NamedTuple):
    id: int
    kind: str
    effective_at: datetime
    reverses_id: int | None
    # Where a closed period moved the entry from (settlement/periods.py), as the caller asked for it.
    moved_from: str | None


def _conflict(key: str) -> LedgerError:
    return LedgerError(
        _("This idempotency key was already posted with other lines."),
        code="idempotency_conflict",
        extra={"idempotency_key": key},
    )


# --- The writers: the seam between the databases -------------------------------------------------------------


class LedgerWriter(Protocol):
    """Inserts checked entries and their lines: what the ledger does differently on each database.

    ``entries_insert`` inserts the entries whose idempotency keys are new, skipping any that breaks a unique rule
    (an earlier key, a second reversal of one entry), and answers ``{key: id}`` of those it inserted;
    ``lines_insert`` inserts ``(entry id, account id, amount)`` rows. Everything else (checking, idempotency,
    closed periods) is ``_post``'s, the same on every database. ``ledger_writer_for`` chooses the database's own;
    ``ledger_writers`` lists every writer that runs on it, which ``tests/compensation/test_ledger_writers.py``
    holds to one table of cases.
    """

    name: str

    def entries_insert(self, ordered: list[_Checked]) -> dict[str, int]: ...

    def lines_insert(self, lines: list[tuple[int, int, int]]) -> None: ...


class OrmLedgerWriter:
    """The ORM's bulk inserts: every database, and SQLite's writer."""

    name = "orm"

    def entries_insert(self, ordered: list[_Checked]) -> dict[str, int]:
        # INSERT OR IGNORE (ON CONFLICT DO NOTHING), then tell ours apart. Lines are written in the same
        # transaction as their entry, so an entry still without lines is one this call inserted.
        LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    idempotency_key=c.key,
                    kind=c.kind,
                    effective_at=c.effective_at,
                    memo=c.memo,
                    source=c.source,
                    reverses_id=c.reverses_id,
                )
                for c in ordered
            ],
            ignore_conflicts=True,
        )
        has_lines = Exists(LedgerLine.objects.filter(entry=OuterRef("pk")))
        inserted: dict[str, int] = {}
        for chunk in _chunks([c.key for c in ordered]):
            rows = LedgerEntry.objects.alias(has_lines=has_lines).filter(idempotency_key__in=chunk, has_lines=False)
            inserted.update(rows.order_by().values_list("idempotency_key", "id"))
        return inserted

    def lines_insert(self, lines: list[tuple[int, int, int]]) -> None:
        if lines:
            LedgerLine.objects.bulk_create(
                [
                    LedgerLine(entry_id=entry_id, account_id=account_id, amount_micro=amount)
                    for entry_id, account_id, amount in lines
                ]
            )


# PostgreSQL: one statement for any number of entries, reporting exactly the rows it inserted. ON CONFLICT
# DO NOTHING skips a key posted before, or posted by a concurrent worker (it waits for that one's commit).
_PG_INSERT_ENTRIES = """
    INSERT INTO compensation_ledgerentry (idempotency_key, kind, effective_at, created_at, memo, source, reverses_id)
    SELECT posted.key, posted.kind, posted.effective_at, %s, posted.memo, posted.source::jsonb, posted.reverses_id
      FROM unnest(%s::varchar[], %s::varchar[], %s::timestamptz[], %s::text[], %s::text[], %s::bigint[])
           WITH ORDINALITY AS posted(key, kind, effective_at, memo, source, reverses_id, position)
     ORDER BY posted.position
        ON CONFLICT DO NOTHING
    RETURNING idempotency_key, id
"""
_PG_INSERT_LINES = """
    INSERT INTO compensation_ledgerline (entry_id, account_id, amount_micro)
    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])
"""


class PostgresLedgerWriter:
    """One ``INSERT ... SELECT unnest(...)`` per table, whatever the number of entries: PostgreSQL's writer."""

    name = "postgresql"

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def entries_insert(self, ordered: list[_Checked]) -> dict[str, int]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                _PG_INSERT_ENTRIES,
                [
                    timezone.now(),
                    [c.key for c in ordered],
                    [c.kind for c in ordered],
                    [c.effective_at for c in ordered],
                    [c.memo for c in ordered],
                    [json.dumps(c.source) for c in ordered],
                    [c.reverses_id for c in ordered],
                ],
            )
            return {key: int(entry_id) for key, entry_id in cursor.fetchall()}

    def lines_insert(self, lines: list[tuple[int, int, int]]) -> None:
        if not lines:
            return
        with self.connection.cursor() as cursor:
            entry_ids, account_ids, amounts = (list(column) for column in zip(*lines, strict=True))
            cursor.execute(_PG_INSERT_LINES, [entry_ids, account_ids, amounts])


_ORM_WRITER = OrmLedgerWriter()


def ledger_writer_for(connection: BaseDatabaseWrapper = default_connection) -> LedgerWriter:
    """The writer for ``connection``'s database: the one place the ledger asks which database it runs on."""
    if connection.vendor == "postgresql":
        return PostgresLedgerWriter(connection)
    return _ORM_WRITER


def ledger_writers(connection: BaseDatabaseWrapper = default_connection) -> list[LedgerWriter]:
    """Every writer that runs on ``connection``'s database: the ORM's everywhere, and its own where it has one."""
    own = ledger_writer_for(connection)
    return [_ORM_WRITER] if own is _ORM_WRITER else [_ORM_WRITER, own]


def _check_earlier(batch: dict[str, _Checked], keys: list[str]) -> dict[str, int]:
    """The entries already posted under ``keys``, each checked to be what the batch asks for again."""
    stored: dict[str, _Stored] = {}
    for chunk in _chunks(keys):
        for row in (
            LedgerEntry.objects.filter(idempotency_key__in=chunk)
            .order_by()
            .values_list("idempotency_key", "id", "kind", "effective_at", "reverses_id", "source__moved_from")
        ):
            stored[row[0]] = _Stored(*row[1:])
    missing = [key for key in keys if key not in stored]
    if missing:
        # Skipped for another rule than the key's uniqueness; ON CONFLICT skips unique violations alone,
        # and the only other unique rule is one reversal per entry.
        first = batch[missing[0]]
        if first.reverses_id is not None:
            raise LedgerError(
                _("This entry has already been reversed."),
                code="already_reversed",
                extra={"idempotency_key": first.key},
            )
        raise LedgerError(
            _("The ledger refused this entry."), code="invalid_posting", extra={"idempotency_key": first.key}
        )
    lines: dict[int, list[tuple[int, int]]] = {entry.id: [] for entry in stored.values()}
    for id_chunk in _chunks(list(lines)):
        for entry_id, account_id, amount in (
            LedgerLine.objects.filter(entry_id__in=id_chunk)
            .order_by()
            .values_list("entry_id", "account_id", "amount_micro")
        ):
            lines[entry_id].append((account_id, amount))
    for key, entry in stored.items():
        if not batch[key].same_effect(
            entry.kind, entry.effective_at, entry.reverses_id, lines[entry.id], entry.moved_from
        ):
            raise _conflict(key)
    return {key: entry.id for key, entry in stored.items()}


def _move_out_of_closed_periods(ordered: list[_Checked]) -> list[_Checked]:
    """Date now what would land before where the books are closed, saying so in the source (settlement/periods.py).

    A running settlement's own payouts stay in its period; the database checks that too.
    """
    period_lock(exclusive=False)
    closed = books_closed()
    if closed is None:
        return ordered
    now = timezone.now()
    moved: list[_Checked] = []
    for checked in ordered:
        if not closed.refuses(
            effective_at=checked.effective_at, kind=checked.kind, settlement=checked.source.get("settlement")
        ):
            moved.append(checked)
            continue
        source = {
            **checked.source,
            "moved_from": checked.effective_at.isoformat(),
            "closed_by_settlement": closed.settlement_id,
        }
        moved.append(replace(checked, effective_at=now, requested_at=checked.effective_at, source=source))
    return moved


def _post(postings: Sequence[Posting], writer: LedgerWriter | None = None) -> dict[str, tuple[int, bool]]:
    """Post set-based; returns ``{key: (entry id, created)}``. A constant number of queries per call."""
    writer = writer or ledger_writer_for()
    batch: dict[str, _Checked] = {}
    for posting in postings:
        checked = _check(posting)
        seen = batch.get(checked.key)
        if seen is None:
            batch[checked.key] = checked
        elif not seen.same_effect(checked.kind, checked.effective_at, checked.reverses_id, checked.lines):
            raise _conflict(checked.key)
    if not batch:
        return {}
    account_ids = {account_id for c in batch.values() for account_id, _amount in c.lines}
    unknown = account_ids - set(Account.objects.filter(pk__any_of=frozenset(account_ids)).values_list("pk", flat=True))
    if unknown:
        raise LedgerError(_("No such account."), code="invalid_account", extra={"accounts": sorted(unknown)})
    # Sorted, so two workers posting overlapping chunks wait on each other's keys in one order, never
    # in a cycle (a deadlock).
    ordered = [batch[key] for key in sorted(batch)]
    with transaction.atomic():
        ordered = _move_out_of_closed_periods(ordered)
        batch = {c.key: c for c in ordered}
        inserted = writer.entries_insert(ordered)
        earlier = _check_earlier(batch, [c.key for c in ordered if c.key not in inserted])
        writer.lines_insert(
            [
                (inserted[c.key], account_id, amount)
                for c in ordered
                if c.key in inserted
                for account_id, amount in c.unsorted_lines
            ]
        )
        # The public list of unclaimed money is live: money held in escrow for the first time in a month is
        # noticed in the transaction that holds it (compensation/unclaimed).
        held = [
            (account_id, c.effective_at)
            for c in ordered
            if c.key in inserted
            for account_id, amount in c.unsorted_lines
            if amount < 0
        ]
        if held:
            unclaimed_notices_record(holds=held)
    result = {key: (entry_id, True) for key, entry_id in inserted.items()}
    result.update((key, (entry_id, False)) for key, entry_id in earlier.items())
    return result


def ledger_post(
    *,
    idempotency_key: str,
    kind: str,
    effective_at: datetime,
    lines: Sequence[tuple[Account | int, int]],
    memo: str = "",
    source: dict[str, Any] | None = None,
    reverses: LedgerEntry | None = None,
) -> tuple[LedgerEntry, bool]:
    """Post one balanced entry; returns it and whether this call created it.

    The same key again returns the existing entry and writes nothing; the same key with other lines
    (or another kind, effective time or reversed entry) raises ``idempotency_conflict``.
    """
    posting = Posting(
        idempotency_key=idempotency_key,
        kind=kind,
        effective_at=effective_at,
        lines=lines,
        memo=memo,
        source=source,
        reverses_id=reverses.pk if reverses is not None else None,
    )
    entry_id, created = _post([posting])[idempotency_key]
    return LedgerEntry.objects.get(pk=entry_id), created


def ledger_post_many(*, postings: Sequence[Posting]) -> int:
    """Post many entries set-based, in one transaction; returns how many were new.

    A constant number of queries whatever the number of postings: this is what manifest ingestion
    uses, one chunk of thousands of postings per call. Keys already posted are skipped (and checked
    against their lines); one conflicting key fails the whole call.
    """
    return sum(created for _entry_id, created in _post(postings).values())


def ledger_post_entries(*, postings: Sequence[Posting], writer: LedgerWriter | None = None) -> dict[str, int]:
    """``ledger_post_many`` that answers the entry id behind each idempotency key (new or earlier); ``writer``
    inserts them (by default the database's own)."""
    return {key: entry_id for key, (entry_id, _created) in _post(postings, writer).items()}


def ledger_reverse(
    *, entry: LedgerEntry, actor: Actor, reason: str, effective_at: datetime | None = None
) -> LedgerEntry:
    """Correct an entry by posting its exact negation, once.

    The reversal takes effect now unless told otherwise: the original may lie in a closed period,
    and corrections belong to the period in which they are made.
    """
    require_staff(actor)
    reason = reason.strip()
    if not reason:
        raise InvalidInput(_("Say why the entry is reversed."), field="reason")
    if entry.kind in (EntryKind.RELEASE, EntryKind.PAYMENT) or "manifest" in (entry.source or {}):
        # Their money is also recorded line by line (held, released, paid; a payment's invoice allocations):
        # reversing the entry alone would leave those records saying otherwise.
        raise LedgerError(
            _("Entries of usage manifests, escrow releases and lab payments cannot be reversed by hand."),
            code="not_reversible",
            extra={"entry": entry.pk},
        )
    already = LedgerError(
        _("This entry has already been reversed."), code="already_reversed", extra={"entry": entry.pk}
    )
    with transaction.atomic():
        if LedgerEntry.objects.filter(reverses=entry).exists():
            raise already
        lines = [(account_id, -amount) for account_id, amount in entry.lines.values_list("account_id", "amount_micro")]
        try:
            reversal, created = ledger_post(
                idempotency_key=f"reversal:{entry.pk}",
                kind=EntryKind.REVERSAL,
                effective_at=effective_at or timezone.now(),
                lines=lines,
                memo=reason,
                source={"reverses": entry.pk},
                reverses=entry,
            )
        except LedgerError as exc:
            # A concurrent reversal won the race: its key or its unique ``reverses`` is taken.
            if exc.code in ("idempotency_conflict", "already_reversed"):
                raise already from None
            raise
        if not created:
            raise already
        audit_record(
            code="compensation.entry.reversed",
            actor=actor,
            target=entry,
            data={"reversal": reversal.pk, "reason": reason, "effective_at": reversal.effective_at.isoformat()},
        )
    return reversal
