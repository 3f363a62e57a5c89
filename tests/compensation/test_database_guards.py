"""PostgreSQL refuses unbalanced entries at COMMIT and any UPDATE, DELETE or TRUNCATE of the ledger.

Each test goes around the service with raw SQL, as a bug or a person at a psql prompt would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post, ledger_post_many
from compensation.models import AccountKind, EntryKind, LedgerEntry, LedgerLine, Tariff
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from tests.compensation.helpers import INSERT_LINE, deferred_guards_check, raw_entry, sql_run
from tests.helpers import at

pytestmark = pytest.mark.postgres

MARCH = at("2026-03-15T12:00:00+09:00")


def _commit_raw_entry(key: str, lines: list[tuple[int, int]]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        raw_entry(cursor, key, lines)
        # Every statement succeeded: only COMMIT, on leaving the block, checks the balance.


# --- Balanced at COMMIT (transactional tests: the deferred trigger fires only on a real commit) ------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "amounts",
    [
        pytest.param([("lab", 100), ("holder", -99)], id="lines-not-summing-to-zero"),
        pytest.param([("lab", 100)], id="one-line"),
        pytest.param([], id="no-lines"),
    ],
)
def test_an_unbalanced_entry_fails_at_commit(accounts, amounts):
    lines = [(accounts[name].pk, amount) for name, amount in amounts]

    with pytest.raises(IntegrityError, match="unbalanced ledger entry"):
        _commit_raw_entry("raw", lines)

    assert not LedgerEntry.objects.exists()
    assert not LedgerLine.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_line_added_later_to_a_committed_entry_fails_at_commit(accounts):
    entry, _created = ledger_post(
        idempotency_key="k",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], 100), (accounts["holder"], -100)],
    )

    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(INSERT_LINE, [entry.pk, accounts["other"].pk, 5])  # the COMMIT raises

    assert LedgerLine.objects.filter(entry=entry).count() == 2


@pytest.mark.django_db(transaction=True)
def test_balanced_raw_sql_and_every_service_commit(accounts):
    with transaction.atomic(), connection.cursor() as cursor:
        raw_entry(cursor, "raw", [(accounts["lab"].pk, 100), (accounts["holder"].pk, -60), (accounts["other"].pk, -40)])
    with transaction.atomic():
        ledger_post_many(
            postings=[
                Posting(
                    idempotency_key=f"line:{n}",
                    kind=EntryKind.ACCRUAL,
                    effective_at=MARCH,
                    lines=[(accounts["lab"], 3), (accounts["holder"], -2), (accounts["rounding"], -1)],
                )
                for n in range(500)
            ]
        )

    assert LedgerEntry.objects.count() == 501
    assert LedgerLine.objects.count() == 3 + 1500


# --- Append-only ------------------------------------------------------------------------------


@pytest.fixture
def posted(accounts: dict[str, Any]) -> LedgerEntry:
    entry, _created = ledger_post(
        idempotency_key="k",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], 100), (accounts["holder"], -100)],
    )
    return entry


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE compensation_ledgerline SET amount_micro = amount_micro * 2",
        "UPDATE compensation_ledgerentry SET memo = 'rewritten'",
        "DELETE FROM compensation_ledgerline",
        "DELETE FROM compensation_ledgerentry",
        "UPDATE compensation_tariff SET rate_krw = 0",
        "DELETE FROM compensation_tariff",
    ],
)
def test_update_and_delete_are_refused(posted, statement):
    tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw="0.0005")

    with pytest.raises(DatabaseError, match="append-only"):
        sql_run(statement)

    assert LedgerLine.objects.filter(entry=posted, amount_micro=100).exists()
    assert LedgerEntry.objects.filter(pk=posted.pk, memo="").exists()
    assert Tariff.objects.filter(rate_krw__gt=0).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("table", ["compensation_ledgerline", "compensation_ledgerentry"])
def test_truncate_is_refused(posted, table):
    deferred_guards_check()  # PostgreSQL will not truncate a table with trigger events still pending
    with pytest.raises(DatabaseError, match="append-only"):
        # Test connections may truncate (tests/compensation/pg_guards.py); an ordinary session may not.
        sql_run("SET LOCAL compensation.allow_truncate = 'off'", f"TRUNCATE {table} CASCADE")

    assert LedgerLine.objects.filter(entry=posted).count() == 2


@pytest.mark.django_db
def test_an_ordinary_session_may_not_truncate(posted):
    deferred_guards_check()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('compensation.allow_truncate', true)")
        assert cursor.fetchone()[0] == "on"  # what the test suite's connections carry
    with pytest.raises(DatabaseError, match="TRUNCATE refused"):
        sql_run(
            "RESET compensation.allow_truncate",
            "TRUNCATE compensation_ledgerline, compensation_ledgerentry CASCADE",
        )


# --- Races: two workers posting the same chunk ----------------------------------------------------


def _run_together(work: Callable[[], Any], count: int = 2) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_workers_posting_the_same_chunk_write_it_once(accounts):
    postings = [
        Posting(
            idempotency_key=f"manifest:1:line:{n}",
            kind=EntryKind.ACCRUAL,
            effective_at=MARCH,
            lines=[(accounts["lab"], 10), (accounts["holder"], -10)],
        )
        for n in range(300)
    ]

    def post() -> int:
        with transaction.atomic():
            return ledger_post_many(postings=postings)

    results = _run_together(post)

    assert sorted(results) == [0, 300]
    assert LedgerEntry.objects.count() == 300
    assert LedgerLine.objects.count() == 600


@pytest.mark.django_db(transaction=True)
def test_two_workers_creating_the_same_accounts_make_each_once(lab):
    keys = [AccountKey(AccountKind.ESCROW_UNMATCHED, None, f"isbn:{n}") for n in range(200)]
    keys.append(AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk))

    results = _run_together(lambda: {k: a.pk for k, a in accounts_ensure(keys=keys).items()})

    assert not [r for r in results if isinstance(r, Exception)]
    assert results[0] == results[1]
    assert len(set(results[0].values())) == len(keys)
