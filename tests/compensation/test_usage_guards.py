"""PostgreSQL guards of migration 0004: escrow never goes into debit, manifest lines are never deleted, and
the optimised balance trigger (it sums an entry once, at its last line) still refuses every unbalanced entry.

Each test goes around the services with raw SQL, as a bug or a person at a psql prompt would. The deferred
triggers fire at COMMIT, so the tests that need them commit for real (transactional tests).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from compensation.ledger.selectors import account_balance
from compensation.ledger.services import ledger_post
from compensation.models import EntryKind, LedgerLine, ManifestLine, UsageManifest
from tests.compensation.helpers import INSERT_LINE, deferred_guards_check, raw_entry, sql_run
from tests.helpers import at

pytestmark = pytest.mark.postgres

MARCH = at("2026-03-15T12:00:00+09:00")
HELD = 1_000_001


@pytest.fixture
def held(accounts: dict[str, Any]) -> dict[str, Any]:
    """The lab owes 1,000,001 µ₩ that escrow holds for an unregistered ISBN (committed in transactional tests)."""
    ledger_post(
        idempotency_key="hold",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], HELD), (accounts["unmatched"], -HELD)],
    )
    return accounts


def _release(accounts: dict[str, Any], key: str, amount: int) -> None:
    """Move ``amount`` from the escrow account to the holder by raw SQL, and commit."""
    with transaction.atomic(), connection.cursor() as cursor:
        raw_entry(cursor, key, [(accounts["unmatched"].pk, amount), (accounts["holder"].pk, -amount)])


# --- Escrow never goes into debit ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_releasing_more_than_escrow_holds_fails_at_commit(held):
    with pytest.raises(IntegrityError, match="would release more than it holds"):
        _release(held, "too-much", HELD + 1)

    assert account_balance(account=held["unmatched"]) == -HELD
    assert account_balance(account=held["holder"]) == 0


@pytest.mark.django_db(transaction=True)
def test_escrow_released_in_parts_stops_at_what_it_holds(held):
    _release(held, "first", 600_001)
    _release(held, "second", 400_000)  # exactly the rest: the balance reaches 0, never beyond

    with pytest.raises(IntegrityError, match="would release more than it holds"):
        _release(held, "third", 1)

    assert account_balance(account=held["unmatched"]) == 0
    assert account_balance(account=held["holder"]) == -HELD


@pytest.mark.django_db(transaction=True)
def test_escrow_is_checked_at_commit_not_per_statement(held):
    # A debit beyond the balance, then a credit that covers it, in one transaction: fine at COMMIT.
    with transaction.atomic(), connection.cursor() as cursor:
        raw_entry(cursor, "out", [(held["unmatched"].pk, HELD + 5), (held["holder"].pk, -(HELD + 5))])
        raw_entry(cursor, "in", [(held["lab"].pk, 5), (held["unmatched"].pk, -5)])

    assert account_balance(account=held["unmatched"]) == 0


@pytest.mark.django_db(transaction=True)
def test_an_escrow_account_that_never_held_anything_cannot_be_debited(accounts):
    with pytest.raises(IntegrityError, match="would release more than it holds"):
        _release(accounts, "from-nothing", 1)

    assert not LedgerLine.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_other_accounts_may_go_into_debit(accounts):
    # Only escrow is guarded: a holder's payable turns into a debit when a payout exceeds it, for instance.
    with transaction.atomic(), connection.cursor() as cursor:
        raw_entry(cursor, "payout", [(accounts["holder"].pk, 7), (accounts["rounding"].pk, -7)])

    assert account_balance(account=accounts["holder"]) == 7


# --- Manifest lines are never deleted ----------------------------------------------------------------


@pytest.fixture
def manifest_line(lab: Any) -> ManifestLine:
    manifest = UsageManifest.objects.create(
        lab=lab,
        manifest_id="run-1",
        model="hangul-7b",
        purpose="train-genai",
        content_hash="0" * 64,
        format="jsonl",
        file="manifests/run-1.jsonl",
        lines_total=1,
        lines_done=1,
    )
    return ManifestLine.objects.create(manifest=manifest, line_no=1, outcome="invalid", reason_code="bad_isbn")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM compensation_manifestline",
        "DELETE FROM compensation_manifestline WHERE outcome = 'invalid'",
    ],
)
def test_deleting_manifest_lines_is_refused(manifest_line, statement):
    with pytest.raises(DatabaseError, match="keeps every row: DELETE refused"):
        sql_run(statement)

    assert ManifestLine.objects.filter(pk=manifest_line.pk).exists()


@pytest.mark.django_db
def test_the_orm_cannot_delete_a_manifest_line_either(manifest_line):
    with pytest.raises(DatabaseError, match="DELETE refused"), transaction.atomic():
        manifest_line.delete()

    assert ManifestLine.objects.filter(pk=manifest_line.pk).exists()


@pytest.mark.django_db
def test_truncating_manifest_lines_is_refused(manifest_line):
    deferred_guards_check()  # PostgreSQL will not truncate a table with trigger events still pending
    with pytest.raises(DatabaseError, match="keeps every row: TRUNCATE refused"):
        # Test connections may truncate (tests/compensation/pg_guards.py); an ordinary session may not.
        sql_run("SET LOCAL compensation.allow_truncate = 'off'", "TRUNCATE compensation_manifestline")

    assert ManifestLine.objects.filter(pk=manifest_line.pk).exists()


# --- The optimised balance trigger ---------------------------------------------------------------


INSERT_TWO_LINES = (
    "INSERT INTO compensation_ledgerline (entry_id, account_id, amount_micro) VALUES (%s, %s, %s), (%s, %s, %s)"
)


def _commit_lines(entry_id: int | None, statements: list[list[tuple[Any, int]]]) -> int:
    """Commit lines to ``entry_id`` (a new entry if None), one INSERT per list of ``(account, amount)``."""
    with transaction.atomic(), connection.cursor() as cursor:
        if entry_id is None:
            entry_id = raw_entry(cursor, "raw", [])
        for lines in statements:
            if len(lines) == 1:
                cursor.execute(INSERT_LINE, [entry_id, lines[0][0].pk, lines[0][1]])
            else:
                ((first, first_amount), (second, second_amount)) = lines
                cursor.execute(INSERT_TWO_LINES, [entry_id, first.pk, first_amount, entry_id, second.pk, second_amount])
    return entry_id


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_entry_written_one_line_per_statement_fails_at_commit(accounts):
    statements = [[(accounts["lab"], 100)], [(accounts["holder"], -60)], [(accounts["other"], -39)]]

    with pytest.raises(IntegrityError, match="unbalanced ledger entry"):
        _commit_lines(None, statements)

    assert not LedgerLine.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_entry_balanced_only_by_its_last_statement_commits(accounts):
    # The check runs once, for the last line, over the whole entry: earlier lines are not judged alone.
    entry_id = _commit_lines(None, [[(accounts["lab"], 100)], [(accounts["holder"], -60)], [(accounts["other"], -40)]])

    assert LedgerLine.objects.filter(entry_id=entry_id).count() == 3


@pytest.mark.django_db(transaction=True)
def test_an_entry_unbalanced_by_its_first_statement_of_several_fails_at_commit(accounts):
    # The offending line comes first; only the last line is checked, and it must see the whole entry.
    statements = [[(accounts["lab"], 101)], [(accounts["holder"], -60), (accounts["other"], -40)]]

    with pytest.raises(IntegrityError, match="unbalanced ledger entry"):
        _commit_lines(None, statements)

    assert not LedgerLine.objects.exists()


@pytest.fixture
def old_entry(accounts: dict[str, Any]) -> int:
    entry, _created = ledger_post(
        idempotency_key="old",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], 100), (accounts["holder"], -100)],
    )
    return entry.pk


@pytest.mark.django_db(transaction=True)
def test_lines_added_later_to_an_old_entry_in_several_statements_fail_at_commit(accounts, old_entry):
    with pytest.raises(IntegrityError, match=f"unbalanced ledger entry {old_entry}"):
        _commit_lines(old_entry, [[(accounts["lab"], 10)], [(accounts["other"], -9)]])

    assert LedgerLine.objects.filter(entry_id=old_entry).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_line_added_later_with_a_lower_id_fails_at_commit(accounts, old_entry):
    committed_without_error = True
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO compensation_ledgerline (id, entry_id, account_id, amount_micro) VALUES (%s, %s, %s, %s)",
                [-1, old_entry, accounts["lab"].pk, 5],
            )
    except IntegrityError:
        committed_without_error = False

    assert not committed_without_error, "an unbalanced entry was committed"
    assert LedgerLine.objects.filter(entry_id=old_entry).count() == 2


@pytest.mark.django_db(transaction=True)
def test_lines_added_to_one_entry_by_two_sessions_leave_it_balanced(accounts, old_entry):
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        committed_without_error = True
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    INSERT_LINE, [old_entry, accounts["lab"].pk, 5]
                )  # unbalanced: +5, and the lower id of the two sessions
                # Meanwhile another session adds a balanced pair to the same entry and commits first.
                with other.cursor() as other_cursor:
                    for account, amount in ((accounts["lab"], 3), (accounts["holder"], -3)):
                        other_cursor.execute(INSERT_LINE, [old_entry, account.pk, amount])
                other.commit()
        except IntegrityError:
            committed_without_error = False
    finally:
        other.close()

    total = sum(LedgerLine.objects.filter(entry_id=old_entry).values_list("amount_micro", flat=True))
    assert not committed_without_error, f"entry {old_entry} was committed summing to {total}"
    assert total == 0
