"""Escrow release: money held for a work reaches its owners once they are verified, exactly once.

The lab reports uses through the API; holders register and staff verify through the services, with the
on-commit callbacks run, so the ``work_owners_changed`` signal queues the release task (eager in tests).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.utils import timezone, translation

from compensation.ledger.allocation import allocate_largest_remainder
from compensation.ledger.escrow import escrow_release_for_work
from compensation.ledger.selectors import account_balance
from compensation.ledger.services import ledger_post_entries
from compensation.models import (
    Account,
    AccountKind,
    EntryKind,
    EscrowRelease,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    Outcome,
)
from compensation.usage import services as usage
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.errors import InvalidState, NotPermitted
from registry.models import AuditEvent, OwnershipClaim, Party, Work, WorkStatus
from registry.services import claim_accept_for_review, claim_reject, claim_verify
from tests.compensation.helpers import manifest_body, used
from tests.factories import ClaimFactory, WorkFactory

pytestmark = pytest.mark.django_db

BOOK = "9788936434021"
OTHER_BOOK = "9780306406157"
THIRD_BOOK = "9780262033848"
# 0.0005 KRW (500 µ₩) a token: 2000.002 tokens cost 1,000,001 µ₩, which no split into 60% and 40% divides.
ODD_TOKENS = "2000.002"
ODD_MICRO = 1_000_001


@pytest.fixture
def tariffs(staff: Any) -> None:
    # Backdated before any tariff of its kind and unit, so every use in these tests is priced.
    tariff_set(
        actor=Actor(user=staff),
        kind="text",
        unit="token",
        rate_krw=Decimal("0.0005"),
        effective_from=timezone.now() - timedelta(days=400),
    )


@pytest.fixture
def report(lab_api: Any, tariffs: None, django_capture_on_commit_callbacks: Any) -> Any:
    """Submit a manifest of ``(isbn, tokens)`` lines through the API and return its outcome rows."""
    count = 0

    def submit(*uses: tuple[str, ...]) -> list[ManifestLine]:
        nonlocal count
        count += 1
        lines = [
            {"scheme": "isbn", "value": isbn, "units": tokens, "unit": "token", "used_at": when[0] if when else used()}
            for isbn, tokens, *when in uses
        ]
        with django_capture_on_commit_callbacks(execute=True):
            response = lab_api.post(
                "/api/v1/usage-manifests", manifest_body(lines, manifest_id=f"run-{count}"), format="json"
            )
        assert response.status_code == 202, response.content
        assert lab_api.get(response.json()["url"]).json()["status"] == "processed"
        return list(ManifestLine.objects.filter(manifest_id=response.json()["id"]).order_by("line_no"))

    return submit


@pytest.fixture
def verify(staff: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Staff verify a claim; the commit sends ``work_owners_changed``, which runs the release task."""

    def run(claim: OwnershipClaim) -> None:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            claim_verify(actor=Actor(user=staff), claim=claim)
        assert callbacks, "claim_verify queued nothing on commit"

    return run


def _claim(work: Work, holder: Party) -> OwnershipClaim:
    return OwnershipClaim.objects.get(work=work, holder=holder)


def _payable(holder: Party) -> int:
    account = Account.objects.filter(kind=AccountKind.HOLDER_PAYABLE, party=holder).first()
    return account_balance(account=account) if account is not None else 0


def _escrow(kind: str, key: str) -> Account:
    return Account.objects.get(kind=kind, escrow_key=key)


def _by_kind() -> dict[str, int]:
    rows = LedgerLine.objects.order_by().values("account__kind").annotate(total=Sum("amount_micro"))
    return {row["account__kind"]: int(row["total"]) for row in rows}


# --- An unregistered identifier --------------------------------------------------------------------


def test_money_held_for_an_unregistered_isbn_goes_to_its_verified_owner_once(report, holder, verify):
    (line,) = report((OTHER_BOOK, ODD_TOKENS))
    escrow = _escrow(AccountKind.ESCROW_UNMATCHED, f"isbn:{OTHER_BOOK}")
    assert line.outcome == Outcome.UNMATCHED_HELD
    assert (line.amount_micro, line.held_micro, line.held_account_id) == (ODD_MICRO, ODD_MICRO, escrow.pk)
    assert account_balance(account=escrow) == -ODD_MICRO

    work = WorkFactory(holder=holder, identifiers=[("isbn", OTHER_BOOK)])
    # Registered, not yet verified: nobody is paid.
    assert escrow_release_for_work(work_id=work.pk) == 0
    claim = _claim(work, holder)
    verify(claim)

    assert _payable(holder) == -ODD_MICRO
    assert account_balance(account=escrow) == 0
    release = EscrowRelease.objects.get()
    assert (release.work_id, release.amount_micro, release.lines, release.claims) == (work.pk, ODD_MICRO, 1, [claim.pk])
    entry = release.entry
    assert entry.kind == EntryKind.RELEASE
    assert entry.source["hold_entries"] == [line.entry_id]
    assert sorted(entry.lines.values_list("account_id", "amount_micro")) == sorted(
        [(escrow.pk, ODD_MICRO), (Account.objects.get(party=holder).pk, -ODD_MICRO)]
    )
    line.refresh_from_db()
    assert (line.released_micro, line.hold_open, line.open_bp) == (ODD_MICRO, False, 0)
    assert line.work_id is None  # the outcome at use stays what it was
    assert line.allocation == [[holder.pk, claim.pk, ODD_MICRO, entry.pk]]
    assert AuditEvent.objects.filter(code="compensation.escrow.released", object_id=str(work.pk)).count() == 1

    # Exactly once: again by hand, and again through the signal of another verification.
    entries = LedgerEntry.objects.count()
    assert escrow_release_for_work(work_id=work.pk) == 0
    claim_reject(actor=Actor.system(), claim=claim, reason="test: owner withdrawn")
    assert escrow_release_for_work(work_id=work.pk) == 0
    assert LedgerEntry.objects.count() == entries
    assert EscrowRelease.objects.count() == 1
    assert _payable(holder) == -ODD_MICRO


def test_co_owners_verified_at_different_times_are_paid_their_shares_to_the_micro_won(
    report, holder, other_holder, verify
):
    (line,) = report((OTHER_BOOK, ODD_TOKENS))
    escrow = _escrow(AccountKind.ESCROW_UNMATCHED, f"isbn:{OTHER_BOOK}")
    work = WorkFactory(holder=holder, identifiers=[("isbn", OTHER_BOOK)], share_bp=6000)
    ClaimFactory(work=work, holder=other_holder, share_bp=4000)

    verify(_claim(work, holder))

    # 60% of 1,000,001 is 600,000.6: the odd micro-won goes to the larger remainder, the owner's.
    assert _payable(holder) == -600_001
    assert _payable(other_holder) == 0
    assert account_balance(account=escrow) == -400_000
    line.refresh_from_db()
    assert (line.released_micro, line.hold_open, line.open_bp) == (600_001, True, 4000)

    verify(_claim(work, other_holder))

    assert _payable(holder) == -600_001
    assert _payable(other_holder) == -400_000
    assert _payable(holder) + _payable(other_holder) == -ODD_MICRO
    assert account_balance(account=escrow) == 0
    line.refresh_from_db()
    assert (line.released_micro, line.hold_open, line.open_bp) == (ODD_MICRO, False, 0)
    first, second = EscrowRelease.objects.order_by("pk")
    assert (first.amount_micro, second.amount_micro) == (600_001, 400_000)
    assert [part[:3] for part in line.allocation] == [
        [holder.pk, _claim(work, holder).pk, 600_001],
        [other_holder.pk, _claim(work, other_holder).pk, 400_000],
    ]
    assert [part[3] for part in line.allocation] == [first.entry_id, second.entry_id]
    assert escrow_release_for_work(work_id=work.pk) == 0


# --- Registered works: unclaimed shares and disputes ------------------------------------------------


def test_share_unclaimed_lines_are_released_when_the_pending_claim_is_verified(report, holder, verify):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    (line,) = report((BOOK, ODD_TOKENS))
    escrow = _escrow(AccountKind.ESCROW_UNCLAIMED, f"work:{work.pk}")
    assert line.outcome == Outcome.SHARE_UNCLAIMED
    assert (line.work_id, line.held_micro, line.held_account_id, line.open_bp) == (
        work.pk,
        ODD_MICRO,
        escrow.pk,
        10_000,
    )

    verify(_claim(work, holder))

    assert _payable(holder) == -ODD_MICRO
    assert account_balance(account=escrow) == 0
    assert EscrowRelease.objects.get().amount_micro == ODD_MICRO


def test_the_unclaimed_part_of_a_matched_line_goes_to_the_co_owner_verified_later(report, holder, other_holder, verify):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], share_bp=6000)
    owner_claim = _claim(work, holder)
    verify(owner_claim)  # nothing held yet: releases nothing
    assert not EscrowRelease.objects.exists()
    (line,) = report((BOOK, ODD_TOKENS))
    escrow = _escrow(AccountKind.ESCROW_UNCLAIMED, f"work:{work.pk}")
    assert line.outcome == Outcome.MATCHED
    assert (line.paid_micro, line.held_micro, line.open_bp) == (600_001, 400_000, 4000)
    assert _payable(holder) == -600_001

    ClaimFactory(work=work, holder=other_holder, share_bp=4000)
    verify(_claim(work, other_holder))

    assert _payable(other_holder) == -400_000
    assert _payable(holder) == -600_001  # already paid its share at use: nothing more
    assert account_balance(account=escrow) == 0
    line.refresh_from_db()
    assert line.allocation == [
        [holder.pk, owner_claim.pk, 600_001, line.entry_id],
        [other_holder.pk, _claim(work, other_holder).pk, 400_000, EscrowRelease.objects.get().entry_id],
    ]


def test_an_owner_whose_part_at_use_rounded_to_nothing_is_not_paid_again_on_release(
    report, holder, other_holder, verify
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], share_bp=40)
    verify(_claim(work, holder))
    (line,) = report((BOOK, "0.2"))  # 100 µ₩: the owner's 0.4% is 0.4 µ₩, which rounds to nothing
    assert (line.outcome, line.amount_micro, line.paid_micro, line.held_micro) == (Outcome.MATCHED, 100, 0, 100)
    assert line.open_bp == 9960
    ClaimFactory(work=work, holder=other_holder, share_bp=4000)

    verify(_claim(work, other_holder))

    # The co-owner's 4000 of the open 9960 bp: 40.16 µ₩ → 40; the rest stays held for the open 5960 bp.
    line.refresh_from_db()
    assert _payable(holder) == 0
    assert _payable(other_holder) == -40
    assert (line.released_micro, line.open_bp) == (40, 5960)


def test_a_disputed_work_is_released_only_when_the_dispute_is_resolved(
    report, holder, other_holder, staff, verify, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    verify(_claim(work, holder))
    overclaim = ClaimFactory(work=work, holder=other_holder, share_bp=10_000)
    claim_accept_for_review(actor=Actor(user=staff), claim=overclaim)
    assert Work.objects.get(pk=work.pk).status == WorkStatus.DISPUTED
    (line,) = report((BOOK, ODD_TOKENS))
    escrow = _escrow(AccountKind.ESCROW_DISPUTED, f"work:{work.pk}")
    assert line.outcome == Outcome.DISPUTED_HELD
    assert (line.held_micro, line.held_account_id) == (ODD_MICRO, escrow.pk)

    # While disputed, nothing moves, whoever asks.
    assert escrow_release_for_work(work_id=work.pk) == 0
    assert account_balance(account=escrow) == -ODD_MICRO
    assert _payable(holder) == 0

    with django_capture_on_commit_callbacks(execute=True):
        claim_reject(actor=Actor(user=staff), claim=overclaim, reason="overclaim: no rights shown")

    assert Work.objects.get(pk=work.pk).status == WorkStatus.VERIFIED
    assert _payable(holder) == -ODD_MICRO
    assert _payable(other_holder) == 0
    assert account_balance(account=escrow) == 0
    assert EscrowRelease.objects.get().claims == [_claim(work, holder).pk]


# --- Disputes: only a claim staff accepted for review holds the owners' payments -------------------


def _lookup_compensation(lab_api: Any, isbn: str) -> str:
    response = lab_api.post("/api/v1/lookup", {"items": [{"scheme": "isbn", "value": isbn}]}, format="json")
    assert response.status_code == 200, response.content
    return str(response.json()["results"][0]["compensation"])


def test_an_outsiders_claim_on_a_verified_work_leaves_its_owner_paid_and_its_status_unchanged(
    report, holder, other_holder_api, lab_api, verify
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    verify(_claim(work, holder))

    filed = other_holder_api.post("/api/v1/claims", {"work": work.pk, "share_bp": 10_000}, format="json")
    (line,) = report((BOOK, ODD_TOKENS))

    assert filed.status_code == 201, filed.content
    assert filed.json()["status"] == "pending"
    assert Work.objects.get(pk=work.pk).status == WorkStatus.VERIFIED
    assert not AuditEvent.objects.filter(code="registry.work.disputed").exists()
    # The use is paid to the verified owner, as before the claim; nothing is held in escrow for it.
    assert line.outcome == Outcome.MATCHED
    assert (line.paid_micro, line.held_micro) == (ODD_MICRO, 0)
    assert _payable(holder) == -ODD_MICRO
    assert not Account.objects.filter(kind=AccountKind.ESCROW_DISPUTED).exists()
    assert _lookup_compensation(lab_api, BOOK) == "owners"


@pytest.mark.parametrize("resolution", ["rival_rejected", "owner_rejected_and_rival_verified"])
def test_after_staff_accept_a_claim_for_review_uses_are_held_until_they_resolve_it(
    report,
    holder,
    other_holder,
    other_holder_api,
    staff,
    staff_api,
    lab_api,
    verify,
    resolution,
    django_capture_on_commit_callbacks,
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    verify(_claim(work, holder))
    rival = other_holder_api.post("/api/v1/claims", {"work": work.pk, "share_bp": 10_000}, format="json").json()
    (before,) = report((BOOK, ODD_TOKENS))
    assert before.outcome == Outcome.MATCHED

    accepted = staff_api.post(f"/api/v1/claims/{rival['id']}/accept-for-review", {}, format="json")

    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == "in_review"
    assert Work.objects.get(pk=work.pk).status == WorkStatus.DISPUTED
    event = AuditEvent.objects.get(code="registry.claim.accepted_for_review")
    assert (event.actor_user, event.object_id) == (staff, str(rival["id"]))
    assert AuditEvent.objects.filter(code="registry.work.disputed").count() == 1
    assert _lookup_compensation(lab_api, BOOK) == "escrow"
    # The next use goes to escrow; what the owner was paid before stays paid.
    (held,) = report((BOOK, ODD_TOKENS))
    escrow = _escrow(AccountKind.ESCROW_DISPUTED, f"work:{work.pk}")
    assert held.outcome == Outcome.DISPUTED_HELD
    assert (held.paid_micro, held.held_micro, held.held_account_id) == (0, ODD_MICRO, escrow.pk)
    assert _payable(holder) == -ODD_MICRO
    assert account_balance(account=escrow) == -ODD_MICRO

    with django_capture_on_commit_callbacks(execute=True):
        if resolution == "rival_rejected":
            done = staff_api.post(f"/api/v1/claims/{rival['id']}/reject", {"reason": "no rights shown"}, format="json")
            paid, unpaid = holder, other_holder
        else:
            staff_api.post(
                f"/api/v1/claims/{_claim(work, holder).pk}/reject", {"reason": "court ruling"}, format="json"
            )
            done = staff_api.post(f"/api/v1/claims/{rival['id']}/verify", {"reason": "court ruling"}, format="json")
            paid, unpaid = other_holder, holder
    assert done.status_code == 200, done.content

    # Resolved: the held use is released to whoever owns the work now, and the next one is paid outright.
    assert Work.objects.get(pk=work.pk).status == WorkStatus.VERIFIED
    assert AuditEvent.objects.filter(code="registry.work.dispute_resolved").count() == 1
    assert account_balance(account=escrow) == 0
    assert _payable(paid) == -ODD_MICRO - (ODD_MICRO if paid == holder else 0)
    assert _payable(unpaid) == (0 if unpaid == other_holder else -ODD_MICRO)
    (after,) = report((BOOK, ODD_TOKENS))
    assert after.outcome == Outcome.MATCHED
    assert _lookup_compensation(lab_api, BOOK) == "owners"


def test_only_staff_accept_a_claim_for_review_and_only_a_pending_one(holder, other_holder, staff):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    rival = ClaimFactory(work=work, holder=other_holder, share_bp=10_000)

    with pytest.raises(NotPermitted):
        claim_accept_for_review(actor=Actor(party=other_holder), claim=rival)
    claim_accept_for_review(actor=Actor(user=staff), claim=rival)
    with pytest.raises(InvalidState):
        claim_accept_for_review(actor=Actor(user=staff), claim=rival)

    assert OwnershipClaim.objects.get(pk=rival.pk).status == "in_review"
    assert AuditEvent.objects.filter(code="registry.claim.accepted_for_review").count() == 1


# --- Conservation ----------------------------------------------------------------------------------


def test_conservation_after_uses_releases_and_violations(
    report, lab, holder, holder_api, other_holder, staff, verify, django_capture_on_commit_callbacks
):
    book = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], share_bp=6000)
    verify(_claim(book, holder))
    refused = WorkFactory(holder=holder, identifiers=[("isbn", THIRD_BOOK)])
    verify(_claim(refused, holder))
    response = holder_api.post(
        "/api/v1/refusals", {"scope": "work", "work": refused.pk, "purposes": ["train-ai"]}, format="json"
    )
    assert response.status_code == 201, response.content
    first = report(
        (BOOK, ODD_TOKENS),  # matched: 60% paid, 40% held
        (OTHER_BOOK, "1234.567"),  # unmatched: held
        (THIRD_BOOK, "999.999", timezone.now().isoformat()),  # refused when used: a violation
    )
    assert [line.outcome for line in first] == [Outcome.MATCHED, Outcome.UNMATCHED_HELD, Outcome.REFUSED_AT_USE]

    other = WorkFactory(holder=other_holder, identifiers=[("isbn", OTHER_BOOK)], share_bp=7000)
    verify(_claim(other, other_holder))  # 70% of the unmatched hold released, 30% still held
    ClaimFactory(work=book, holder=other_holder, share_bp=4000)
    second = report((BOOK, "3.001"), (OTHER_BOOK, "7"))  # after 70% verified: matched, 30% held
    verify(_claim(book, other_holder))  # the book's 40% of both its lines released

    lines = ManifestLine.objects.all()
    total = lines.aggregate(total=Sum("amount_micro"))["total"]
    kinds = _by_kind()
    escrow = sum(kinds.get(kind, 0) for kind in ("escrow_unmatched", "escrow_unclaimed", "escrow_disputed"))
    receivable = account_balance(account=Account.objects.get(kind=AccountKind.LAB_RECEIVABLE, party=lab))
    assert total == receivable == sum(line.amount_micro for line in [*first, *second])
    assert receivable == -(kinds[AccountKind.HOLDER_PAYABLE] + escrow + kinds[AccountKind.VIOLATIONS])
    assert kinds[AccountKind.VIOLATIONS] == -first[2].amount_micro
    # What is still held is exactly the unreleased part of the holds, line by line.
    still_held = sum(line.held_micro - line.released_micro for line in lines)
    assert escrow == -still_held
    _released, kept = allocate_largest_remainder(total=first[1].amount_micro, weights=[7000, 3000])
    assert still_held == kept + second[1].held_micro > 0
    assert _payable(holder) + _payable(other_holder) == kinds[AccountKind.HOLDER_PAYABLE]
    assert sum(kinds.values()) == 0
    assert EscrowRelease.objects.aggregate(total=Sum("amount_micro"))["total"] == sum(
        line.released_micro for line in lines
    )

    out = StringIO()
    with translation.override("en"):
        call_command("ledger_check", stdout=out)  # raises CommandError if any check fails
    assert out.getvalue().rstrip().endswith("Ledger OK.")


# --- A verification racing a chunk of a manifest ---------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_hold_committed_after_the_release_ran_is_still_released(lab, holder, staff, tariffs, monkeypatch):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    monkeypatch.setattr("compensation.usage.services._enqueue", lambda manifest_pk: None)  # processed below, by hand
    used_at = used()
    body = manifest_body([{"scheme": "isbn", "value": BOOK, "units": ODD_TOKENS, "unit": "token", "used_at": used_at}])
    manifest, _created = usage.usage_manifest_submit_json(actor=Actor(party=lab), data=body)
    decided, go = threading.Event(), threading.Event()
    post = ledger_post_entries  # the real one, which usage's chunk calls by the name it imported

    def post_when_told(**kwargs: Any) -> dict[str, int]:
        decided.set()  # the chunk has read the claims (none verified) and decided: held
        assert go.wait(timeout=30)
        return post(**kwargs)

    monkeypatch.setattr("compensation.usage.services.ledger_post_entries", post_when_told)

    def process() -> None:
        try:
            usage.usage_manifest_process(manifest_id=manifest.pk, engine="python")
        finally:
            connection.close()

    def verify() -> None:
        try:
            # Verified and committed while the chunk is still open; the release task it starts must wait
            # for the chunk (the escrow lock) rather than find nothing and stop.
            claim_verify(actor=Actor(user=staff), claim=_claim(work, holder))
        finally:
            connection.close()

    worker = threading.Thread(target=process)
    worker.start()
    verifier = threading.Thread(target=verify)
    try:
        assert decided.wait(timeout=30)
        verifier.start()
        time.sleep(1)  # the verification commits and its release task blocks on the chunk
        assert verifier.is_alive(), "the release did not wait for the chunk in flight"
    finally:
        go.set()
        worker.join(timeout=30)
        if verifier.is_alive() or verifier.ident is not None:
            verifier.join(timeout=30)

    line = ManifestLine.objects.get(manifest=manifest)
    assert line.outcome == Outcome.SHARE_UNCLAIMED
    assert _payable(holder) == -ODD_MICRO, "the verified owner's money is still held"
