"""Every endpoint touching another holder's objects, tried by everyone who must not get through."""

from __future__ import annotations

import io

import pytest
from rest_framework.test import APIClient

from registry.models import ApiKey, ClaimStatus, OwnershipClaim, VerifiedDomain
from tests.factories import ApiKeyFactory, UserFactory
from tests.helpers import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(holder_api, holder):
    """A holder's work, claim, domain, import and key, created through the API."""
    work = holder_api.post(
        "/api/v1/works",
        {"title": "Mine", "kind": "text", "identifiers": [{"scheme": "isbn", "value": "9780306406157"}]},
        format="json",
    ).json()
    domain = holder_api.post(
        "/api/v1/domains", {"origin": "https://mine.example.kr", "method": "dns"}, format="json"
    ).json()
    upload = io.BytesIO(b"title,kind,isbn\nBook,text,9788936434021\n")
    upload.name = "works.csv"
    work_import = holder_api.post("/api/v1/works/bulk", {"file": upload}, format="multipart").json()
    key = ApiKey.objects.filter(party=holder).first()
    assert key is not None
    return {
        "work": work["id"],
        "claim": work["claim"]["id"],
        "domain": domain["id"],
        "import": work_import["id"],
        "key": key.pk,
    }


def _member_of_another_party(other_holder, co_owner) -> APIClient:
    client = APIClient()
    client.force_login(co_owner)
    return client


def _outsider(outsider) -> APIClient:
    client = APIClient()
    client.force_login(outsider)
    return client


CALLS = [
    ("get", "/api/v1/works/{work}", {}),
    ("get", "/api/v1/imports/{import}", {}),
    ("get", "/api/v1/imports/{import}/errors", {}),
    ("get", "/api/v1/domains/{domain}", {}),
    ("post", "/api/v1/domains/{domain}/check", {}),
    ("post", "/api/v1/claims/{claim}/verify", {}),
    ("post", "/api/v1/claims/{claim}/accept-for-review", {}),
    ("post", "/api/v1/claims/{claim}/reject", {"reason": "mine now"}),
    ("post", "/api/v1/api-keys/{key}/revoke", {}),
]


@pytest.mark.parametrize(("method", "path", "data"), CALLS)
@pytest.mark.parametrize("intruder", ["anonymous", "outsider", "other_member", "other_holder_key", "lab_key"])
def test_intruders_cannot_touch_another_holders_objects(
    victim, method, path, data, intruder, outsider, other_holder, co_owner, other_holder_api, lab_api
):
    clients = {
        "anonymous": lambda: APIClient(),
        "outsider": lambda: _outsider(outsider),
        "other_member": lambda: _member_of_another_party(other_holder, co_owner),
        "other_holder_key": lambda: other_holder_api,
        "lab_key": lambda: lab_api,
    }
    client = clients[intruder]()

    response = getattr(client, method)(path.format(**victim), data, format="json")

    expected = {401} if intruder == "anonymous" else {403, 404}
    assert response.status_code in expected, (intruder, path, response.status_code, response.content)
    assert "error" in response.json()
    # Nothing changed.
    assert OwnershipClaim.objects.get(pk=victim["claim"]).status == ClaimStatus.PENDING
    assert VerifiedDomain.objects.get(pk=victim["domain"]).last_checked_at is None
    assert ApiKey.objects.get(pk=victim["key"]).revoked_at is None


@pytest.mark.parametrize("intruder", ["outsider", "other_member", "other_holder_key", "lab_key"])
def test_intruders_see_none_of_another_holders_objects_in_lists(
    victim, intruder, outsider, other_holder, co_owner, other_holder_api, lab_api
):
    client = {
        "outsider": lambda: _outsider(outsider),
        "other_member": lambda: _member_of_another_party(other_holder, co_owner),
        "other_holder_key": lambda: other_holder_api,
        "lab_key": lambda: lab_api,
    }[intruder]()

    for path, victim_id in (
        ("/api/v1/claims", victim["claim"]),
        ("/api/v1/domains", victim["domain"]),
        ("/api/v1/api-keys", victim["key"]),
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.content)
        assert victim_id not in [item["id"] for item in response.json()["results"]], (intruder, path)
    works = client.get("/api/v1/works")
    assert works.status_code == 403 or works.json()["count"] == 0


def test_anonymous_callers_are_told_to_authenticate(victim):
    response = APIClient().get("/api/v1/works")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_a_revoked_key_stops_working(holder):

    client = key_client(ApiKeyFactory(party=holder, scopes=["works:write"]).raw)
    key = ApiKey.objects.get(party=holder)
    assert client.get("/api/v1/works").status_code == 200

    from core.actors import Actor
    from registry.services import apikey_revoke

    apikey_revoke(actor=Actor.system(), api_key=key)

    response = client.get("/api/v1/works")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_key_revoked_by_another_process_stops_working_within_the_cache_time(holder, settings):
    from django.utils import timezone

    client = key_client(ApiKeyFactory(party=holder, scopes=["works:write"]).raw)
    assert client.get("/api/v1/works").status_code == 200
    # Another process revokes it: this one has verified the key and trusts it for API_KEY_CACHE_SECONDS.
    ApiKey.objects.filter(party=holder).update(revoked_at=timezone.now())
    settings.API_KEY_CACHE_SECONDS = 3600
    assert client.get("/api/v1/works").status_code == 200
    # Once that time has passed (here: none is trusted), the key is read again and refused.
    settings.API_KEY_CACHE_SECONDS = 0
    assert client.get("/api/v1/works").status_code == 401


def test_a_party_member_without_admin_role_cannot_create_keys(holder):
    from core.actors import Actor
    from registry.services import membership_add

    member = UserFactory(username="m@h.example")
    membership_add(actor=Actor.system(), party=holder, user=member, role="member")
    client = APIClient()
    client.force_login(member)

    response = client.post("/api/v1/api-keys", {"scopes": ["lookup"]}, format="json")

    assert response.status_code == 403
    assert not ApiKey.objects.filter(party=holder).exists()


def test_party_owner_creates_a_key_shown_once_and_stored_hashed(session_api, holder):
    created = session_api.post("/api/v1/api-keys", {"name": "ci", "scopes": ["lookup", "works:write"]}, format="json")

    assert created.status_code == 201
    raw = created.json()["key"]
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert raw not in (key.key_hash, key.prefix)
    assert key.key_hash != raw
    listed = session_api.get("/api/v1/api-keys").json()["results"]
    assert "key" not in listed[0]
    revoked = session_api.post(f"/api/v1/api-keys/{key.pk}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None


def test_party_keys_cannot_carry_the_staff_scope(session_api):
    response = session_api.post("/api/v1/api-keys", {"scopes": ["staff"]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "scopes"
