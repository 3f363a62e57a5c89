"""A member of one party never sees or changes another party's data; every form needs its CSRF token."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from core.actors import Actor
from optout.models import RefusalEvent, RefusalScope
from optout.services import refusal_file
from registry.imports import work_import_create
from registry.models import ApiKey, Membership, VerifiedDomain
from registry.services import apikey_create, domain_add
from tests.factories import WorkFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def theirs(other_holder, lab):
    system = Actor(party=other_holder, is_system=True)
    work = WorkFactory(holder=other_holder, identifiers=[("isbn", "9780306406157")])
    refusal = refusal_file(actor=system, holder=other_holder, scope=RefusalScope.WORK, purposes=["train-ai"], work=work)
    domain = domain_add(actor=system, holder=other_holder, origin="https://other.example.kr", method="dns")
    work_import = work_import_create(
        actor=system,
        holder=other_holder,
        file=SimpleUploadedFile("w.csv", b"title,kind,identifiers\r\nA,text,isbn:9788936434021\r\n"),
        filename="w.csv",
    )
    key, _raw = apikey_create(actor=Actor.system(), party=other_holder, scopes=["lookup"])
    membership = Membership.objects.get(party=other_holder)
    return {
        "work": work,
        "refusal": refusal,
        "domain": domain,
        "import": work_import,
        "key": key,
        "membership": membership,
    }


def test_an_outsider_party_member_sees_nothing_of_another_party(owner_client, theirs):
    for url in [
        f"/dashboard/works/{theirs['work'].pk}/",
        f"/dashboard/imports/{theirs['import'].pk}/",
        f"/dashboard/imports/{theirs['import'].pk}/status.json",
        f"/dashboard/imports/{theirs['import'].pk}/errors.csv",
        f"/dashboard/domains/{theirs['domain'].pk}/",
        f"/dashboard/domains/{theirs['domain'].pk}/optout-registry.txt",
        f"/dashboard/refusals/{theirs['refusal'].pk}/withdraw/",
    ]:
        assert owner_client.get(url).status_code == 404, url
    listing = owner_client.get("/dashboard/works/").content.decode()
    assert theirs["work"].title not in listing
    assert "other.example.kr" not in owner_client.get("/dashboard/domains/").content.decode()
    assert theirs["key"].prefix not in owner_client.get("/dashboard/keys/").content.decode()


def test_an_outsider_party_member_changes_nothing_of_another_party(owner_client, theirs):
    work, refusal, domain, key = theirs["work"], theirs["refusal"], theirs["domain"], theirs["key"]
    responses = [
        owner_client.post(f"/dashboard/refusals/{refusal.pk}/withdraw/", {"start": "now", "confirm": "on"}),
        owner_client.post(f"/dashboard/works/{work.pk}/identifiers/", {"scheme": "doi", "value": "10.1/x"}),
        owner_client.post(f"/dashboard/domains/{domain.pk}/check/"),
        owner_client.post(f"/dashboard/keys/{key.pk}/revoke/"),
        owner_client.post(f"/dashboard/members/{theirs['membership'].pk}/remove/"),
        owner_client.post(f"/dashboard/members/{theirs['membership'].pk}/role/", {"role": "member"}),
        owner_client.post("/dashboard/parties/switch/", {"party": work.registered_by_id}),
    ]
    assert [r.status_code for r in responses] == [404] * len(responses)
    assert not RefusalEvent.objects.filter(refusal=refusal, kind="withdrawn").exists()
    assert work.identifiers.count() == 1
    assert VerifiedDomain.objects.get(pk=domain.pk).last_checked_at is None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert Membership.objects.filter(pk=theirs["membership"].pk, role="owner").exists()


def test_a_person_in_two_parties_sees_only_the_chosen_ones_data(owner, holder, other_holder, theirs):
    from registry.services import membership_add

    membership_add(actor=Actor.system(), party=other_holder, user=owner, role="member", _skip_check=True)
    client = Client()
    client.force_login(owner)
    assert theirs["work"].title not in client.get("/dashboard/works/").content.decode()
    assert client.post("/dashboard/parties/switch/", {"party": other_holder.pk}).status_code == 302
    assert theirs["work"].title in client.get("/dashboard/works/").content.decode()


def test_signed_out_people_are_sent_to_sign_in():
    response = Client().get("/dashboard/works/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/accounts/login/", {"username": "owner@holder.example", "password": "correct-horse-battery"}),
        ("/accounts/signup/", {"email": "n@example.kr", "password1": "x-Long-pass-99", "password2": "x-Long-pass-99"}),
        ("/dashboard/works/new/", {"title": "x"}),
        ("/dashboard/refusals/new/", {"scope": "catalogue", "purpose": "train-ai", "start": "now"}),
        ("/dashboard/keys/", {"scopes": ["lookup"]}),
        ("/receipts/check/", {"receipt": "{}"}),
    ],
)
def test_forms_refuse_a_post_without_the_csrf_token(owner, holder, url, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(url, data).status_code == 403
