"""Refusals and the lookup API: every status, history, scopes, co-owners, purposes and limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from core.actors import Actor
from optout.models import RefusalEvent
from tests.factories import ApiKeyFactory, ClaimFactory, WorkFactory, verify_claims
from tests.helpers import key_client
from tests.optout.helpers import refuse

pytestmark = pytest.mark.django_db

ISBN = {"scheme": "isbn", "value": "978-89-364-3402-1"}


def lookup(client, items, **extra):
    response = client.post("/api/v1/lookup", {"items": items, **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_refused_work_is_refused_with_the_deciding_refusal(book, holder_api, lab_api):
    refusal = refuse(holder_api, scope="work", work=book.pk)

    (result,) = lookup(lab_api, [ISBN])["results"]

    assert result["status"] == "refused"
    assert result["may_train"] is False
    assert result["compensation"] == "none"
    assert result["key"] == "isbn:9788936434021"
    assert result["work"] == {"id": book.pk, "title": book.title, "kind": "text"}
    assert result["refusal"]["id"] == refusal["id"]
    assert result["refusal"]["purposes"] == ["train-ai", "train-genai"]
    assert result["regime"] == "use_first"
    assert result["pending_refusal"] is False


def test_every_status_in_one_batch_in_input_order(book, holder, holder_api, lab_api, staff_api):
    picture = WorkFactory(holder=holder, identifiers=[("sha256", "ab" * 32)], kind="image")
    song = WorkFactory(holder=holder, identifiers=[("isrc", "KRA401900001")], kind="audio")
    staff_api.post("/api/v1/regimes", {"kind": "audio", "regime": "license_required"}, format="json")
    refuse(holder_api, scope="work", work=book.pk)

    results = lookup(
        lab_api,
        [
            ISBN,
            {"scheme": "sha256", "value": "AB" * 32},
            {"scheme": "isrc", "value": "KR-A40-19-00001"},
            {"scheme": "doi", "value": "10.9999/nobody"},
            {"scheme": "isbn", "value": "978-89-364-3402-5"},
            {"scheme": "nonsense", "value": "x"},
            "not even an object",
        ],
    )["results"]

    assert [r["index"] for r in results] == list(range(7))
    assert [r["status"] for r in results] == [
        "refused",
        "permitted",
        "license_required",
        "unregistered",
        "invalid",
        "invalid",
        "invalid",
    ]
    assert [r["may_train"] for r in results] == [False, True, False, True, False, False, False]
    # The picture's claim is not verified yet: its money is held until an owner is verified.
    assert [r["compensation"] for r in results[:4]] == ["none", "escrow", "none", "escrow"]
    assert results[1]["work"]["id"] == picture.pk
    assert results[2]["work"]["id"] == song.pk
    assert results[2]["regime"] == "license_required"
    assert results[4]["reason"]["code"] == "invalid_checksum"
    assert results[5]["reason"]["code"] == "unknown_scheme"
    assert results[3]["key"] == "doi:10.9999/nobody"


def test_a_verified_owner_gets_the_compensation(book, lab_api):
    (result,) = lookup(lab_api, [ISBN])["results"]

    assert (result["status"], result["may_train"], result["compensation"]) == ("permitted", True, "owners")


def test_a_refusal_before_ownership_is_verified_is_pending_and_changes_nothing(holder, holder_api, lab_api, staff):
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")])
    refuse(holder_api, scope="work", work=work.pk)

    (pending,) = lookup(lab_api, [ISBN])["results"]
    verify_claims(work, staff)
    (decided,) = lookup(lab_api, [ISBN])["results"]

    assert (pending["status"], pending["pending_refusal"], pending["may_train"]) == ("permitted", True, True)
    assert (decided["status"], decided["pending_refusal"]) == ("refused", False)


def test_as_of_before_during_and_after_a_refusal_and_its_withdrawal(book, holder_api, lab_api):
    before = timezone.now()
    starts = before + timedelta(minutes=5)
    refusal = refuse(holder_api, scope="work", work=book.pk, effective_from=starts.isoformat())
    ends = starts + timedelta(days=30)
    withdrawn = holder_api.post(
        f"/api/v1/refusals/{refusal['id']}/withdraw", {"effective_at": ends.isoformat()}, format="json"
    )
    assert withdrawn.status_code == 200, withdrawn.content

    def status_at(moment):
        return lookup(lab_api, [ISBN], as_of=moment.isoformat())["results"][0]["status"]

    assert status_at(before) == "permitted"
    assert status_at(starts) == "refused"
    assert status_at(starts + timedelta(days=10)) == "refused"
    assert status_at(ends) == "permitted"
    assert status_at(ends + timedelta(days=1)) == "permitted"
    history = [e["event"] for e in withdrawn.json()["history"]]
    assert history == ["filed", "effective", "withdrawn"]


def test_refusals_and_withdrawals_cannot_be_backdated(book, holder_api):
    past = (timezone.now() - timedelta(days=1)).isoformat()

    filed = holder_api.post(
        "/api/v1/refusals",
        {"scope": "work", "work": book.pk, "purposes": ["train-ai"], "effective_from": past},
        format="json",
    )
    refusal = refuse(holder_api, scope="work", work=book.pk)
    withdrawn = holder_api.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {"effective_at": past}, format="json")

    assert (filed.status_code, filed.json()["error"]["code"]) == (400, "in_the_past")
    assert (withdrawn.status_code, withdrawn.json()["error"]["code"]) == (400, "in_the_past")
    assert RefusalEvent.objects.filter(kind="withdrawn").count() == 0


def test_a_refusal_is_withdrawn_only_once(book, holder_api):
    refusal = refuse(holder_api, scope="work", work=book.pk)

    first = holder_api.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {}, format="json")
    second = holder_api.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {}, format="json")

    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]["code"]) == (409, "already_withdrawn")


def test_a_kind_gets_one_regime_per_instant(staff_api):
    starts = (timezone.now() + timedelta(days=1)).isoformat()
    first = staff_api.post(
        "/api/v1/regimes", {"kind": "audio", "regime": "license_required", "effective_from": starts}, format="json"
    )
    assert first.status_code == 201, first.content

    second = staff_api.post(
        "/api/v1/regimes", {"kind": "audio", "regime": "use_first", "effective_from": starts}, format="json"
    )

    assert second.status_code == 409
    assert second.json()["error"]["code"] == "regime_instant_taken"
    assert second.json()["error"]["field"] == "effective_from"


def test_a_catalogue_refusal_covers_present_and_future_works(book, holder, holder_api, lab_api, staff):
    refuse(holder_api, scope="catalogue")
    WorkFactory(holder=holder, identifiers=[("doi", "10.1000/later")], verified_by=staff)

    results = lookup(lab_api, [ISBN, {"scheme": "doi", "value": "https://doi.org/10.1000/LATER"}])["results"]

    assert [r["status"] for r in results] == ["refused", "refused"]
    assert {r["refusal"]["scope"] for r in results} == {"catalogue"}


def test_a_catalogue_refusal_does_not_cover_other_holders_works(book, other_holder, other_holder_api, lab_api):
    refuse(other_holder_api, scope="catalogue")

    (result,) = lookup(lab_api, [ISBN])["results"]

    assert result["status"] == "permitted"


def test_url_prefix_refusals_cover_unregistered_urls_and_the_longest_prefix_wins(holder, holder_api, lab_api):
    from registry.services import domain_add, domain_check

    domain = domain_add(actor=Actor(party=holder), holder=holder, origin="https://news.example.kr", method="dns")
    domain_check(
        actor=Actor(party=holder), domain=domain, resolver=lambda name: [f"optout-registry-verification={domain.token}"]
    )
    wide = refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/", purposes=["train-genai"])
    narrow = refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")

    results = lookup(
        lab_api,
        [
            {"scheme": "url", "value": "https://NEWS.example.kr:443/2026/opinion/column-1#top"},
            {"scheme": "url", "value": "https://news.example.kr/sports/1"},
            {"scheme": "url", "value": "https://other.example.kr/2026/opinion/column-1"},
        ],
    )["results"]

    assert [r["status"] for r in results] == ["refused", "refused", "unregistered"]
    assert results[0]["refusal"]["id"] == narrow["id"]
    assert results[1]["refusal"]["id"] == wide["id"]
    assert results[0]["work"] is None


def test_a_url_prefix_on_a_pending_domain_is_a_pending_refusal(holder, holder_api, lab_api):
    holder_api.post("/api/v1/domains", {"origin": "https://blog.example.kr", "method": "dns"}, format="json")
    refuse(holder_api, scope="url_prefix", url_prefix="https://blog.example.kr/")

    (result,) = lookup(lab_api, [{"scheme": "url", "value": "https://blog.example.kr/post"}])["results"]

    assert (result["status"], result["pending_refusal"]) == ("unregistered", True)


def test_a_url_prefix_outside_the_holders_domains_is_refused(holder_api):
    response = holder_api.post(
        "/api/v1/refusals",
        {"scope": "url_prefix", "url_prefix": "https://someone-else.example/", "purposes": ["train-ai"]},
        format="json",
    )

    assert (response.status_code, response.json()["error"]["code"]) == (400, "domain_not_yours")


def test_one_verified_co_owners_refusal_refuses_a_joint_work(holder, other_holder, other_holder_api, lab_api, staff):

    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], share_bp=5000)
    ClaimFactory(work=work, holder=other_holder, share_bp=5000)
    verify_claims(work, staff)
    refuse(other_holder_api, scope="work", work=work.pk)

    (result,) = lookup(lab_api, [ISBN])["results"]

    assert result["status"] == "refused"


def test_a_holder_cannot_refuse_a_work_they_have_not_claimed(book, other_holder_api):
    response = other_holder_api.post(
        "/api/v1/refusals", {"scope": "work", "work": book.pk, "purposes": ["train-ai"]}, format="json"
    )

    assert (response.status_code, response.json()["error"]["code"]) == (403, "no_claim")


@pytest.mark.parametrize(
    ("refused", "asked", "status"),
    [
        (["train-ai"], "train-ai", "refused"),
        (["train-ai"], "train-genai", "refused"),
        (["train-genai"], "train-genai", "refused"),
        (["train-genai"], "train-ai", "permitted"),
    ],
)
def test_train_ai_covers_train_genai_but_not_the_reverse(book, holder_api, lab_api, refused, asked, status):
    refuse(holder_api, scope="work", work=book.pk, purposes=refused)

    (result,) = lookup(lab_api, [ISBN], purpose=asked)["results"]

    assert result["status"] == status


def test_a_regime_change_applies_from_its_date_only(book, staff_api, lab_api):
    now = timezone.now()
    staff_api.post(
        "/api/v1/regimes",
        {"kind": "text", "regime": "license_required", "effective_from": (now + timedelta(days=1)).isoformat()},
        format="json",
    )

    today = lookup(lab_api, [ISBN])["results"][0]
    tomorrow = lookup(lab_api, [ISBN], as_of=(now + timedelta(days=2)).isoformat())["results"][0]

    assert (today["status"], today["regime"]) == ("permitted", "use_first")
    assert (tomorrow["status"], tomorrow["regime"], tomorrow["may_train"]) == (
        "license_required",
        "license_required",
        False,
    )


def test_only_staff_set_regimes(holder_api):
    response = holder_api.post("/api/v1/regimes", {"kind": "text", "regime": "license_required"}, format="json")

    assert response.status_code == 403


def test_more_than_ten_thousand_items_is_a_413(lab_api):
    response = lab_api.post("/api/v1/lookup", {"items": [ISBN] * 10_001}, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_items"
    assert response.json()["error"]["field"] == "items"


def test_an_empty_batch_is_a_400(lab_api):
    response = lab_api.post("/api/v1/lookup", {"items": []}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "items"


def test_a_batch_costs_the_same_queries_for_two_and_ten_thousand_items(book, holder, holder_api, lab_api):
    refuse(holder_api, scope="catalogue")
    many = [ISBN] + [{"scheme": "url", "value": f"https://site.example.kr/page/{n}"} for n in range(9_998)]
    many.append({"scheme": "isbn", "value": "bad"})
    # A registered key and an unregistered URL: the two reads a batch can need (an unregistered URL is also
    # checked against the refused prefixes of its host).
    two = [ISBN, {"scheme": "url", "value": "https://site.example.kr/page/first"}]

    lookup(lab_api, two)  # the key's first use records last_used_at once; measure after it
    with CaptureQueriesContext(connection) as one:
        lookup(lab_api, two)
    with CaptureQueriesContext(connection) as ten_thousand:
        body = lookup(lab_api, many)

    assert len(body["results"]) == 10_000
    assert len(one.captured_queries) == len(ten_thousand.captured_queries)


def test_keys_without_the_lookup_scope_cannot_look_up(holder):

    client = key_client(ApiKeyFactory(party=holder, scopes=["works:write"]).raw)

    response = client.post("/api/v1/lookup", {"items": [ISBN]}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "missing_scope")


def test_anonymous_callers_may_look_up_one_item_but_not_batches(book):
    anonymous = APIClient()

    single = anonymous.get("/api/v1/lookup", {"scheme": "isbn", "value": "9788936434021"})
    batch = anonymous.post("/api/v1/lookup", {"items": [ISBN]}, format="json")

    assert single.status_code == 200
    assert single.json()["results"][0]["status"] == "permitted"
    assert single.json()["caller"] == "anonymous"
    assert batch.status_code == 401


def test_rate_limits_answer_429_with_retry_after(book, monkeypatch, lab_api):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"lookup": "2/min", "lookup_anonymous": "1/min"})
    anonymous = APIClient()

    key_answers = [lab_api.post("/api/v1/lookup", {"items": [ISBN]}, format="json").status_code for _ in range(3)]
    anonymous_answers = [
        anonymous.get("/api/v1/lookup", {"scheme": "isbn", "value": "9788936434021"}) for _ in range(2)
    ]

    assert key_answers == [200, 200, 429]
    assert [r.status_code for r in anonymous_answers] == [200, 429]
    assert int(anonymous_answers[1]["Retry-After"]) > 0
    assert anonymous_answers[1].json()["error"]["code"] == "throttled"


def test_the_refusal_list_shows_the_holders_refusals_with_history(book, holder_api, other_holder_api):
    refuse(holder_api, scope="work", work=book.pk)

    mine = holder_api.get("/api/v1/refusals").json()
    theirs = other_holder_api.get("/api/v1/refusals").json()

    assert mine["count"] == 1
    assert [e["event"] for e in mine["results"][0]["history"]] == ["filed", "effective"]
    assert theirs["count"] == 0


def test_another_holder_cannot_withdraw_my_refusal(book, holder_api, other_holder_api):
    refusal = refuse(holder_api, scope="work", work=book.pk)

    response = other_holder_api.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {}, format="json")

    assert response.status_code == 404
    assert not RefusalEvent.objects.filter(kind="withdrawn").exists()


@pytest.mark.postgres
def test_the_database_refuses_to_edit_or_delete_refusals(book, holder_api):
    from django.db import DatabaseError, transaction

    from optout.models import Refusal

    refuse(holder_api, scope="work", work=book.pk)

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Refusal.objects.update(purpose="train-genai")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        RefusalEvent.objects.all().delete()


def test_a_lookup_receipt_verifies_independently_and_fails_when_one_byte_changes(book, holder_api, lab_api):
    import base64
    import json

    import nacl.exceptions
    import nacl.signing

    from core.jcs import canonical_json

    refuse(holder_api, scope="work", work=book.pk)
    body = lookup(lab_api, [ISBN, {"scheme": "doi", "value": "10.1/x"}])
    keys = APIClient().get("/.well-known/optout-registry/keys.json").json()["keys"]
    jwk = next(k for k in keys if k["kid"] == body["receipt"]["key_id"])
    verify_key = nacl.signing.VerifyKey(base64.urlsafe_b64decode(jwk["x"] + "=="))
    signature = base64.urlsafe_b64decode(body["receipt"]["signature"] + "==")
    payload = {k: v for k, v in body.items() if k != "receipt"}

    verify_key.verify(canonical_json(payload), signature)  # raises if the signature is wrong
    assert body["last_refusal_event_id"] == RefusalEvent.objects.latest("id").pk
    assert body["caller"].endswith(f"/key:{lab_api._credentials['HTTP_AUTHORIZATION'].split('_')[1]}")
    tampered = json.loads(json.dumps(body))
    tampered["results"][0]["may_train"] = True
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(canonical_json({k: v for k, v in tampered.items() if k != "receipt"}), signature)

    checked = APIClient().post("/api/v1/receipts/verify", body, format="json").json()
    rejected = APIClient().post("/api/v1/receipts/verify", tampered, format="json").json()
    assert (checked["valid"], rejected["valid"], rejected["reason"]) == (True, False, "bad_signature")


def test_the_fast_canonical_form_of_a_lookup_equals_the_strict_one(book, holder_api, lab_api):
    from core.jcs import canonical_json
    from optout.receipts import canonical_json_of_own_payload

    refuse(holder_api, scope="work", work=book.pk)
    body = lookup(
        lab_api,
        [
            ISBN,
            {"scheme": "url", "value": "https://예시.한국/글"},
            {"scheme": "isbn", "value": 'bad ✓ \x01\t"\\ 🎵 \u2028'},
        ],
    )
    payload = {k: v for k, v in body.items() if k != "receipt"}

    assert canonical_json_of_own_payload(payload) == canonical_json(payload)


def test_when_the_registry_cannot_be_read_nothing_is_answered_as_permitted(book, lab_api, monkeypatch):
    from django.db import OperationalError

    def unreadable(*args, **kwargs):
        raise OperationalError("connection lost")

    # The event path (as_of given) and the projection (the current instant) both fail to read.
    monkeypatch.setattr("optout.selectors._works_for", unreadable)
    monkeypatch.setattr("optout.lookup_engines.OrmLookupEngine.current_statuses", unreadable)
    monkeypatch.setattr("optout.lookup_engines.PostgresLookupEngine.current_statuses", unreadable)

    response = lab_api.post("/api/v1/lookup", {"items": [ISBN]}, format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "lookup_unavailable"
    assert "results" not in response.json()


@settings(max_examples=300, deadline=None)
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["scheme", "value", "purpose", "as_of", "other"]),
            st.one_of(
                st.sampled_from(["isbn", " ISBN ", "", "train-ai", "train-genai", "9788936434021", "x" * 4001]),
                st.text(max_size=70),
            ),
        ),
        max_size=5,
    )
)
def test_the_plain_single_lookup_reads_its_parameters_as_the_serializer_does(params):
    """Where the plain reading answers (the lookup's fast path), the serializer accepts the same and reads the same."""
    from django.http import QueryDict

    from optout.api.serializers import LookupSingleInput, plain_single_lookup

    query = QueryDict(mutable=True)
    for name, value in params:
        query.appendlist(name, value)

    plain = plain_single_lookup(query)

    if plain is not None:
        data = LookupSingleInput(data=query)
        assert data.is_valid(), data.errors
        assert data.validated_data["as_of"] is None
        assert plain == ({"scheme": data.validated_data["scheme"], "value": data.validated_data["value"]},
                         data.validated_data["purpose"])  # fmt: skip


def test_the_plain_single_lookup_takes_the_common_forms():
    from django.http import QueryDict

    from optout.api.serializers import plain_single_lookup

    assert plain_single_lookup(QueryDict("scheme=isbn&value=9788936434021&purpose=train-ai")) == (
        {"scheme": "isbn", "value": "9788936434021"},
        "train-ai",
    )
    assert plain_single_lookup(QueryDict("scheme=isbn&value=+9788936434021+")) == (
        {"scheme": "isbn", "value": "9788936434021"},
        "train-genai",
    )
    for serializer_decides in ("scheme=isbn&value=1&as_of=2026-01-01", "scheme=isbn&value=1&value=2", "scheme=isbn"):
        assert plain_single_lookup(QueryDict(serializer_decides)) is None
