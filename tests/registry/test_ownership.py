"""Ownership claims: filing, staff verification and rejection, overclaims and disputes."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from registry.models import AuditEvent, ClaimStatus, OwnershipClaim, Work, WorkStatus

pytestmark = pytest.mark.django_db


def _register(client, isbn="9788936434021", share_bp=10000):
    response = client.post(
        "/api/v1/works",
        {"title": "Work", "kind": "text", "identifiers": [{"scheme": "isbn", "value": isbn}], "share_bp": share_bp},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_staff_verifies_a_claim_and_the_work_becomes_verified(holder_api, staff_api, staff):
    work = _register(holder_api)

    response = staff_api.post(
        f"/api/v1/claims/{work['claim']['id']}/verify", {"reason": "contract seen"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == ClaimStatus.VERIFIED
    claim = OwnershipClaim.objects.get(pk=work["claim"]["id"])
    assert claim.decided_by == staff
    assert claim.decision_reason == "contract seen"
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.VERIFIED
    event = AuditEvent.objects.get(code="registry.claim.verified")
    assert event.actor_user == staff


def test_holder_cannot_verify_their_own_claim(holder_api):
    work = _register(holder_api)

    response = holder_api.post(f"/api/v1/claims/{work['claim']['id']}/verify", {}, format="json")

    assert response.status_code == 403
    assert OwnershipClaim.objects.get().status == ClaimStatus.PENDING


def test_rejecting_needs_a_reason(holder_api, staff_api):
    work = _register(holder_api)

    missing = staff_api.post(f"/api/v1/claims/{work['claim']['id']}/reject", {}, format="json")
    done = staff_api.post(f"/api/v1/claims/{work['claim']['id']}/reject", {"reason": "no proof"}, format="json")

    assert missing.status_code == 400
    assert missing.json()["error"]["field"] == "reason"
    assert done.status_code == 200
    assert OwnershipClaim.objects.get().status == ClaimStatus.REJECTED
    assert AuditEvent.objects.get(code="registry.claim.rejected").data["reason"] == "no proof"


def test_co_owners_split_a_work_and_both_are_verified(holder_api, other_holder_api, staff_api):
    work = _register(holder_api, share_bp=6000)
    claim = other_holder_api.post("/api/v1/claims", {"work": work["id"], "share_bp": 4000}, format="json")
    assert claim.status_code == 201, claim.content

    for claim_id in (work["claim"]["id"], claim.json()["id"]):
        assert staff_api.post(f"/api/v1/claims/{claim_id}/verify", {}, format="json").status_code == 200

    assert Work.objects.get(pk=work["id"]).status == WorkStatus.VERIFIED
    assert sum(OwnershipClaim.objects.filter(status="verified").values_list("share_bp", flat=True)) == 10000


def test_an_overclaim_disputes_the_work_only_once_staff_accept_it_for_review(
    holder_api, other_holder_api, staff_api, staff
):
    work = _register(holder_api)
    staff_api.post(f"/api/v1/claims/{work['claim']['id']}/verify", {}, format="json")

    rival = other_holder_api.post("/api/v1/claims", {"work": work["id"], "share_bp": 5000}, format="json")

    # Filed by anyone, unreviewed: it changes nothing (it used to dispute the work at once).
    assert rival.status_code == 201
    assert rival.json()["status"] == ClaimStatus.PENDING
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.VERIFIED
    assert not AuditEvent.objects.filter(code="registry.work.disputed").exists()

    accepted = staff_api.post(
        f"/api/v1/claims/{rival.json()['id']}/accept-for-review", {"reason": "contract produced"}, format="json"
    )

    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["status"] == ClaimStatus.IN_REVIEW
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.DISPUTED
    event = AuditEvent.objects.get(code="registry.claim.accepted_for_review")
    assert (event.actor_user, event.object_id, event.data["reason"]) == (
        staff,
        str(rival.json()["id"]),
        "contract produced",
    )
    assert AuditEvent.objects.filter(code="registry.work.disputed").count() == 1
    # Accepting it twice, or a holder accepting it, is refused.
    again = staff_api.post(f"/api/v1/claims/{rival.json()['id']}/accept-for-review", {}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_state")
    mine = holder_api.post(f"/api/v1/claims/{rival.json()['id']}/accept-for-review", {}, format="json")
    assert mine.status_code in (403, 404)
    refused = staff_api.post(f"/api/v1/claims/{rival.json()['id']}/verify", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "overclaim"
    assert OwnershipClaim.objects.get(pk=rival.json()["id"]).status == ClaimStatus.IN_REVIEW


def test_a_claim_accepted_for_review_that_fits_the_unverified_share_disputes_nothing(
    holder_api, other_holder_api, staff_api
):
    work = _register(holder_api, share_bp=6000)
    staff_api.post(f"/api/v1/claims/{work['claim']['id']}/verify", {}, format="json")
    co_owner = other_holder_api.post("/api/v1/claims", {"work": work["id"], "share_bp": 4000}, format="json").json()

    accepted = staff_api.post(f"/api/v1/claims/{co_owner['id']}/accept-for-review", {}, format="json")
    verified = staff_api.post(f"/api/v1/claims/{co_owner['id']}/verify", {}, format="json")

    assert accepted.status_code == 200
    assert verified.status_code == 200
    assert verified.json()["status"] == ClaimStatus.VERIFIED
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.VERIFIED
    assert not AuditEvent.objects.filter(code="registry.work.disputed").exists()


def test_staff_resolve_a_dispute_by_rejecting_the_verified_claim_and_verifying_the_rival(
    holder_api, other_holder_api, staff_api, other_holder
):
    work = _register(holder_api)
    staff_api.post(f"/api/v1/claims/{work['claim']['id']}/verify", {}, format="json")
    rival = other_holder_api.post("/api/v1/claims", {"work": work["id"]}, format="json").json()
    staff_api.post(f"/api/v1/claims/{rival['id']}/accept-for-review", {}, format="json")
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.DISPUTED

    staff_api.post(f"/api/v1/claims/{work['claim']['id']}/reject", {"reason": "court ruling"}, format="json")
    verified = staff_api.post(f"/api/v1/claims/{rival['id']}/verify", {}, format="json")

    assert verified.status_code == 200
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.VERIFIED
    assert AuditEvent.objects.filter(code="registry.work.dispute_resolved").count() == 1
    assert OwnershipClaim.objects.get(status="verified").holder == other_holder


def test_a_holder_cannot_claim_the_same_work_twice(holder_api):
    work = _register(holder_api)

    again = holder_api.post("/api/v1/claims", {"work": work["id"]}, format="json")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "claim_exists"


def test_the_database_refuses_verified_shares_above_100_percent(holder, other_holder):
    from core.actors import Actor
    from registry.services import work_draft_build, work_register

    draft = work_draft_build(title="W", kind="text", identifiers=[{"scheme": "isbn", "value": "9780306406157"}])
    work, claim = work_register(actor=Actor.system(), holder=holder, draft=draft)
    OwnershipClaim.objects.filter(pk=claim.pk).update(status="verified")

    with pytest.raises(IntegrityError), transaction.atomic():
        # Bypassing the service entirely: only the database stands in the way.
        OwnershipClaim.objects.create(work=work, holder=other_holder, share_bp=1, status="verified")


def test_claim_list_shows_holders_their_own_and_staff_the_queue(holder_api, other_holder_api, staff_api):
    _register(holder_api)
    _register(other_holder_api, isbn="9780306406157")

    mine = holder_api.get("/api/v1/claims").json()
    queue = staff_api.get("/api/v1/claims", {"status": "pending"}).json()

    assert mine["count"] == 1
    assert queue["count"] == 2


def test_staff_accept_a_claim_for_review_from_the_admin_queue_and_verify_it_there(
    holder_api, other_holder_api, staff_api, staff
):
    from rest_framework.test import APIClient

    work = _register(holder_api, share_bp=6000)
    staff_api.post(f"/api/v1/claims/{work['claim']['id']}/verify", {}, format="json")
    rival = other_holder_api.post("/api/v1/claims", {"work": work["id"], "share_bp": 5000}, format="json").json()
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)

    response = client.post(
        "/admin/registry/ownershipclaim/",
        {"action": "accept_for_review", "_selected_action": [rival["id"]]},
        follow=True,
    )

    assert response.status_code == 200
    assert OwnershipClaim.objects.get(pk=rival["id"]).status == ClaimStatus.IN_REVIEW
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.DISPUTED
    assert AuditEvent.objects.filter(code="registry.claim.accepted_for_review", actor_user=staff).exists()
    # Verifying it would pass 100%: refused, the dispute stays; rejecting it from the admin resolves it.
    client.post("/admin/registry/ownershipclaim/", {"action": "verify", "_selected_action": [rival["id"]]})
    assert OwnershipClaim.objects.get(pk=rival["id"]).status == ClaimStatus.IN_REVIEW
    client.post("/admin/registry/ownershipclaim/", {"action": "reject", "_selected_action": [rival["id"]]})
    assert OwnershipClaim.objects.get(pk=rival["id"]).status == ClaimStatus.REJECTED
    assert Work.objects.get(pk=work["id"]).status == WorkStatus.VERIFIED
