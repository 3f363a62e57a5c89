"""manage.py ledger_check: passes on a clean ledger, names the offending entries of a broken one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone, translation

from compensation.errors import LedgerError
from compensation.ledger.services import account_get_or_create, ledger_post, ledger_reverse
from compensation.models import (
    Account,
    AccountKind,
    EntryKind,
    EscrowRelease,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    UsageManifest,
)
from compensation.usage.services import usage_manifest_submit_json
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from registry.models import OwnershipClaim
from registry.services import claim_verify
from tests.compensation.helpers import deferred_guards_check
from tests.factories import ClaimFactory, TariffFactory, WorkFactory
from tests.helpers import at

MARCH = at("2026-03-15T12:00:00+09:00")


@pytest.fixture(autouse=True)
def _in_english() -> Iterator[None]:
    # The command's messages are translated and the default language is Korean; these tests read English.
    with translation.override("en"):
        yield


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
def test_a_payout_that_overdraws_a_holders_payable_fails_naming_the_payout(accounts):
    payouts = account_get_or_create(kind=AccountKind.PAYOUTS)

    def payout(key: str, amount: int, account: Account, day: int) -> LedgerEntry:
        entry, _created = ledger_post(
            idempotency_key=key,
            kind=EntryKind.PAYOUT,
            effective_at=MARCH + timedelta(days=day),
            lines=[(account, amount), (payouts, -amount)],
        )
        return entry

    _post(accounts, "earned", amount=1_500_000)  # 1.5 KRW owed to the holder
    exact = payout("paid-what-was-due", 1_000_000, accounts["holder"], day=1)  # leaves 0.5 KRW: fine
    ledger_post(
        idempotency_key="other-earned",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], 246_916_047), (accounts["other"], -246_916_047)],
    )
    # Paid 247 KRW of a 246.916047 KRW due: the payable is overdrawn by 0.083953 KRW ...
    overdrawn = payout("paid-too-much", 247_000_000, accounts["other"], day=1)
    # ... even though a later accrual brings the balance back: the check replays the payable in time order.
    ledger_post(
        idempotency_key="other-earned-later",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH + timedelta(days=2),
        lines=[(accounts["lab"], 1_000_000), (accounts["other"], -1_000_000)],
    )
    out = StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("ledger_check", stdout=out)

    assert f"payouts_within_payable: {overdrawn.pk}" in str(failed.value)
    assert f"FAILED  payouts_within_payable: 1 entry: {overdrawn.pk}" in out.getvalue()
    assert str(exact.pk) not in str(failed.value).split("payouts_within_payable: ")[1]
    assert "ok      balanced" in out.getvalue()


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


# --- Manifests, escrow and releases -----------------------------------------------------------------

BOOK = "9788936434021"
UNREGISTERED = "9780306406157"


@dataclass
class Processed:
    """A lab's manifest processed into the ledger, with one escrow release already made."""

    manifest: UsageManifest
    lines: dict[int, ManifestLine]
    accrual: LedgerEntry
    release: EscrowRelease
    unclaimed: Account  # the book's unclaimed 40%: half released, half still held
    unmatched: Account  # held for an ISBN nobody has registered


def _refetch(processed: Processed) -> Processed:
    processed.lines = {line.line_no: line for line in ManifestLine.objects.filter(manifest=processed.manifest)}
    return processed


@pytest.fixture
def processed(lab, holder, other_holder, staff, django_capture_on_commit_callbacks) -> Processed:
    TariffFactory(kind="text", unit="token", rate_krw=Decimal("0.0005"), set_by=staff)
    book = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], share_bp=6000, verified_by=staff)
    ClaimFactory(work=book, holder=other_holder, share_bp=2000)
    used_at = (timezone.now() - timedelta(days=1)).isoformat()
    body = {
        "manifest_id": "run-1",
        "model": "hangul-7b",
        "lines": [
            {"scheme": "isbn", "value": BOOK, "units": "2000.002", "unit": "token", "used_at": used_at},
            {"scheme": "isbn", "value": UNREGISTERED, "units": "1000", "unit": "token", "used_at": used_at},
            {"scheme": "isbn", "value": BOOK, "units": "7", "unit": "second", "used_at": used_at},  # unpriced
        ],
    }
    with django_capture_on_commit_callbacks(execute=True):
        manifest, _created = usage_manifest_submit_json(actor=Actor(party=lab), data=body)
    with django_capture_on_commit_callbacks(execute=True):  # releases the co-owner's 20% of the book's line
        claim_verify(actor=Actor(user=staff), claim=OwnershipClaim.objects.get(work=book, holder=other_holder))
    release = EscrowRelease.objects.get()
    processed = Processed(
        manifest=manifest,
        lines={},
        accrual=LedgerEntry.objects.get(kind=EntryKind.ACCRUAL),
        release=release,
        unclaimed=Account.objects.get(kind=AccountKind.ESCROW_UNCLAIMED),
        unmatched=Account.objects.get(kind=AccountKind.ESCROW_UNMATCHED),
    )
    _refetch(processed)
    assert [line.outcome for line in processed.lines.values()] == ["matched", "unmatched_held", "unpriced"]
    assert processed.lines[1].released_micro == release.amount_micro == 200_000
    assert processed.lines[1].hold_open  # 20% of the book is still nobody's
    return processed


def _check_fails() -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("ledger_check", stdout=out)
    assert failed.value.returncode == 1
    return str(failed.value), out.getvalue()


def _failed_checks(output: str) -> list[str]:
    return [line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("  FAILED")]


def _raw(sql: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _line_checks_off(on_postgres: bool) -> None:
    """Let this (rolled-back) transaction write manifest lines the CHECK constraints refuse."""
    if on_postgres:
        deferred_guards_check()  # ALTER TABLE refuses while trigger events are pending (deferred foreign keys)
        _raw("ALTER TABLE compensation_manifestline DROP CONSTRAINT manifest_line_conserved")
        _raw("ALTER TABLE compensation_manifestline DROP CONSTRAINT manifest_line_release_bounded")
    else:
        _raw("PRAGMA ignore_check_constraints = ON")


@pytest.fixture
def line_checks_off(on_postgres: bool) -> Iterator[Callable[[], None]]:
    yield lambda: _line_checks_off(on_postgres)
    if not on_postgres:
        _raw("PRAGMA ignore_check_constraints = OFF")


@pytest.mark.django_db
def test_a_clean_run_after_manifests_releases_and_repricing_passes(
    processed, staff, django_capture_on_commit_callbacks
):
    # Staff price the unpriced line afterwards: a reprice entry of its own, the line pointing to it.
    with django_capture_on_commit_callbacks(execute=True):
        tariff_set(
            actor=Actor(user=staff),
            kind="text",
            unit="second",
            rate_krw=Decimal("0.3"),
            effective_from=timezone.now() - timedelta(days=400),
        )
    _refetch(processed)
    repriced = processed.lines[3]
    assert (repriced.outcome, repriced.amount_micro) == ("matched", 2_100_000)
    assert repriced.entry_id not in (None, processed.accrual.pk)
    out = StringIO()

    call_command("ledger_check", stdout=out)

    output = out.getvalue()
    assert "FAILED" not in output
    for name in ("manifest_accruals", "manifest_line_entries", "manifest_lines_conserved", "escrow_holds"):
        assert f"ok      {name}" in output
    for name in ("escrow_releases", "release_entries"):
        assert f"ok      {name}" in output
    assert output.rstrip().endswith("Ledger OK.")


@pytest.mark.django_db
def test_an_accrual_for_a_manifest_without_its_lines_fails(processed, accounts):
    # Balanced, so the database takes it; but no manifest line accounts for what the lab is charged.
    stray, _created = ledger_post(
        idempotency_key="stray",
        kind=EntryKind.ACCRUAL,
        effective_at=MARCH,
        lines=[(accounts["lab"], 7), (accounts["holder"], -7)],
        source={"manifest": processed.manifest.pk},
    )

    message, output = _check_fails()

    assert f"manifest_accruals: {stray.pk}" in message
    assert "FAILED  manifest_accruals: 1 entry" in output
    assert _failed_checks(output) == ["manifest_accruals"]


@pytest.mark.django_db
def test_a_manifest_line_priced_differently_from_its_entry_fails(processed):
    line = processed.lines[2]
    # Still conserved per line (the CHECK holds), but the entry charged the lab the old amount.
    _raw(
        "UPDATE compensation_manifestline SET amount_micro = amount_micro + 1, held_micro = held_micro + 1"
        " WHERE id = %s",
        [line.pk],
    )

    message, output = _check_fails()

    assert f"manifest_accruals: {processed.accrual.pk}" in message
    assert f"escrow_holds: {processed.unmatched.pk}" in message
    assert _failed_checks(output) == ["manifest_accruals", "escrow_holds"]


@pytest.mark.django_db
def test_a_manifest_line_pointing_to_another_entry_fails(processed, accounts):
    other, _created = ledger_post(
        idempotency_key="other",
        kind=EntryKind.ADJUSTMENT,
        effective_at=MARCH,
        lines=[(accounts["lab"], 7), (accounts["holder"], -7)],
    )
    line = processed.lines[2]
    _raw("UPDATE compensation_manifestline SET entry_id = %s WHERE id = %s", [other.pk, line.pk])

    message, output = _check_fails()

    assert f"manifest_line_entries: {line.pk}" in message
    assert f"manifest_accruals: {processed.accrual.pk}" in message  # it lost a line's amount
    # The hold now dates from the other entry's month, which no notice of the public list covers.
    assert f"holds_noticed: {line.pk}" in message
    assert _failed_checks(output) == ["manifest_accruals", "manifest_line_entries", "holds_noticed"]


@pytest.mark.django_db
def test_manifest_lines_that_do_not_add_up_fail(processed, line_checks_off):
    line_checks_off()
    matched, unmatched = processed.lines[1], processed.lines[2]
    # The line's parts no longer make its amount; more released than was held; an open hold marked closed.
    _raw("UPDATE compensation_manifestline SET paid_micro = paid_micro - 1 WHERE id = %s", [matched.pk])
    _raw("UPDATE compensation_manifestline SET hold_open = false WHERE id = %s", [unmatched.pk])
    unpriced = processed.lines[3]
    _raw("UPDATE compensation_manifestline SET released_micro = 5 WHERE id = %s", [unpriced.pk])

    message, output = _check_fails()

    ids = ", ".join(str(pk) for pk in sorted([matched.pk, unmatched.pk, unpriced.pk]))
    assert f"manifest_lines_conserved: {ids}" in message
    assert "FAILED  manifest_lines_conserved: 3 manifest lines" in output
    # The 5 µ₩ "released" from a line that held nothing were held in no account: only this check sees it.
    assert _failed_checks(output) == ["manifest_lines_conserved"]


@pytest.mark.django_db
def test_escrow_moved_by_hand_fails(processed, accounts):
    # Balanced and within the escrow's balance, so the database takes it; no manifest line says why.
    ledger_post(
        idempotency_key="taken",
        kind=EntryKind.ADJUSTMENT,
        effective_at=MARCH,
        lines=[(processed.unmatched, 5), (accounts["holder"], -5)],
    )

    message, output = _check_fails()

    assert f"escrow_holds: {processed.unmatched.pk}" in message
    assert _failed_checks(output) == ["escrow_holds"]


@pytest.mark.django_db
def test_reversing_a_manifest_accrual_leaves_its_holds_unbacked(processed, lab, django_capture_on_commit_callbacks):
    body = {
        "manifest_id": "run-2",
        "model": "hangul-7b",
        "lines": [
            {
                "scheme": "isbn",
                "value": UNREGISTERED,
                "units": "10",
                "unit": "token",
                "used_at": timezone.now().isoformat(),
            }
        ],
    }
    with django_capture_on_commit_callbacks(execute=True):
        manifest, _created = usage_manifest_submit_json(actor=Actor(party=lab), data=body)
    accrual = LedgerEntry.objects.get(source__manifest=manifest.pk)
    # The service refuses to reverse it...
    with pytest.raises(LedgerError) as refused:
        ledger_reverse(entry=accrual, actor=Actor.system(), reason="test: lab disputes the run")
    assert refused.value.code == "not_reversible"
    # ...and a reversal posted around it, which the database takes (escrow does not go into debit)...
    lines = [(account_id, -amount) for account_id, amount in accrual.lines.values_list("account_id", "amount_micro")]
    ledger_post(
        idempotency_key=f"reversal:{accrual.pk}",
        kind=EntryKind.REVERSAL,
        effective_at=timezone.now(),
        lines=lines,
        reverses=accrual,
    )
    deferred_guards_check()

    message, output = _check_fails()

    # ...but the manifest line still says the money is held, and escrow no longer has it.
    assert f"escrow_holds: {processed.unmatched.pk}" in message
    assert _failed_checks(output) == ["escrow_holds"]


@pytest.mark.django_db
def test_a_release_that_misstates_its_amount_fails(processed):
    _raw("UPDATE compensation_escrowrelease SET amount_micro = amount_micro + 1 WHERE id = %s", [processed.release.pk])

    message, output = _check_fails()

    assert f"escrow_releases: {processed.release.pk}" in message
    assert "FAILED  escrow_releases: 1 escrow release" in output
    assert _failed_checks(output) == ["escrow_releases"]


@pytest.mark.django_db
def test_an_allocation_that_misstates_a_release_fails(processed):
    line = processed.lines[1]
    allocation = [list(part) for part in line.allocation]
    assert allocation[-1][3] == processed.release.entry_id
    allocation[-1][2] -= 1
    ManifestLine.objects.filter(pk=line.pk).update(allocation=allocation)

    message, output = _check_fails()

    assert f"escrow_releases: {processed.release.pk}" in message
    assert _failed_checks(output) == ["escrow_releases"]


@pytest.mark.django_db
def test_a_release_entry_posted_by_hand_fails(processed, accounts):
    # Released by hand: no EscrowRelease row, no manifest line released, and into a lab's receivable.
    entry, _created = ledger_post(
        idempotency_key="by-hand",
        kind=EntryKind.RELEASE,
        effective_at=MARCH,
        lines=[(processed.unmatched, 5), (accounts["lab"], -5)],
    )

    message, output = _check_fails()

    assert f"release_entries: {entry.pk}" in message
    assert f"escrow_holds: {processed.unmatched.pk}" in message
    assert _failed_checks(output) == ["escrow_holds", "release_entries"]
