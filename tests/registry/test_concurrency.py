"""Races that only a real PostgreSQL can show."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from core.actors import Actor
from registry.errors import Overclaim
from registry.models import ClaimStatus, OwnershipClaim
from registry.services import claim_file, claim_verify, work_draft_build, work_register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_staff_verifying_rival_claims_at_once_verify_exactly_one(holder, other_holder, staff):
    draft = work_draft_build(
        title="Joint", kind="text", identifiers=[{"scheme": "isbn", "value": "9780306406157"}], share_bp=6000
    )
    work, first = work_register(actor=Actor.system(), holder=holder, draft=draft)
    second = claim_file(actor=Actor(party=other_holder), holder=other_holder, work=work, share_bp=6000)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def verify(claim: OwnershipClaim) -> None:
        try:
            barrier.wait()
            claim_verify(actor=Actor(user=staff), claim=claim)
            outcomes.append("verified")
        except Overclaim:
            outcomes.append("overclaim")
        finally:
            connection.close()

    threads = [threading.Thread(target=verify, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(outcomes) == ["overclaim", "verified"]
    assert OwnershipClaim.objects.filter(work=work, status=ClaimStatus.VERIFIED).count() == 1


def test_concurrent_registrations_of_one_identifier_make_one_work(holder, other_holder):
    barrier = threading.Barrier(2)
    results: list[object] = []

    def register(party) -> None:
        try:
            barrier.wait()
            draft = work_draft_build(
                title="Same", kind="text", identifiers=[{"scheme": "doi", "value": "10.1000/race"}]
            )
            results.append(work_register(actor=Actor(party=party), holder=party, draft=draft))
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(p,)) for p in (holder, other_holder)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    from registry.errors import IdentifierTaken
    from registry.models import Work

    assert Work.objects.count() == 1
    assert sum(isinstance(r, IdentifierTaken) for r in results) == 1
