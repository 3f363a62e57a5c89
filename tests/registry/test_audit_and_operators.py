"""The audit log, operators' management commands, the admin queues and the API documentation."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction
from rest_framework.test import APIClient

from registry.models import ApiKey, AuditEvent, ClaimStatus, Membership, OwnershipClaim, Party, VerifiedDomain

pytestmark = pytest.mark.django_db


@pytest.mark.postgres
def test_the_database_refuses_to_update_or_delete_audit_events(holder):
    event = AuditEvent.objects.filter(code="registry.party.created").get()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(code="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()

    assert AuditEvent.objects.get(pk=event.pk).code == "registry.party.created"


def test_party_create_command_makes_the_party_and_its_owner():
    out = StringIO()
    call_command(
        "party_create", "--kind", "holder", "--name", "Jeju Photos", "--owner-email", "Boss@Jeju.example", stdout=out
    )

    party = Party.objects.get(name="Jeju Photos")
    assert party.kind == "holder"
    membership = Membership.objects.get(party=party)
    assert (membership.user.email, membership.role) == ("boss@jeju.example", "owner")
    assert "Jeju Photos" in out.getvalue()
    assert AuditEvent.objects.filter(code="registry.party.created", object_id=str(party.pk)).exists()


def test_party_create_validates_the_business_registration_number():
    with pytest.raises(CommandError, match="invalid_checksum"):
        call_command(
            "party_create", "--kind", "holder", "--name", "X", "--owner-email", "x@x.example", "--brn", "1234567890"
        )
    assert not Party.objects.filter(name="X").exists()


def test_apikey_create_prints_a_working_key_on_its_last_line(lab):
    out = StringIO()
    call_command("apikey_create", "--party", lab.name, "--scopes", "lookup,usage:write", stdout=out)

    raw_key = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    me = client.get("/api/v1/me").json()
    assert me["party"]["name"] == lab.name
    assert sorted(me["scopes"]) == ["lookup", "usage:write"]
    assert ApiKey.objects.get(party=lab).key_hash != raw_key


def test_apikey_create_for_a_staff_user_creates_the_user_and_grants_the_staff_api(holder_api):
    work = holder_api.post(
        "/api/v1/works",
        {"title": "W", "kind": "text", "identifiers": [{"scheme": "isbn", "value": "9780306406157"}]},
        format="json",
    ).json()
    out = StringIO()
    call_command("apikey_create", "--staff-user", "admin@registry.example", "--scopes", "staff", stdout=out)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {out.getvalue().strip().splitlines()[-1]}")

    response = client.post(f"/api/v1/claims/{work['claim']['id']}/verify", {}, format="json")

    assert response.status_code == 200
    assert client.get("/api/v1/me").json()["is_staff"] is True


def test_apikey_create_refuses_unknown_scopes(lab):
    with pytest.raises(CommandError, match=r"invalid_scopes.*everything"):
        call_command("apikey_create", "--party", lab.name, "--scopes", "lookup,everything")
    assert not ApiKey.objects.filter(party=lab).exists()


def test_demo_load_prints_logins_and_keys_that_work_and_can_run_twice(settings):
    settings.DEBUG = True
    call_command("demo_load", stdout=StringIO())
    out = StringIO()
    call_command("demo_load", stdout=out)

    lines = out.getvalue().splitlines()
    assert any("holder@demo.local" in line for line in lines)
    lab_key = next(line for line in lines if "lab@demo.local" in line).split("API key ")[-1].strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {lab_key}")
    assert client.get("/api/v1/me").json()["party"]["name"] == "Seoul AI Lab"
    assert OwnershipClaim.objects.filter(status=ClaimStatus.VERIFIED).count() == 3
    from optout.models import Refusal

    assert Refusal.objects.count() == 1
    refused = APIClient().get("/api/v1/lookup", {"scheme": "isbn", "value": "9788936434021"}).json()
    assert refused["results"][0]["status"] == "refused"
    assert Party.objects.count() == 2


def test_staff_verify_claims_from_the_admin_queue(holder_api, staff):
    holder_api.post(
        "/api/v1/works",
        {"title": "W", "kind": "text", "identifiers": [{"scheme": "isbn", "value": "9780306406157"}]},
        format="json",
    )
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)
    claim = OwnershipClaim.objects.get()

    response = client.post(
        "/admin/registry/ownershipclaim/",
        {"action": "verify", "_selected_action": [claim.pk]},
        follow=True,
    )

    assert response.status_code == 200
    claim.refresh_from_db()
    assert claim.status == ClaimStatus.VERIFIED
    assert claim.decided_by == staff
    assert AuditEvent.objects.filter(code="registry.claim.verified", actor_user=staff).exists()


def test_staff_verify_a_domain_by_hand_in_the_admin(holder_api, staff):
    domain_id = holder_api.post(
        "/api/v1/domains", {"origin": "https://hand.example.kr", "method": "dns"}, format="json"
    ).json()["id"]
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)

    client.post("/admin/registry/verifieddomain/", {"action": "verify_manually", "_selected_action": [domain_id]})

    assert VerifiedDomain.objects.get(pk=domain_id).status == "verified"


def test_every_model_has_an_admin_page(staff):
    from django.apps import apps

    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)
    for model in apps.get_app_config("registry").get_models():
        url = f"/admin/registry/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url


def test_openapi_schema_and_docs_are_served_without_a_cdn():
    client = APIClient()
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/v1/docs/")

    assert schema.status_code == 200
    assert "/api/v1/works" in schema.json()["paths"]
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html
    assert "unpkg" not in html
    assert "jsdelivr" not in html


def test_healthz_reports_the_database():
    response = APIClient().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_home_page_shows_the_registry_in_korean_and_english(holder_api):
    holder_api.post(
        "/api/v1/works",
        {"title": "봄날의 시", "kind": "text", "identifiers": [{"scheme": "isbn", "value": "9780306406157"}]},
        format="json",
    )
    korean = APIClient().get("/", HTTP_ACCEPT_LANGUAGE="ko")
    english = APIClient().get("/", HTTP_ACCEPT_LANGUAGE="en")

    assert korean.status_code == english.status_code == 200
    assert "봄날의 시" in korean.content.decode()
    assert "works registered" in english.content.decode()
    assert "등록된 저작물" in korean.content.decode()


def test_editing_a_work_in_the_admin_is_audited(holder_api, staff, rf):
    from django.contrib import admin as django_admin

    from registry.models import Work

    work = Work.objects.get(
        pk=holder_api.post(
            "/api/v1/works",
            {"title": "Typo", "kind": "text", "identifiers": [{"scheme": "isbn", "value": "9780306406157"}]},
            format="json",
        ).json()["id"]
    )
    staff.is_superuser = True
    staff.save()
    request = rf.post("/admin/")
    request.user = staff
    work_admin = django_admin.site._registry[Work]
    form = work_admin.get_form(request, work, change=True)(
        instance=work, data={"kind": "text", "title": "Fixed", "creators": "[]", "language": "", "creation_year": ""}
    )
    assert form.is_valid(), form.errors

    work_admin.save_model(request, form.save(commit=False), form, change=True)

    assert Work.objects.get(pk=work.pk).title == "Fixed"
    event = AuditEvent.objects.get(code="registry.work.changed_in_admin")
    assert event.actor_user == staff
    assert "title" in event.data["fields"]


def _lookup_status(isbn_value: str, *, with_work: bool = False) -> tuple[Any, ...]:
    from django.utils import timezone

    from optout.status.selectors import lookup_batch_current

    (result,) = lookup_batch_current(
        items=[{"scheme": "isbn", "value": isbn_value}], purpose="train-ai", at=timezone.now()
    ).results
    if with_work:
        return result["status"], result["regime"], result["work"]
    return result["status"], result["regime"]


def test_a_kind_changed_or_an_identifier_removed_in_the_admin_reaches_lookups_and_the_feed(holder_api, staff, rf):
    from io import StringIO

    from django.contrib import admin as django_admin
    from django.core.management import call_command
    from django.utils import translation

    from core.actors import Actor
    from optout.models import StatusChange
    from optout.services import regime_set
    from registry.models import Identifier, Work

    isbn_value = "9780306406157"
    work = Work.objects.get(
        pk=holder_api.post(
            "/api/v1/works",
            {"title": "Song", "kind": "text", "identifiers": [{"scheme": "isbn", "value": isbn_value}]},
            format="json",
        ).json()["id"]
    )
    regime_set(actor=Actor(user=staff), kind="audio", regime="license_required")
    staff.is_superuser = True
    staff.save()
    request = rf.post("/admin/")
    request.user = staff
    assert _lookup_status(isbn_value) == ("permitted", "use_first")

    work_admin = django_admin.site._registry[Work]
    form = work_admin.get_form(request, work, change=True)(
        instance=work,
        data={"kind": "audio", "title": "Song (live)", "creators": "[]", "language": "", "creation_year": ""},
    )
    assert form.is_valid(), form.errors
    work_admin.save_model(request, form.save(commit=False), form, change=True)

    brief = {"id": work.pk, "title": "Song (live)", "kind": "audio"}
    assert _lookup_status(isbn_value, with_work=True) == ("license_required", "license_required", brief)
    assert StatusChange.objects.filter(subject=f"isbn:{isbn_value}", new_status="license_required").exists()

    identifier_admin = django_admin.site._registry[Identifier]
    identifier_admin.delete_model(request, Identifier.objects.get(value=isbn_value))

    assert _lookup_status(isbn_value) == ("unregistered", "use_first")
    assert AuditEvent.objects.filter(code="registry.identifier.deleted_in_admin").exists()
    with translation.override("en"):
        out = StringIO()
        call_command("status_check", stdout=out)
    assert "Status projection OK." in out.getvalue()
