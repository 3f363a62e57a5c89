"""manage.py ledger_check: passes on a clean ledger, names the offending entries of a broken one."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from compensation.ledger import ledger_post, ledger_reverse
from compensation.models import EntryKind, LedgerEntry, LedgerLine
from registry.audit import Actor
from tests.compensation.conftest import at

MARCH = at("2026-03-15T12:00:00+09:00")


def _post(accounts: dict[str, Any], key: str, amount: int = 100) -> LedgerEntry:
    entry, _created = ledger_post(
        idempotency_key=key,
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], amount), (accounts["holder"], -amount)],
    )
    return entry


def _break_ledger(accounts: dict[str, Any]) -> tuple[LedgerEntry, LedgerEntry, LedgerEntry]:
    """Write what the service never would: the ORM, straight to the tables (no triggers on SQLite)."""
    lonely = LedgerEntry.objects.create(idempotency_key="lonely", kind=EntryKind.ACCRUAL, effective_at=MARCH)
    LedgerLine.objects.create(entry=lonely, account=accounts["lab"], amount_micro=5)
    lopsided = LedgerEntry.objects.create(idempotency_key="lopsided", kind=EntryKind.ACCRUAL, effective_at=MARCH)
    LedgerLine.objects.bulk_create(
        [
            LedgerLine(entry=lopsided, account=accounts["lab"], amount_micro=100),
            LedgerLine(entry=lopsided, account=accounts["holder"], amount_micro=-90),
        ]
    )
    # A balanced "reversal" that undoes only half of its original.
    original = _post(accounts, "original", amount=100)
    half = LedgerEntry.objects.create(
        idempotency_key="half", kind=EntryKind.REVERSAL, effective_at=MARCH, reverses=original
    )
    LedgerLine.objects.bulk_create(
        [
            LedgerLine(entry=half, account=accounts["lab"], amount_micro=-50),
            LedgerLine(entry=half, account=accounts["holder"], amount_micro=50),
        ]
    )
    return lonely, lopsided, half


def _triggers_off_in_this_transaction() -> None:
    # The test's transaction is rolled back, never committed, so the deferred triggers would not fire
    # anyway; replica mode says so explicitly (and keeps ``SET CONSTRAINTS`` from firing them).
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")


@pytest.mark.django_db
def test_a_clean_ledger_passes(accounts):
    for n in range(5):
        _post(accounts, f"k{n}")
    ledger_reverse(entry=LedgerEntry.objects.get(idempotency_key="k0"), actor=Actor.system(), reason="test")
    out = StringIO()

    call_command("ledger_check", stdout=out)

    assert "6 entries, 12 lines" in out.getvalue()
    assert "FAILED" not in out.getvalue()
    assert "Ledger OK." in out.getvalue()


@pytest.mark.django_db
def test_an_empty_ledger_passes():
    out = StringIO()
    call_command("ledger_check", stdout=out)
    assert "Ledger OK." in out.getvalue()


@pytest.mark.django_db
def test_a_broken_ledger_fails_naming_the_entries(accounts, on_postgres):
    _post(accounts, "fine")
    if on_postgres:
        _triggers_off_in_this_transaction()
    lonely, lopsided, half = _break_ledger(accounts)
    out = StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("ledger_check", stdout=out)

    assert failed.value.returncode == 1
    message = str(failed.value)
    assert f"balanced: {lonely.pk}, {lopsided.pk}" in message
    assert f"reversals_net_to_zero: {half.pk}" in message
    assert "FAILED  balanced: 2 entries" in out.getvalue()
    assert "ok      reversed_at_most_once" in out.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_broken_ledger_committed_behind_the_triggers_back_fails(accounts):
    _post(accounts, "fine")
    with connection.cursor() as cursor:
        # An operator restoring a dump with triggers off (replica mode) is the one way past them.
        cursor.execute("SET session_replication_role = replica")
        try:
            lonely, lopsided, half = _break_ledger(accounts)
        finally:
            cursor.execute("RESET session_replication_role")

    with pytest.raises(CommandError) as failed:
        call_command("ledger_check", stdout=StringIO())

    assert f"balanced: {lonely.pk}, {lopsided.pk}" in str(failed.value)
    assert f"reversals_net_to_zero: {half.pk}" in str(failed.value)


@pytest.mark.django_db
def test_at_most_fifty_offenders_are_listed(accounts, on_postgres):
    if on_postgres:
        _triggers_off_in_this_transaction()
    entries = LedgerEntry.objects.bulk_create(
        [LedgerEntry(idempotency_key=f"broken:{n}", kind=EntryKind.ACCRUAL, effective_at=MARCH) for n in range(60)]
    )

    with pytest.raises(CommandError) as failed:
        call_command("ledger_check", stdout=StringIO())

    listed = str(failed.value).split("balanced: ")[1].split(" (")[0].split(", ")
    assert listed == [str(e.pk) for e in sorted(entries, key=lambda e: e.pk)[:50]]
    assert "(first 50 of 60)" in str(failed.value)
