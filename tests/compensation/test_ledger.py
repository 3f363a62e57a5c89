"""The ledger service: balanced, idempotent, reversible postings (invariants 1-3 of PRODUCT.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from compensation.errors import LedgerError
from compensation.ledger.selectors import account_balance
from compensation.ledger.services import (
    AccountKey,
    Posting,
    account_get_or_create,
    accounts_ensure,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
)
from compensation.models import Account, AccountKind, EntryKind, LedgerEntry, LedgerLine
from core.actors import Actor
from core.errors import InvalidInput, NotPermitted
from registry.models import AuditEvent
from tests.compensation.helpers import deferred_guards_check
from tests.helpers import at

pytestmark = pytest.mark.django_db

MARCH = at("2026-03-15T12:00:00+09:00")


def accrual(accounts: dict[str, Account], key: str, amount: int = 1_000_000, **kwargs: Any) -> tuple[LedgerEntry, bool]:
    return ledger_post(
        idempotency_key=key,
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], amount), (accounts["holder"], -amount)],
        **kwargs,
    )


# --- Accounts ------------------------------------------------------------------------------


def test_accounts_are_made_once_per_kind_party_and_escrow_key(lab, holder):
    first = account_get_or_create(kind=AccountKind.LAB_RECEIVABLE, party=lab)
    assert account_get_or_create(kind=AccountKind.LAB_RECEIVABLE, party=lab) == first
    escrow = account_get_or_create(kind=AccountKind.ESCROW_UNMATCHED, escrow_key="isbn:9780306406157")
    assert account_get_or_create(kind=AccountKind.ESCROW_UNMATCHED, escrow_key="isbn:9780306406157") == escrow
    # Party-less accounts are unique too (a NULL party does not make them distinct).
    rounding = account_get_or_create(kind=AccountKind.ROUNDING)
    assert account_get_or_create(kind=AccountKind.ROUNDING) == rounding
    assert Account.objects.count() == 3


def test_accounts_ensure_is_set_based(lab, holder, other_holder):
    keys = [AccountKey(AccountKind.ESCROW_UNMATCHED, None, f"isbn:{n}") for n in range(50)]
    keys += [AccountKey(AccountKind.HOLDER_PAYABLE, p.pk) for p in (holder, other_holder)]
    keys += [AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk), AccountKey(AccountKind.ROUNDING)]
    with CaptureQueriesContext(connection) as created:
        found = accounts_ensure(keys=keys)
    with CaptureQueriesContext(connection) as fetched:
        again = accounts_ensure(keys=keys + keys)

    assert set(found) == set(keys)
    assert again == found
    assert Account.objects.count() == len(keys)
    assert len(created) <= 7  # party kinds, savepoint, select, insert, select, release
    assert len(fetched) <= 4


def test_a_payable_belongs_to_a_holder_and_escrow_to_no_party(lab, holder):
    with pytest.raises(LedgerError) as payable_for_lab:
        account_get_or_create(kind=AccountKind.HOLDER_PAYABLE, party=lab)
    with pytest.raises(LedgerError) as escrow_with_party:
        account_get_or_create(kind=AccountKind.ESCROW_UNCLAIMED, party=holder, escrow_key="work:1")
    with pytest.raises(LedgerError) as unkeyed_escrow:
        account_get_or_create(kind=AccountKind.ESCROW_DISPUTED)

    assert payable_for_lab.value.code == escrow_with_party.value.code == unkeyed_escrow.value.code == "invalid_account"
    assert not Account.objects.exists()


# --- Posting -------------------------------------------------------------------------------


def test_a_balanced_entry_is_posted_with_its_lines(accounts):
    entry, created = accrual(accounts, "manifest:1:line:1", source={"manifest": 1, "line": 1}, memo="chunk 1")

    assert created
    assert entry.kind == EntryKind.ACCRUAL
    assert entry.effective_at == MARCH
    assert entry.source == {"manifest": 1, "line": 1}
    assert sorted(entry.lines.values_list("account_id", "amount_micro")) == sorted(
        [(accounts["lab"].pk, 1_000_000), (accounts["holder"].pk, -1_000_000)]
    )
    assert account_balance(account=accounts["lab"]) == 1_000_000
    assert account_balance(account=accounts["holder"]) == -1_000_000
    deferred_guards_check()


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([("lab", 100), ("holder", -99)], id="not-summing-to-zero"),
        pytest.param([("lab", 0), ("holder", 0)], id="zero-lines"),
        pytest.param([("lab", 100), ("holder", -100), ("other", 0)], id="one-zero-line"),
        pytest.param([("lab", 0)], id="single-line"),
        pytest.param([], id="no-lines"),
    ],
)
def test_an_unbalanced_entry_is_refused(accounts, lines):
    with pytest.raises(LedgerError) as refused:
        ledger_post(
            idempotency_key="bad",
            kind=EntryKind.ACCRUAL,
            effective_at=MARCH,
            lines=[(accounts[name], amount) for name, amount in lines],
        )

    assert refused.value.code == "unbalanced"
    assert not LedgerEntry.objects.exists()
    assert not LedgerLine.objects.exists()


def test_float_amounts_and_naive_times_are_refused(accounts):
    with pytest.raises(LedgerError) as float_amounts:
        ledger_post(
            idempotency_key="float",
            kind=EntryKind.ACCRUAL,
            effective_at=MARCH,
            lines=[(accounts["lab"], 1.5), (accounts["holder"], -1.5)],  # type: ignore[list-item]
        )
    with pytest.raises(LedgerError) as naive_time:
        ledger_post(
            idempotency_key="naive",
            kind=EntryKind.ACCRUAL,
            effective_at=at("2026-03-15T12:00:00"),
            lines=[(accounts["lab"], 1), (accounts["holder"], -1)],
        )

    assert float_amounts.value.code == "unbalanced"
    assert naive_time.value.code == "invalid_posting"
    assert not LedgerEntry.objects.exists()


def test_posting_the_same_key_again_returns_the_entry_and_writes_nothing(accounts):
    first, created_first = accrual(accounts, "manifest:1:line:1")
    with CaptureQueriesContext(connection) as queries:
        again, created_again = accrual(accounts, "manifest:1:line:1", memo="a retried task")

    assert created_first
    assert not created_again
    assert again.pk == first.pk
    assert LedgerEntry.objects.count() == 1
    assert LedgerLine.objects.count() == 2
    assert not any(q["sql"].startswith('INSERT INTO "compensation_ledgerline"') for q in queries)
    assert account_balance(account=accounts["lab"]) == 1_000_000


def test_posting_the_same_key_with_other_lines_is_a_conflict(accounts):
    accrual(accounts, "manifest:1:line:1", amount=1_000_000)

    with pytest.raises(LedgerError) as other_amount:
        accrual(accounts, "manifest:1:line:1", amount=2_000_000)
    with pytest.raises(LedgerError) as other_time:
        ledger_post(
            idempotency_key="manifest:1:line:1",
            kind=EntryKind.ACCRUAL,
            effective_at=at("2026-04-01T00:00:00+09:00"),
            lines=[(accounts["lab"], 1_000_000), (accounts["holder"], -1_000_000)],
        )

    assert other_amount.value.code == other_time.value.code == "idempotency_conflict"
    assert other_amount.value.as_dict()["idempotency_key"] == "manifest:1:line:1"
    assert LedgerLine.objects.count() == 2


def test_line_order_does_not_make_a_conflict(accounts):
    first, _created = accrual(accounts, "k")
    again, created = ledger_post(
        idempotency_key="k",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["holder"].pk, -1_000_000), (accounts["lab"].pk, 1_000_000)],
    )
    assert again.pk == first.pk
    assert not created


def test_keys_memos_and_sources_with_awkward_characters_round_trip(accounts):
    key = "manifest:\"7\",{a,b}\\n'한글'\tline:1"
    memo = 'line one\nline "two" {three}'
    source = {"manifest": 7, "identifier": 'isbn:"978"\\{x}', "nested": {"list": [1, "two", None]}}
    posting = Posting(
        idempotency_key=key,
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], 5), (accounts["holder"], -5)],
        memo=memo,
        source=source,
    )

    assert ledger_post_many(postings=[posting]) == 1
    assert ledger_post_many(postings=[posting]) == 0

    entry = LedgerEntry.objects.get()
    assert (entry.idempotency_key, entry.memo, entry.source) == (key, memo, source)


def test_an_unknown_account_is_refused_before_anything_is_written(accounts):
    with pytest.raises(LedgerError) as refused:
        ledger_post(
            idempotency_key="k",
            kind=EntryKind.ACCRUAL,
            effective_at=MARCH,
            lines=[(accounts["lab"], 5), (999_999, -5)],
        )
    assert refused.value.code == "invalid_account"
    assert not LedgerEntry.objects.exists()


# --- Posting many ---------------------------------------------------------------------------


def _postings(accounts: dict[str, Account], keys: list[str], amount: int = 700) -> list[Posting]:
    return [
        Posting(
            idempotency_key=key,
            kind=EntryKind.ACCRUAL,
            effective_at=MARCH,
            lines=[(accounts["lab"], amount), (accounts["holder"], -amount + 1), (accounts["rounding"], -1)],
            source={"line": key},
        )
        for key in keys
    ]


def test_post_many_writes_each_key_once_within_and_across_calls(accounts):
    batch = _postings(accounts, [f"line:{n}" for n in range(100)])

    assert ledger_post_many(postings=batch + batch[:10]) == 100
    assert ledger_post_many(postings=batch[50:] + _postings(accounts, ["line:100", "line:101"])) == 2

    assert LedgerEntry.objects.count() == 102
    assert LedgerLine.objects.count() == 102 * 3
    assert account_balance(account=accounts["lab"]) == 102 * 700
    assert account_balance(account=accounts["rounding"]) == -102
    deferred_guards_check()


def test_post_many_costs_a_constant_number_of_queries(accounts):
    def queries(keys: list[str]) -> int:
        with CaptureQueriesContext(connection) as captured:
            ledger_post_many(postings=_postings(accounts, keys))
        return len(captured)

    small, large = [f"a:{n}" for n in range(5)], [f"b:{n}" for n in range(500)]
    new = (queries(small), queries(large))
    repeated = (queries(small), queries(large))

    # Accounts check, savepoint, period lock, closed periods, insert entries, read earlier ones and their
    # lines, insert lines, release.
    if connection.vendor == "postgresql":
        assert new[0] == new[1] <= 8
        assert repeated[0] == repeated[1] <= 8
    else:  # SQLite needs one more read (and no lock), and splits large INSERTs into batches of 999 parameters
        assert new[0] <= 8
        assert repeated[0] <= 8


def test_post_many_with_one_conflicting_key_writes_nothing(accounts):
    ledger_post_many(postings=_postings(accounts, ["line:1"]))
    batch = _postings(accounts, ["line:2", "line:3"]) + _postings(accounts, ["line:1"], amount=999)

    with pytest.raises(LedgerError) as conflict:
        ledger_post_many(postings=batch)

    assert conflict.value.code == "idempotency_conflict"
    assert set(LedgerEntry.objects.values_list("idempotency_key", flat=True)) == {"line:1"}


def test_post_many_with_one_key_twice_in_the_batch_with_other_lines_is_a_conflict(accounts):
    batch = _postings(accounts, ["line:1"]) + _postings(accounts, ["line:1"], amount=5)

    with pytest.raises(LedgerError) as conflict:
        ledger_post_many(postings=batch)

    assert conflict.value.code == "idempotency_conflict"
    assert not LedgerEntry.objects.exists()


def _crash_after(work: Callable[[], object]) -> None:
    with transaction.atomic():
        work()
        raise RuntimeError("worker killed")


def test_a_crashed_chunk_leaves_nothing_and_its_retry_posts_everything(accounts):
    batch = _postings(accounts, [f"line:{n}" for n in range(20)])
    with pytest.raises(RuntimeError, match="worker killed"):
        _crash_after(lambda: ledger_post_many(postings=batch[:10]))

    assert not LedgerEntry.objects.exists()
    assert ledger_post_many(postings=batch) == 20
    assert ledger_post_many(postings=batch) == 0


# --- Reversals -----------------------------------------------------------------------------


def test_a_reversal_nets_the_entry_to_zero_and_is_audited(accounts, staff):
    entry, _created = accrual(accounts, "manifest:1:line:1")

    reversal = ledger_reverse(entry=entry, actor=Actor(user=staff), reason="Lab reported the wrong model")

    assert reversal.kind == EntryKind.REVERSAL
    assert reversal.reverses == entry
    assert reversal.idempotency_key == f"reversal:{entry.pk}"
    assert reversal.memo == "Lab reported the wrong model"
    assert sorted(reversal.lines.values_list("account_id", "amount_micro")) == sorted(
        [(accounts["lab"].pk, -1_000_000), (accounts["holder"].pk, 1_000_000)]
    )
    assert account_balance(account=accounts["lab"]) == 0
    assert account_balance(account=accounts["holder"]) == 0
    event = AuditEvent.objects.get(code="compensation.entry.reversed")
    assert event.object_id == str(entry.pk)
    assert event.data["reversal"] == reversal.pk
    assert event.actor_user_id == staff.pk
    deferred_guards_check()


def test_an_entry_is_reversed_only_once(accounts):
    entry, _created = accrual(accounts, "manifest:1:line:1")
    ledger_reverse(entry=entry, actor=Actor.system(), reason="duplicate manifest")

    with pytest.raises(LedgerError) as again:
        ledger_reverse(entry=entry, actor=Actor.system(), reason="duplicate manifest")

    assert again.value.code == "already_reversed"
    assert LedgerEntry.objects.filter(reverses=entry).count() == 1
    assert AuditEvent.objects.filter(code="compensation.entry.reversed").count() == 1


def test_a_second_reversal_under_another_key_is_refused(accounts):
    entry, _created = accrual(accounts, "manifest:1:line:1")
    ledger_reverse(entry=entry, actor=Actor.system(), reason="wrong")
    lines = [(account_id, -amount) for account_id, amount in entry.lines.values_list("account_id", "amount_micro")]

    with pytest.raises(LedgerError) as again:
        ledger_post(
            idempotency_key="another-key",
            kind=EntryKind.REVERSAL,
            effective_at=MARCH,
            lines=lines,
            reverses=entry,
        )

    assert again.value.code == "already_reversed"
    assert LedgerEntry.objects.filter(reverses=entry).count() == 1


def test_a_reversal_backdated_into_the_original_period_is_allowed_when_asked(accounts):
    entry, _created = accrual(accounts, "k")
    reversal = ledger_reverse(entry=entry, actor=Actor.system(), reason="same period", effective_at=MARCH)
    assert reversal.effective_at == MARCH
    assert account_balance(account=accounts["lab"], until=at("2026-04-01T00:00:00+09:00")) == 0


def test_only_staff_reverse_and_they_say_why(accounts, owner, holder):
    entry, _created = accrual(accounts, "k")

    with pytest.raises(NotPermitted):
        ledger_reverse(entry=entry, actor=Actor(user=owner, party=holder), reason="I want more")
    with pytest.raises(InvalidInput):
        ledger_reverse(entry=entry, actor=Actor.system(), reason="  ")

    assert not LedgerEntry.objects.filter(reverses=entry).exists()


def test_a_reversal_names_its_original_and_nothing_else_does(accounts):
    entry, _created = accrual(accounts, "k")
    with pytest.raises(LedgerError):
        ledger_post(
            idempotency_key="r",
            kind=EntryKind.REVERSAL,
            effective_at=MARCH,
            lines=[(accounts["lab"], -1), (accounts["holder"], 1)],
        )
    with pytest.raises(LedgerError):
        ledger_post(
            idempotency_key="r",
            kind=EntryKind.ADJUSTMENT,
            effective_at=MARCH,
            lines=[(accounts["lab"], -1), (accounts["holder"], 1)],
            reverses=entry,
        )


def test_balance_until_counts_entries_effective_before_the_instant(accounts):
    accrual(accounts, "march", amount=100)
    ledger_post(
        idempotency_key="april",
        kind=EntryKind.ACCRUAL,
        effective_at=at("2026-04-01T00:00:00+09:00"),
        lines=[(accounts["lab"], 50), (accounts["holder"], -50)],
    )

    assert account_balance(account=accounts["lab"], until=at("2026-04-01T00:00:00+09:00")) == 100
    assert account_balance(account=accounts["lab"], until=at("2026-04-01T00:00:00.000001+09:00")) == 150
    assert account_balance(account=accounts["lab"]) == 150
