"""Mandates: a society or agent acting for a member party within a scope and with powers, recorded as such."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import translation
from rest_framework.test import APIClient

from core.actors import Actor
from optout.models import Refusal
from registry.mandates import mandate_accept, mandate_end, mandate_invite
from registry.models import (
    AuditEvent,
    Mandate,
    MandateConflict,
    MandateStatus,
    OwnershipClaim,
    Work,
    WorkStatus,
)
from tests.factories import SocietyFactory, UserFactory, WorkFactory, isbn
from tests.helpers import key_client

ALL_ACTING = ["register_works", "claim", "refuse"]


def _invite(society_api: APIClient, holder: Any, **terms: Any) -> dict[str, Any]:
    body = {"member": holder.pk, "scope": "catalogue", "powers": ALL_ACTING, **terms}
    response = society_api.post("/api/v1/mandates", body, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def _accepted(society_api: APIClient, holder_api: APIClient, holder: Any, **terms: Any) -> dict[str, Any]:
    mandate = _invite(society_api, holder, **terms)
    response = holder_api.post(f"/api/v1/mandates/{mandate['id']}/accept")
    assert response.status_code == 200, response.content
    return dict(response.json())


def _register(api: APIClient, member: Any, number: int, kind: str = "text") -> Any:
    body = {"title": f"Song {number}", "kind": kind, "identifiers": [{"scheme": "isbn", "value": isbn(number)}]}
    return api.post("/api/v1/works", {**body, "on_behalf_of": member.pk}, format="json")


def test_society_invites_member_and_member_accepts(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient
) -> None:
    mandate = _invite(society_api, holder, powers=["refuse", "receive_statements"], statements_to="both")
    assert mandate["status"] == "invited"
    assert mandate["in_force"] is False
    assert mandate["member"]["id"] == holder.pk
    assert mandate["powers"] == ["refuse", "receive_statements"]

    # Both sides see it.
    assert [m["id"] for m in holder_api.get("/api/v1/mandates").json()["results"]] == [mandate["id"]]
    assert [m["id"] for m in society_api.get("/api/v1/mandates").json()["results"]] == [mandate["id"]]

    accepted = holder_api.post(f"/api/v1/mandates/{mandate['id']}/accept")
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "active"
    assert accepted.json()["in_force"] is True
    assert accepted.json()["accepted_via"] == "member"
    codes = list(
        AuditEvent.objects.filter(object_type="registry.mandate", object_id=str(mandate["id"]))
        .order_by("pk")
        .values_list("code", flat=True)
    )
    assert codes == ["registry.mandate.invited", "registry.mandate.accepted"]


def test_society_cannot_accept_its_own_invitation(society_api: APIClient, holder: Any) -> None:
    mandate = _invite(society_api, holder)
    response = society_api.post(f"/api/v1/mandates/{mandate['id']}/accept")
    assert response.status_code == 403
    assert Mandate.objects.get(pk=mandate["id"]).status == MandateStatus.INVITED


def test_only_a_society_invites(holder_api: APIClient, other_holder: Any) -> None:
    response = holder_api.post(
        "/api/v1/mandates", {"member": other_holder.pk, "scope": "catalogue", "powers": ["refuse"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_a_society"


def test_invitation_by_email_waits_for_the_owner(society_api: APIClient, holder: Any, owner: Any) -> None:
    response = society_api.post(
        "/api/v1/mandates",
        {"member_email": "nobody-yet@new.example", "scope": "catalogue", "powers": ["refuse"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["member"] is None
    # An e-mail that signs in as a holder's owner names that holder at once.
    named = society_api.post(
        "/api/v1/mandates", {"member_email": owner.email, "scope": "catalogue", "powers": ["refuse"]}, format="json"
    )
    assert named.json()["member"]["id"] == holder.pk


def test_pending_invitation_by_email_is_accepted_by_the_person_it_names(society: Any, db: Any) -> None:
    from tests.factories import HolderFactory

    newcomer = UserFactory(username="composer@new.example")
    invitation = mandate_invite(
        actor=Actor(party=society, is_system=False, api_key=society.api_keys.first())
        if society.api_keys.exists()
        else Actor(user=society.memberships.get().user, party=society),
        agent=society,
        member_email="composer@new.example",
        scope="catalogue",
        powers=["refuse"],
    )
    assert invitation.member is None
    composer = HolderFactory(name="Composer Kim", owner=newcomer)
    mandate = mandate_accept(actor=Actor(user=newcomer, party=composer), mandate=invitation)
    assert mandate.member_id == composer.pk
    assert mandate.status == MandateStatus.ACTIVE
    outsider = UserFactory(username="someone@else.example")
    other = HolderFactory(name="Someone Else", owner=outsider)
    second = mandate_invite(
        actor=Actor(user=society.memberships.get().user, party=society),
        agent=society,
        member_email="composer@new.example",
        scope="catalogue",
        powers=["refuse"],
    )
    from core.errors import NotFound

    with pytest.raises(NotFound):
        mandate_accept(actor=Actor(user=outsider, party=other), mandate=second)


def test_society_registers_claims_and_refuses_for_member(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient, staff: Any
) -> None:
    _accepted(society_api, holder_api, holder)
    response = _register(society_api, holder, 1)
    assert response.status_code == 201, response.content
    work = Work.objects.get(pk=response.json()["id"])
    claim = OwnershipClaim.objects.get(work=work)
    assert claim.holder == holder  # the member owns it, not the society
    assert claim.filed_by_agent == society
    event = AuditEvent.objects.get(code="registry.work.registered", object_id=str(work.pk))
    assert event.actor_party == society
    assert event.on_behalf_of == holder
    with translation.override("en"):
        assert event.acted_as == "Korea Music Society for Hangang Press"
    with translation.override("ko"):
        assert event.acted_as == "Korea Music Society(Hangang Press 대리)"

    refused = society_api.post(
        "/api/v1/refusals",
        {"scope": "work", "work": work.pk, "purposes": ["train-ai"], "on_behalf_of": holder.pk},
        format="json",
    )
    assert refused.status_code == 201, refused.content
    assert refused.json()["filed_by"] == {
        "holder": {"id": holder.pk, "name": "Hangang Press"},
        "agent": {"id": society.pk, "name": "Korea Music Society"},
    }
    refusal = Refusal.objects.get(pk=refused.json()["id"])
    assert refusal.holder == holder
    assert refusal.agent == society
    filed = AuditEvent.objects.get(code="optout.refusal.filed", object_id=str(refusal.pk))
    assert (filed.actor_party, filed.on_behalf_of) == (society, holder)
    # The member sees the refusal its society filed, with who filed it.
    listed = holder_api.get("/api/v1/refusals").json()["results"]
    assert listed[0]["filed_by"]["agent"]["name"] == "Korea Music Society"


def test_lookup_and_receipt_say_the_agent_filed_the_refusal(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient, staff: Any, lab_api: APIClient
) -> None:
    _accepted(society_api, holder_api, holder)
    work = Work.objects.get(pk=_register(society_api, holder, 2).json()["id"])
    from tests.factories import verify_claims

    verify_claims(work, staff)
    society_api.post(
        "/api/v1/refusals", {"scope": "catalogue", "purposes": ["train-ai"], "on_behalf_of": holder.pk}, format="json"
    )
    answer = lab_api.post(
        "/api/v1/lookup", {"items": [{"scheme": "isbn", "value": isbn(2)}], "purpose": "train-ai"}, format="json"
    )
    assert answer.status_code == 200, answer.content
    result = answer.json()["results"][0]
    assert result["status"] == "refused"
    assert result["refusal"]["filed_by"]["holder"]["id"] == holder.pk
    assert result["refusal"]["filed_by"]["agent"] == {"id": society.pk, "name": "Korea Music Society"}
    # The receipt signs what was answered, the filer with it.
    assert "receipt" in answer.json()


def test_no_on_behalf_of_without_a_mandate(society_api: APIClient, holder: Any) -> None:
    response = _register(society_api, holder, 3)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_mandate"
    assert not Work.objects.exists()


def test_invitation_not_yet_accepted_gives_no_power(society_api: APIClient, holder: Any) -> None:
    _invite(society_api, holder)
    response = _register(society_api, holder, 4)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_mandate"


def test_holder_cannot_act_on_behalf_of_another(holder_api: APIClient, other_holder: Any) -> None:
    response = _register(holder_api, other_holder, 5)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_mandate"


def test_powers_outside_the_mandate_are_refused(
    society_api: APIClient, holder: Any, holder_api: APIClient, staff: Any
) -> None:
    _accepted(society_api, holder_api, holder, powers=["refuse"])
    response = _register(society_api, holder, 6)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_mandate"
    work = WorkFactory(holder=holder)
    claim = society_api.post("/api/v1/claims", {"work": work.pk, "on_behalf_of": holder.pk}, format="json")
    assert claim.status_code == 403
    assert claim.json()["error"]["code"] == "no_mandate"


def test_kinds_scope_covers_only_those_kinds(society_api: APIClient, holder: Any, holder_api: APIClient) -> None:
    _accepted(society_api, holder_api, holder, scope="kinds", kinds=["audio"])
    assert _register(society_api, holder, 7, kind="audio").status_code == 201
    refused = _register(society_api, holder, 8, kind="text")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "no_mandate"
    # A whole-catalogue refusal reaches beyond the kinds: refused.
    catalogue = society_api.post(
        "/api/v1/refusals", {"scope": "catalogue", "purposes": ["train-ai"], "on_behalf_of": holder.pk}, format="json"
    )
    assert catalogue.status_code == 403
    assert catalogue.json()["error"]["code"] == "no_mandate"
    assert not Refusal.objects.exists()


def test_listed_works_scope(society_api: APIClient, holder: Any, holder_api: APIClient) -> None:
    listed = WorkFactory(holder=holder)
    unlisted = WorkFactory(holder=holder)
    _accepted(society_api, holder_api, holder, scope="works", works=[listed.pk], powers=["refuse"])
    ok = society_api.post(
        "/api/v1/refusals",
        {"scope": "work", "work": listed.pk, "purposes": ["train-ai"], "on_behalf_of": holder.pk},
        format="json",
    )
    assert ok.status_code == 201
    outside = society_api.post(
        "/api/v1/refusals",
        {"scope": "work", "work": unlisted.pk, "purposes": ["train-ai"], "on_behalf_of": holder.pk},
        format="json",
    )
    assert outside.status_code == 403
    assert outside.json()["error"]["code"] == "no_mandate"


def test_listed_works_must_be_the_members(society_api: APIClient, holder: Any, other_holder: Any) -> None:
    theirs = WorkFactory(holder=other_holder)
    response = society_api.post(
        "/api/v1/mandates",
        {"member": holder.pk, "scope": "works", "works": [theirs.pk], "powers": ["refuse"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_members_work"


def test_ended_mandate_gives_no_power_and_either_side_ends_it(
    society_api: APIClient, holder: Any, holder_api: APIClient
) -> None:
    mandate = _accepted(society_api, holder_api, holder)
    ended = holder_api.post(f"/api/v1/mandates/{mandate['id']}/end", {"reason": "moved to another society"})
    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    again = society_api.post(f"/api/v1/mandates/{mandate['id']}/end")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_ended"
    response = _register(society_api, holder, 9)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_mandate"
    second = _accepted(society_api, holder_api, holder)
    assert society_api.post(f"/api/v1/mandates/{second['id']}/end").json()["status"] == "ended"


def test_mandate_with_a_later_start_is_not_yet_in_force(
    society_api: APIClient, holder: Any, holder_api: APIClient
) -> None:
    _accepted(society_api, holder_api, holder, starts_at="2099-01-01T00:00:00+09:00")
    assert _register(society_api, holder, 10).status_code == 403


def test_two_agents_claiming_one_members_work_is_a_dispute(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient, staff: Any
) -> None:
    _accepted(society_api, holder_api, holder, powers=["register_works", "claim"])
    agent = SocietyFactory(name="Seoul Publishing Agency", owner=UserFactory(username="desk@agency.example"))
    agent_api = key_client(
        __import__("tests.factories", fromlist=["ApiKeyFactory"]).ApiKeyFactory(party=agent, scopes=["works:write"]).raw
    )
    _accepted(agent_api, holder_api, holder, powers=["claim"])
    work = Work.objects.get(pk=_register(society_api, holder, 11).json()["id"])
    response = agent_api.post("/api/v1/claims", {"work": work.pk, "on_behalf_of": holder.pk}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "mandate_conflict"
    conflict = MandateConflict.objects.get()
    assert conflict.kind == "two_agents"
    assert conflict.parties == sorted([society.pk, agent.pk])
    work.refresh_from_db()
    assert work.status == WorkStatus.DISPUTED
    # Staff resolve it; the work is no longer disputed.
    from registry.services import mandate_conflict_resolve

    mandate_conflict_resolve(actor=Actor(user=staff), conflict=conflict, reason="the society's mandate is older")
    work.refresh_from_db()
    assert work.status != WorkStatus.DISPUTED


def test_member_withdrawing_its_agents_refusal_is_a_dispute(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient, staff: Any
) -> None:
    _accepted(society_api, holder_api, holder)
    work = Work.objects.get(pk=_register(society_api, holder, 12).json()["id"])
    refusal = society_api.post(
        "/api/v1/refusals",
        {"scope": "work", "work": work.pk, "purposes": ["train-ai"], "on_behalf_of": holder.pk},
        format="json",
    ).json()
    withdrawn = holder_api.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {}, format="json")
    assert withdrawn.status_code == 200, withdrawn.content
    conflict = MandateConflict.objects.get()
    assert conflict.kind == "opposite_filings"
    assert conflict.work == work
    work.refresh_from_db()
    assert work.status == WorkStatus.DISPUTED


def test_agent_withdraws_its_own_refusal_without_dispute(
    society_api: APIClient, holder: Any, holder_api: APIClient
) -> None:
    _accepted(society_api, holder_api, holder)
    work = Work.objects.get(pk=_register(society_api, holder, 13).json()["id"])
    refusal = society_api.post(
        "/api/v1/refusals",
        {"scope": "work", "work": work.pk, "purposes": ["train-ai"], "on_behalf_of": holder.pk},
        format="json",
    ).json()
    response = society_api.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {}, format="json")
    assert response.status_code == 200, response.content
    assert not MandateConflict.objects.exists()
    event = AuditEvent.objects.get(code="optout.refusal.withdrawn")
    assert event.on_behalf_of == holder


def test_bulk_import_on_behalf_of_member(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    _accepted(society_api, holder_api, holder, scope="kinds", kinds=["audio"])
    csv = (f"title,kind,identifiers\nArirang,audio,isrc:KRA012500001\nA novel,text,isbn:{isbn(14)}\n").encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = society_api.post(
            "/api/v1/works/bulk",
            {"file": SimpleUploadedFile("works.csv", csv, content_type="text/csv"), "on_behalf_of": holder.pk},
        )
    assert response.status_code == 202, response.content
    progress = society_api.get(response["Location"]).json()
    assert (progress["status"], progress["rows_registered"], progress["rows_failed"]) == ("processed", 1, 1)
    errors = society_api.get(response["Location"] + "/errors").json()["results"]
    assert [(e["row"], e["code"]) for e in errors] == [(3, "no_mandate")]
    work = Work.objects.get()
    assert work.claims.get().holder == holder
    assert AuditEvent.objects.get(code="registry.work.registered").on_behalf_of == holder


@pytest.mark.postgres
def test_database_refuses_changing_a_mandate_in_place(society: Any, holder: Any, owner: Any) -> None:
    mandate = mandate_invite(
        actor=Actor(user=society.memberships.get().user, party=society),
        agent=society,
        member=holder,
        scope="catalogue",
        powers=["refuse"],
    )
    mandate_accept(actor=Actor(user=owner, party=holder), mandate=mandate)
    for statement in (
        "UPDATE registry_mandate SET can_register_works = true WHERE id = %s",
        "UPDATE registry_mandate SET scope = 'kinds' WHERE id = %s",
        "DELETE FROM registry_mandate WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [mandate.pk])
    mandate_end(actor=Actor(user=owner, party=holder), mandate=mandate)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE registry_mandate SET status = 'active', ended_at = NULL WHERE id = %s", [mandate.pk])
    mandate.refresh_from_db()
    assert mandate.status == MandateStatus.ENDED


def test_staff_verifying_the_signed_document_starts_the_mandate(
    society_api: APIClient, holder: Any, staff: Any, staff_client: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = society_api.post(
        "/api/v1/mandates",
        {
            "member": holder.pk,
            "scope": "catalogue",
            "powers": ["refuse", "receive_payouts"],
            "document": SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed mandate", content_type="application/pdf"),
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["has_document"] is True
    assert response.json()["powers"] == ["refuse", "receive_payouts"]
    mandate_id = response.json()["id"]
    page = staff_client.post(
        "/admin/registry/mandate/", {"action": "verify_document", "_selected_action": [mandate_id]}
    )
    assert page.status_code == 302
    mandate = Mandate.objects.get(pk=mandate_id)
    assert (mandate.status, mandate.accepted_via) == (MandateStatus.ACTIVE, "staff")
    assert AuditEvent.objects.get(code="registry.mandate.accepted").actor_user == staff


def test_society_reads_its_members_works_and_refusals(
    society: Any, society_api: APIClient, holder: Any, holder_api: APIClient, other_holder: Any
) -> None:
    _accepted(society_api, holder_api, holder)
    work = WorkFactory(holder=holder)
    listed = society_api.get("/api/v1/works", {"on_behalf_of": holder.pk})
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()["results"]] == [work.pk]
    assert society_api.get(f"/api/v1/works/{work.pk}", {"on_behalf_of": holder.pk}).status_code == 200
    assert society_api.get(f"/api/v1/works/{work.pk}").status_code == 404
    refused = society_api.get("/api/v1/refusals", {"on_behalf_of": holder.pk})
    assert refused.status_code == 200
    # Without a mandate from that party: 403 no_mandate, nothing read.
    other = society_api.get("/api/v1/works", {"on_behalf_of": other_holder.pk})
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "no_mandate"
