"""Canonical URLs (issue 15): one form for matching, the original spelling kept, prefixes at path boundaries.

The table of ``registry.normalization_vectors.URL_CANONICAL`` is the documented form (README, "Canonical URLs"); the
client is held to the same answers by the vectors files (``client/tests/vectors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from optout_client import normalize as client_normalize

from core.actors import Actor
from registry.identifiers import (
    TRACKING_PARAMETER_PREFIXES,
    TRACKING_PARAMETERS,
    domain_covers_host,
    identifier_normalize,
    url_prefix_covers,
)
from registry.models import Identifier
from registry.normalization_vectors import URL_CANONICAL, URL_PREFIX_COVERAGE, URL_VECTORS_PATH, url_vectors_json
from registry.services import domain_add, domain_check
from tests.factories import WorkFactory
from tests.optout.helpers import refuse

PAGE = "https://blog.example.kr/spring-garden/1"


def _key(value: str) -> str:
    return identifier_normalize(scheme="url", value=value).value


@pytest.mark.parametrize(("value", "expected"), URL_CANONICAL, ids=[v for v, _k in URL_CANONICAL])
def test_the_canonical_form_table(value: str, expected: str) -> None:
    assert _key(value) == expected
    assert _key(expected) == expected  # a key is its own canonical form
    assert client_normalize.identifier_normalize("url", value).value == expected


@pytest.mark.parametrize(("prefix", "url", "covers"), URL_PREFIX_COVERAGE)
def test_prefix_coverage_table(prefix: str, url: str, covers: bool) -> None:
    assert url_prefix_covers(_key(prefix), _key(url)) is covers
    assert client_normalize.url_prefix_covers(_key(prefix), _key(url)) is covers


def test_the_client_has_the_same_tracking_parameters_and_the_committed_url_vectors_are_current() -> None:
    assert client_normalize.TRACKING_PARAMETERS == TRACKING_PARAMETERS
    assert client_normalize.TRACKING_PARAMETER_PREFIXES == TRACKING_PARAMETER_PREFIXES
    committed = (Path(django_settings.BASE_DIR) / URL_VECTORS_PATH).read_text(encoding="utf-8")
    assert committed == url_vectors_json()


_PIECES = "http:// https:// HTTP:// www. WWW. ex.kr blog.ex.kr :443 :80 :8080 / /a /a/ // ? & utm_source=x fbclid=1"
_PARTS = st.sampled_from([*_PIECES.split(), "id=2", "=", "#f", "%7e", "%2F", ".", ".."])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PARTS, min_size=2, max_size=8))
def test_keys_are_fixed_points_and_the_client_agrees(parts: list[str]) -> None:
    value = "".join(parts)
    try:
        key = _key(value)
    except Exception as exc:
        code = getattr(exc, "code", None)
        with pytest.raises(client_normalize.InvalidIdentifier) as caught:
            client_normalize.identifier_normalize("url", value)
        assert caught.value.code == code
        return
    assert _key(key) == key
    assert client_normalize.identifier_normalize("url", value).value == key


def test_verified_domains_with_or_without_www_cover_their_urls() -> None:
    assert domain_covers_host("ex.kr", "ex.kr")
    assert domain_covers_host("ex.kr", "blog.ex.kr")
    assert domain_covers_host("www.ex.kr", "ex.kr")
    assert not domain_covers_host("www.ex.kr", "blog.ex.kr")
    assert not domain_covers_host("ex.kr", "notex.kr")


# --- registration and lookups --------------------------------------------------------------------------------


def lookup(client: Any, values: list[str]) -> list[dict[str, Any]]:
    response = client.post(
        "/api/v1/lookup",
        {"purpose": "train-genai", "items": [{"scheme": "url", "value": v} for v in values]},
        format="json",
    )
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def test_the_plain_address_finds_the_work_registered_with_tracking_parameters(holder, holder_api, staff, lab_api):
    work = WorkFactory(holder=holder, identifiers=[("url", f"{PAGE}?utm_source=twitter")], verified_by=staff)

    results = lookup(lab_api, [PAGE, "http://www.blog.example.kr/spring-garden/1/#comments", PAGE + "/"])

    assert [r["status"] for r in results] == ["permitted"] * 3
    assert {r["work"]["id"] for r in results} == {work.pk}
    assert {r["key"] for r in results} == {f"url:{PAGE}"}
    identifier = Identifier.objects.get(work=work)
    assert (identifier.value, identifier.spelling) == (PAGE, f"{PAGE}?utm_source=twitter")
    shown = holder_api.get(f"/api/v1/works/{work.pk}").json()["identifiers"]
    assert shown == [{"scheme": "url", "value": PAGE, "spelling": f"{PAGE}?utm_source=twitter"}]

    refuse(holder_api, scope="work", work=work.pk)

    assert [r["status"] for r in lookup(lab_api, [PAGE, PAGE + "/?fbclid=x"])] == ["refused", "refused"]


def test_registering_another_spelling_of_a_held_url_is_refused(holder, other_holder_api):
    work = WorkFactory(holder=holder, identifiers=[("url", f"{PAGE}?utm_source=twitter")])

    response = other_holder_api.post(
        "/api/v1/works",
        {
            "title": "Copy",
            "kind": "text",
            "identifiers": [{"scheme": "url", "value": "http://www.blog.example.kr/spring-garden/1/"}],
        },
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "identifier_taken"
    assert Identifier.objects.filter(scheme="url").count() == 1
    assert Identifier.objects.get(scheme="url").work_id == work.pk


def _verified_domain(holder: Any, origin: str) -> Any:
    domain = domain_add(actor=Actor(party=holder), holder=holder, origin=origin, method="dns")
    return domain_check(
        actor=Actor(party=holder), domain=domain, resolver=lambda name: [f"optout-registry-verification={domain.token}"]
    )


@pytest.mark.parametrize("origin", ["https://ex.kr", "https://www.ex.kr", "http://ex.kr"])
@pytest.mark.parametrize("prefix", ["https://ex.kr/blog/", "https://www.ex.kr/blog", "http://ex.kr/blog/?utm_source=x"])
def test_a_prefix_refusal_covers_its_subtree_and_page_with_or_without_slash_and_www(
    holder, holder_api, lab_api, origin, prefix
):
    _verified_domain(holder, origin)
    refusal = refuse(holder_api, scope="url_prefix", url_prefix=prefix)
    assert refusal["url_prefix"] == "https://ex.kr/blog"

    results = lookup(
        lab_api,
        [
            "https://ex.kr/blog/post",
            "https://ex.kr/blog/",
            "http://www.ex.kr/blog",
            "https://ex.kr/blog?page=2",
            "https://ex.kr/blogger",
            "https://ex.kr/",
        ],
    )

    assert [r["status"] for r in results] == ["refused"] * 4 + ["unregistered"] * 2
