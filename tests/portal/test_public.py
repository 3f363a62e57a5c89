"""The public pages: home, search by identifier or URL, and the receipt checker."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import RefusalFactory, WorkFactory

pytestmark = pytest.mark.django_db


def test_home_has_the_public_search_and_figures(book):
    response = Client().get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'action="/search"' in body
    assert f'href="/works/{book.pk}"' in body


def test_search_by_isbn_in_any_spelling_finds_a_refused_work(book, holder):
    RefusalFactory(work=book)
    response = Client().get("/search", {"q": "978-89-364-3402-1"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "isbn:9788936434021" in body
    assert "Refused" in body
    assert "refuses any AI training" in body
    assert f'href="/works/{book.pk}"' in body


def test_search_by_url_of_an_unregistered_page_says_so():
    response = Client().get("/search", {"q": "https://News.Example.kr/2026/a"})
    body = response.content.decode()
    assert "url:https://news.example.kr/2026/a" in body
    assert "Not registered" in body


def test_search_of_a_registered_permitted_work(holder, staff):
    WorkFactory(holder=holder, identifiers=[("doi", "10.1000/xyz123")], verified_by=staff)
    body = Client().get("/search", {"q": "doi:10.1000/XYZ123"}).content.decode()
    assert "Permitted" in body


def test_an_invalid_identifier_says_why_and_keeps_the_query():
    response = Client().get("/search", {"q": "isbn:9788936434022"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "check digit" in body
    assert 'value="isbn:9788936434022"' in body
    assert 'aria-invalid="true"' in body


def test_public_search_is_rate_limited_per_address(monkeypatch):
    from optout.api import throttles

    # monkeypatch removes the class attribute afterwards; assigning the old value back would shadow
    # SimpleRateThrottle's rates (which other tests patch) for every later test.
    monkeypatch.setattr(
        throttles.LookupAnonymousThrottle, "THROTTLE_RATES", {"lookup": "100/min", "lookup_anonymous": "2/min"}
    )
    client = Client()
    statuses = [client.get("/search", {"q": "9788936434021"}).status_code for _ in range(3)]
    assert statuses[-1] == 429


def test_receipt_checker_accepts_a_genuine_answer_and_rejects_a_changed_one(lab_api):
    answer = lab_api.post(
        "/api/v1/lookup",
        {"purpose": "train-ai", "items": [{"scheme": "isbn", "value": "9788936434021"}]},
        format="json",
    ).json()
    client = Client()
    response = client.post("/receipts/check/", {"receipt": json.dumps(answer)})
    assert response.status_code == 200
    assert "Valid receipt" in response.content.decode()
    answer["results"][0]["status"] = "permitted"
    response = client.post("/receipts/check/", {"receipt": json.dumps(answer)})
    assert "Not a valid receipt" in response.content.decode()
    assert "The signature does not match" in response.content.decode()


def test_receipt_checker_explains_bad_json():
    response = Client().post("/receipts/check/", {"receipt": "{not json"})
    assert "This is not valid JSON" in response.content.decode()


def test_the_public_work_page_keeps_its_refusal_headers(book, holder):
    RefusalFactory(work=book)
    response = Client().get(f"/works/{book.pk}")
    assert response.status_code == 200
    assert response["tdm-reservation"] == "1"


def test_a_holder_sets_its_licensing_contact_in_the_portal_and_its_works_show_it(owner_client, holder, book):
    form = owner_client.get("/dashboard/licensing-contact/")
    bad = owner_client.post("/dashboard/licensing-contact/", {"licensing_email": "nope", "licensing_url": ""})
    saved = owner_client.post(
        "/dashboard/licensing-contact/",
        {"licensing_email": "licence@hangang.example", "licensing_url": "https://hangang.example/licence"},
    )

    assert form.status_code == 200
    assert bad.status_code == 200
    assert 'aria-invalid="true"' in bad.content.decode()
    assert saved.status_code == 302
    holder.refresh_from_db()
    assert holder.licensing_email == "licence@hangang.example"
    page = Client().get(f"/works/{book.pk}").content.decode()
    assert "mailto:licence@hangang.example" in page
    assert "https://hangang.example/licence" in page


def test_a_verified_holder_sets_a_works_own_contact_in_the_portal(owner_client, holder, book):
    response = owner_client.post(
        f"/dashboard/works/{book.pk}/licensing-contact/", {"licensing_email": "", "licensing_url": "https://b.example"}
    )

    assert response.status_code == 302
    book.refresh_from_db()
    assert book.licensing_url == "https://b.example"
    assert "https://b.example" in Client().get(f"/works/{book.pk}").content.decode()


def test_a_holders_work_list_searches_its_own_works_with_spacing_variants(owner_client, holder, other_holder):
    WorkFactory(holder=holder, title="봄의 정원")
    WorkFactory(holder=other_holder, title="봄의정원 다른 책")

    body = owner_client.get("/dashboard/works/", {"q": "봄의정원"}).content.decode()
    too_long = owner_client.get("/dashboard/works/", {"q": "x" * 201})

    assert "봄의 정원" in body
    assert "다른 책" not in body
    assert too_long.status_code == 200
    assert "200" in too_long.content.decode()
