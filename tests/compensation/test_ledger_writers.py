"""The ledger's database seam (the ledger writers): every writer posts one table of cases alike.

``ledger_post_entries`` checks postings in Python and hands the writing to a writer: the ORM's on every database
(SQLite's), and on PostgreSQL one ``INSERT ... SELECT unnest(...) ON CONFLICT DO NOTHING`` per table. Each row of
``CASES`` is a sequence of calls and what each must answer (the entries it created, the error it raised); every
writer that runs on the database goes through the table, under keys of its own, and must give the table's answers
and store the same lines. A rule changed in one writer alone (which rows it reports as inserted, what a skipped key
means) fails a row here and names the writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from compensation.errors import LedgerError
from compensation.ledger.services import (
    AccountKey,
    LedgerWriter,
    Posting,
    accounts_ensure,
    ledger_post_entries,
    ledger_writers,
)
from compensation.models import AccountKind, EntryKind, LedgerEntry, LedgerLine
from registry.models import Party, PartyKind

pytestmark = pytest.mark.django_db

WHEN = timezone.now().replace(microsecond=0) - timedelta(days=1)

# A posting in a case: (key, lines as (account name, amount), and the key of the entry it reverses, if any).
Call = list[tuple[str, list[tuple[str, int]], str | None]]


@dataclass(frozen=True)
class Case:
    name: str
    calls: list[Call]
    # Per call: the keys it created, or the error code it raised.
    answers: list[set[str] | str]


# An accrual's shape: the lab owes 700 µ₩, 500 of them to the holder, 200 held in escrow (credits are negative).
BALANCED = [("lab", 700), ("holder", -500), ("escrow", -200)]
OTHER = [("lab", 700), ("holder", -700)]
NEGATED = [("lab", -700), ("holder", 500), ("escrow", 200)]

CASES = [
    Case("a new entry", [[("a", BALANCED, None)]], [{"a"}]),
    Case("several new entries", [[("a", BALANCED, None), ("b", OTHER, None)]], [{"a", "b"}]),
    Case("the same key again", [[("a", BALANCED, None)], [("a", BALANCED, None)]], [{"a"}, set()]),
    Case(
        "the same key, its lines in another order",
        [[("a", BALANCED, None)], [("a", BALANCED[::-1], None)]],
        [{"a"}, set()],
    ),
    Case(
        "the same key with other lines",
        [[("a", BALANCED, None)], [("a", OTHER, None)]],
        [{"a"}, "idempotency_conflict"],
    ),
    Case("the same key twice in a batch", [[("a", BALANCED, None), ("a", BALANCED, None)]], [{"a"}]),
    Case("twice in a batch, other lines", [[("a", BALANCED, None), ("a", OTHER, None)]], ["idempotency_conflict"]),
    Case(
        "earlier and new keys in one batch",
        [[("a", BALANCED, None)], [("a", BALANCED, None), ("b", OTHER, None)]],
        [{"a"}, {"b"}],
    ),
    Case(
        "a reversal",
        [[("a", BALANCED, None)], [("undo-a", NEGATED, "a")]],
        [{"a"}, {"undo-a"}],
    ),
    Case(
        "a second reversal of one entry",
        [[("a", BALANCED, None)], [("undo-a", NEGATED, "a")], [("undo-a-again", NEGATED, "a")]],
        [{"a"}, {"undo-a"}, "already_reversed"],
    ),
    Case("an unbalanced entry", [[("a", [("lab", 700), ("holder", -500)], None)]], ["unbalanced"]),
]


@pytest.fixture
def accounts() -> dict[str, int]:
    lab = Party.objects.create(kind=PartyKind.LAB, name="Lab")
    holder = Party.objects.create(kind=PartyKind.HOLDER, name="Holder")
    keys = {
        "lab": AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk),
        "holder": AccountKey(AccountKind.HOLDER_PAYABLE, holder.pk),
        "escrow": AccountKey(AccountKind.ESCROW_UNCLAIMED, None, "work:1"),
    }
    ensured = accounts_ensure(keys=keys.values())
    return {name: ensured[key].pk for name, key in keys.items()}


def _run(case: Case, writer: LedgerWriter, accounts: dict[str, int]) -> tuple[list[set[str] | str], dict[str, Any]]:
    """The answers of ``writer`` to the case's calls (keys made its own), and what it stored per key."""
    prefix = f"{writer.name}:{case.name}:"
    answers: list[set[str] | str] = []
    ids: dict[str, int] = {}
    for call in case.calls:
        postings = [
            Posting(
                idempotency_key=prefix + key,
                kind=EntryKind.REVERSAL if reverses else EntryKind.ADJUSTMENT,
                effective_at=WHEN,
                lines=[(accounts[name], amount) for name, amount in lines],
                reverses_id=ids[reverses] if reverses else None,
            )
            for key, lines, reverses in call
        ]
        before = set(LedgerEntry.objects.filter(idempotency_key__startswith=prefix).values_list("id", flat=True))
        try:
            posted = ledger_post_entries(postings=postings, writer=writer)
        except LedgerError as exc:
            answers.append(exc.code)
            continue
        ids.update((key.removeprefix(prefix), entry_id) for key, entry_id in posted.items())
        answers.append({key.removeprefix(prefix) for key, entry_id in posted.items() if entry_id not in before})
    stored: dict[str, Any] = {}
    for entry in LedgerEntry.objects.filter(idempotency_key__startswith=prefix).order_by("idempotency_key"):
        lines = sorted(LedgerLine.objects.filter(entry=entry).values_list("account_id", "amount_micro"))
        reverses = entry.reverses.idempotency_key.removeprefix(prefix) if entry.reverses else None
        stored[entry.idempotency_key.removeprefix(prefix)] = (entry.kind, entry.effective_at, reverses, lines)
    return answers, stored


def test_the_database_has_its_own_writer_on_postgresql() -> None:
    names = [writer.name for writer in ledger_writers(connection)]
    assert names == (["orm", "postgresql"] if connection.vendor == "postgresql" else ["orm"])


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_writer_posts_the_table_alike(case: Case, accounts: dict[str, int]) -> None:
    results = {writer.name: _run(case, writer, accounts) for writer in ledger_writers(connection)}

    for name, (answers, stored) in results.items():
        assert answers == case.answers, f"writer {name}"
        created = set().union(*(answer for answer in answers if isinstance(answer, set)))
        assert set(stored) == created, f"writer {name} stored other entries than it reported"
    (_reference, (_answers, reference_stored)), *others = results.items()
    for name, (_answers, stored) in others:
        assert stored == reference_stored, f"writer {name} stored other lines"
