"""Mandates in the portal: a society invites, the member accepts, the society refuses the member's catalogue."""

from __future__ import annotations

from typing import Any

from django.test import Client

from optout.models import Refusal
from registry.models import AuditEvent, Mandate, MandateStatus
from tests.helpers import signed_in


def test_society_invites_member_accepts_and_society_refuses_the_catalogue(
    society: Any, holder: Any, owner: Any
) -> None:
    desk: Client = signed_in(society.memberships.get().user)
    page = desk.get("/dashboard/")
    assert page.status_code == 302
    assert page["Location"].endswith("/dashboard/mandates/")
    invited = desk.post(
        "/dashboard/mandates/",
        {"member_email": owner.email, "scope": "catalogue", "powers": ["refuse"], "statements_to": "member"},
    )
    assert invited.status_code == 302, invited.content.decode()[:2000]
    mandate = Mandate.objects.get()
    assert (mandate.member, mandate.status) == (holder, MandateStatus.INVITED)

    member: Client = signed_in(owner)
    listing = member.get("/dashboard/mandates/")
    assert "Korea Music Society" in listing.content.decode()
    assert member.post(f"/dashboard/mandates/{mandate.pk}/accept/").status_code == 302
    mandate.refresh_from_db()
    assert mandate.status == MandateStatus.ACTIVE

    refused = desk.post(f"/dashboard/mandates/{mandate.pk}/refuse-catalogue/", {"purpose": "train-ai"})
    assert refused.status_code == 302
    refusal = Refusal.objects.get()
    assert (refusal.holder, refusal.agent, refusal.scope) == (holder, society, "catalogue")
    shown = member.get("/dashboard/refusals/").content.decode()
    assert "Filed by Korea Music Society for Hangang Press" in shown
    dashboard = member.get("/dashboard/").content.decode()
    assert "by Korea Music Society for Hangang Press" in dashboard
    assert AuditEvent.objects.filter(code="optout.refusal.filed", on_behalf_of=holder).count() == 1


def test_other_party_cannot_accept_or_see_the_invitation(
    society: Any, holder: Any, owner: Any, other_holder: Any, co_owner: Any
) -> None:
    desk = signed_in(society.memberships.get().user)
    desk.post(
        "/dashboard/mandates/",
        {"member_email": owner.email, "scope": "catalogue", "powers": ["refuse"], "statements_to": "member"},
    )
    mandate = Mandate.objects.get()
    intruder = signed_in(co_owner)
    assert intruder.post(f"/dashboard/mandates/{mandate.pk}/accept/").status_code == 404
    assert "Korea Music Society" not in intruder.get("/dashboard/mandates/").content.decode()
    mandate.refresh_from_db()
    assert mandate.status == MandateStatus.INVITED


def test_society_cannot_refuse_without_an_accepted_mandate(society: Any, holder: Any, owner: Any) -> None:
    desk = signed_in(society.memberships.get().user)
    desk.post(
        "/dashboard/mandates/",
        {"member_email": owner.email, "scope": "catalogue", "powers": ["refuse"], "statements_to": "member"},
    )
    mandate = Mandate.objects.get()
    response = desk.post(f"/dashboard/mandates/{mandate.pk}/refuse-catalogue/", {"purpose": "train-ai"}, follow=True)
    assert response.status_code == 200
    assert not Refusal.objects.exists()
