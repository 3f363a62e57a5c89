"""Portal work pages follow the dispute rule: a filed claim changes nothing; one under review holds payment."""

from __future__ import annotations

import pytest

from core.actors import Actor
from registry.models import ClaimStatus, OwnershipClaim, Work, WorkStatus
from registry.services import claim_accept_for_review

pytestmark = pytest.mark.django_db


def test_an_outsiders_claim_leaves_the_owners_page_unchanged_until_staff_accept_it_for_review(
    owner_client, other_client, book, other_holder, staff
):
    filed = other_client.post(f"/dashboard/works/{book.pk}/claim/", {"share_percent": "100"})
    assert filed.status_code == 302, filed.content
    rival = OwnershipClaim.objects.get(work=book, holder=other_holder)
    assert rival.status == ClaimStatus.PENDING

    page = owner_client.get(f"/dashboard/works/{book.pk}/").content.decode()
    assert Work.objects.get(pk=book.pk).status == WorkStatus.VERIFIED
    assert "Compensation for its use goes to its verified owners." in page
    assert "Disputed" not in page

    claim_accept_for_review(actor=Actor(user=staff), claim=rival)
    page = owner_client.get(f"/dashboard/works/{book.pk}/").content.decode()

    assert "Disputed" in page
    assert "Under review" in page
    assert "held in escrow while registry staff review a contested ownership claim" in page
    assert "goes to its verified owners" not in page
