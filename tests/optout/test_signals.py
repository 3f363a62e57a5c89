"""Refusals as web signals: headers, the public work page and status, TDMRep and robots.txt files,
and the Spawning-compatible bulk URL check."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from core.actors import Actor
from optout.signals import PathRule, refusal_headers, robots_txt, tdmrep_json
from tests.factories import ApiKeyFactory, WorkFactory
from tests.helpers import key_client
from tests.optout.helpers import refuse

pytestmark = pytest.mark.django_db

SIGNAL_HEADERS = ("tdm-reservation", "X-Robots-Tag", "Content-Usage")


def withdraw(client, refusal):
    response = client.post(f"/api/v1/refusals/{refusal['id']}/withdraw", {}, format="json")
    assert response.status_code == 200, response.content


def verified_domain(holder, origin="https://news.example.kr"):
    from registry.services import domain_add, domain_check

    domain = domain_add(actor=Actor(party=holder), holder=holder, origin=origin, method="dns")
    return domain_check(
        actor=Actor(party=holder), domain=domain, resolver=lambda name: [f"optout-registry-verification={domain.token}"]
    )


def page(work_id, language="en"):
    return Client().get(f"/works/{work_id}", HTTP_ACCEPT_LANGUAGE=language)


def status_of(url, client=None):
    return (client or APIClient()).get("/status", {"url": url})


# --- Headers ------------------------------------------------------------------------------------


def test_refusal_headers_say_either_purpose_with_aiprefs_one_training_label():
    assert refusal_headers(refused_train_ai=True, refused_train_genai=True) == {
        "tdm-reservation": "1",
        "X-Robots-Tag": "noai, noimageai",
        "Content-Usage": "train-ai=n",
    }
    # aipref's vocabulary (-05 to -08) has no train-genai label, and parsers ignore unknown labels: a generative-only
    # refusal must still read as a refusal to a conforming crawler.
    assert refusal_headers(refused_train_ai=False, refused_train_genai=True)["Content-Usage"] == "train-ai=n"
    assert refusal_headers(refused_train_ai=False, refused_train_genai=False) == {}


def test_a_work_refused_for_all_ai_training_sends_every_refusal_header(book, holder_api):
    refuse(holder_api, scope="work", work=book.pk)

    response = page(book.pk)

    assert response.status_code == 200
    assert response["tdm-reservation"] == "1"
    assert response["X-Robots-Tag"] == "noai, noimageai"
    assert response["Content-Usage"] == "train-ai=n"
    html = response.content.decode()
    assert "Refused" in html
    assert "Any AI model training" in html
    assert "One work" in html


def test_a_work_refused_only_for_generative_training_says_train_ai_to_crawlers(book, holder_api):
    refuse(holder_api, scope="work", work=book.pk, purposes=["train-genai"])

    response = page(book.pk)

    assert response.status_code == 200
    assert response["Content-Usage"] == "train-ai=n"
    assert response["tdm-reservation"] == "1"
    assert response["X-Robots-Tag"] == "noai, noimageai"
    assert "Generative AI model training" in response.content.decode()


def test_a_permitted_work_sends_no_refusal_header(book):
    response = page(book.pk)

    assert response.status_code == 200
    assert not any(response.has_header(name) for name in SIGNAL_HEADERS)
    assert "Permitted" in response.content.decode()


def test_a_withdrawn_refusal_sends_no_header(book, holder_api):
    withdraw(holder_api, refuse(holder_api, scope="work", work=book.pk))

    response = page(book.pk)

    assert not any(response.has_header(name) for name in SIGNAL_HEADERS)


# --- Public work page ---------------------------------------------------------------------------


def test_the_work_page_shows_no_private_data(book, holder, holder_api, owner):
    refuse(holder_api, scope="work", work=book.pk)

    html = page(book.pk).content.decode()

    assert book.title in html
    assert "9788936434021" in html
    assert "Use first, compensate later" in html
    assert holder.name not in html
    assert owner.email not in html
    assert "10000" not in html


def test_the_work_page_speaks_korean_and_english(book):
    korean = page(book.pk, language="ko")
    english = page(book.pk, language="en")

    assert korean.status_code == english.status_code == 200
    assert korean["Content-Language"] == "ko"
    assert english["Content-Language"] == "en"
    korean_html, english_html = korean.content.decode(), english.content.decode()
    assert '<html lang="ko">' in korean_html
    assert "제목" in korean_html
    assert "종류" in korean_html
    assert "텍스트" in korean_html
    assert '<html lang="en">' in english_html
    assert "Title" in english_html
    assert "Text" in english_html
    assert "제목" not in english_html


def test_a_license_required_work_says_so_without_refusal_headers(book, staff_api):
    staff_api.post("/api/v1/regimes", {"kind": "text", "regime": "license_required"}, format="json")

    response = page(book.pk)

    assert response.status_code == 200
    assert "Licence required" in response.content.decode()
    assert not response.has_header("Content-Usage")


def test_an_unknown_work_is_a_404(db):
    assert page(999_999).status_code == 404


def test_the_work_page_needs_no_account_and_is_read_only(book):
    assert Client().post(f"/works/{book.pk}").status_code == 405


def test_a_url_identifier_under_a_refused_prefix_refuses_the_work(holder, holder_api, staff):
    verified_domain(holder)
    work = WorkFactory(
        holder=holder, identifiers=[("url", "https://news.example.kr/2026/opinion/column-1")], verified_by=staff
    )
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")

    response = page(work.pk)

    assert response["Content-Usage"] == "train-ai=n"
    assert "A URL prefix on a verified domain" in response.content.decode()


# --- Public status endpoint ---------------------------------------------------------------------


def test_the_status_of_a_refused_url_carries_the_headers(holder, holder_api):
    verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")

    response = status_of("https://NEWS.example.kr:443/2026/opinion/column-1#top")

    assert response.status_code == 200
    assert response.json() == {
        "url": "https://news.example.kr/2026/opinion/column-1",
        "status": "refused",
        "may_train": False,
        "train_ai": True,
        "train_genai": True,
    }
    assert response["tdm-reservation"] == "1"
    assert response["X-Robots-Tag"] == "noai, noimageai"
    assert response["Content-Usage"] == "train-ai=n"


def test_the_status_of_a_url_refused_only_for_generative_training(holder, holder_api):
    verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/", purposes=["train-genai"])

    response = status_of("https://news.example.kr/sports/1")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["may_train"]) == ("refused", False)
    assert (body["train_ai"], body["train_genai"]) == (False, True)
    assert response["Content-Usage"] == "train-ai=n"


def test_the_status_of_an_unrefused_url_has_no_refusal_header(db):
    response = status_of("https://elsewhere.example.kr/page")

    assert response.status_code == 200
    assert response.json()["status"] == "unregistered"
    assert response.json()["may_train"] is True
    assert (response.json()["train_ai"], response.json()["train_genai"]) == (False, False)
    assert not any(response.has_header(name) for name in SIGNAL_HEADERS)


def test_crawlers_may_ask_with_head(holder, holder_api):
    verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/")

    response = APIClient().head("/status", {"url": "https://news.example.kr/a"}, HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Usage"] == "train-ai=n"
    assert response.content == b""


@pytest.mark.parametrize(
    ("url", "code"),
    [("ftp://news.example.kr/", "invalid_component"), ("not a url", "invalid_format"), ("", "required")],
)
def test_an_invalid_status_url_is_a_400_naming_the_field(db, url, code):
    response = status_of(url)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, "url")
    assert error["message"]


def test_the_status_is_rate_limited_for_anonymous_callers(db, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"lookup": "5/min", "lookup_anonymous": "1/min"})
    anonymous = APIClient()

    answers = [status_of("https://x.example.kr/", anonymous).status_code for _ in range(2)]

    assert answers == [200, 429]


# --- Per-domain files ---------------------------------------------------------------------------


@pytest.fixture
def news_domain(holder, holder_api):
    """A DNS-verified domain with an opinion prefix in force and a withdrawn sports prefix."""
    domain = verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")
    withdraw(
        holder_api,
        refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/sports/", purposes=["train-genai"]),
    )
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/photos/", purposes=["train-genai"])
    return domain


def test_the_tdmrep_file_lists_the_prefixes_in_force(news_domain, holder_api):
    response = holder_api.get(f"/api/v1/domains/{news_domain.pk}/tdmrep.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == [
        {"location": "/2026/opinion/*", "tdm-reservation": 1},
        {"location": "/photos/*", "tdm-reservation": 1},
    ]


def test_the_robots_txt_lines_carry_aipref_content_usage_rules(news_domain, holder_api):
    response = holder_api.get(f"/api/v1/domains/{news_domain.pk}/robots.txt")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    rules = [line for line in response.content.decode().splitlines() if line and not line.startswith("#")]
    assert rules == [
        "User-Agent: *",
        "Content-Usage: /2026/opinion/ train-ai=n",
        "Content-Usage: /photos/ train-ai=n",
        f"License: http://testserver/domains/{news_domain.pk}/license.xml",
    ]


def test_another_holder_cannot_download_my_domains_files(news_domain, other_holder_api):
    for name in ("tdmrep.json", "robots.txt"):
        response = other_holder_api.get(f"/api/v1/domains/{news_domain.pk}/{name}")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_the_domain_files_need_a_key(news_domain):
    assert APIClient().get(f"/api/v1/domains/{news_domain.pk}/tdmrep.json").status_code == 401


def test_a_pending_domain_has_nothing_in_force(holder, holder_api):
    created = holder_api.post("/api/v1/domains", {"origin": "https://blog.example.kr", "method": "dns"}, format="json")
    refuse(holder_api, scope="url_prefix", url_prefix="https://blog.example.kr/")

    tdmrep = holder_api.get(f"/api/v1/domains/{created.json()['id']}/tdmrep.json")
    robots = holder_api.get(f"/api/v1/domains/{created.json()['id']}/robots.txt")

    assert tdmrep.json() == []
    assert "User-Agent" not in robots.content.decode()


def test_a_root_prefix_is_the_whole_site_and_covers_narrower_paths():
    rules = [PathRule(path="/", purpose="train-ai"), PathRule(path="/2026/", purpose="train-genai")]

    assert tdmrep_json(rules=rules) == [
        {"location": "/*", "tdm-reservation": 1},
        {"location": "/2026/*", "tdm-reservation": 1},
    ]
    # Crawlers apply the longest matching path: /2026/ must repeat the refusal of everything. The whole site is
    # refused, so the group also carries Content Signals' (pathless) ai-train=no.
    lines = robots_txt(rules=rules, origin="https://news.example.kr").splitlines()
    assert lines[-3:] == [
        "Content-Usage: / train-ai=n",
        "Content-Usage: /2026/ train-ai=n",
        "Content-Signal: ai-train=no",
    ]


# --- Spawning-compatible bulk check -------------------------------------------------------------


@pytest.fixture
def mixed_registry(holder, holder_api, staff):
    verified_domain(holder)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/opinion/")
    work = WorkFactory(holder=holder, identifiers=[("url", "https://blog.example.kr/post/1")], verified_by=staff)
    refuse(holder_api, scope="work", work=work.pk, purposes=["train-genai"])


MIXED_BODY = (
    "https://news.example.kr/2026/opinion/column-1\r\n"
    "https://unregistered.example.kr/image.png\r\n"
    "\r\n"
    "https://BLOG.example.kr/post/1\n"
    "not a url\n"
    "\n"
)


def spawning_client(raw_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"API {raw_key}")
    return client


@pytest.mark.parametrize("header", ["API", "Api-Key", "api"])
def test_the_bulk_check_answers_each_url_in_order(mixed_registry, lab, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{header} {ApiKeyFactory(party=lab, scopes=['lookup']).raw}")

    response = client.post("/api/v1/compat/urls", MIXED_BODY, content_type="text/plain")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "urls": [
            {"url": "https://news.example.kr/2026/opinion/column-1", "optOut": True, "optIn": False},
            {"url": "https://unregistered.example.kr/image.png", "optOut": False, "optIn": False},
            {"url": "https://BLOG.example.kr/post/1", "optOut": True, "optIn": False},
            {"url": "not a url", "optOut": False, "optIn": False, "error": "invalid_format"},
        ]
    }


def test_the_bulk_check_opts_out_works_that_need_a_licence(book, lab, holder, staff, staff_api):
    WorkFactory(
        holder=holder, identifiers=[("url", "https://music.example.kr/song/1")], kind="audio", verified_by=staff
    )
    staff_api.post("/api/v1/regimes", {"kind": "audio", "regime": "license_required"}, format="json")

    response = spawning_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw).post(
        "/api/v1/compat/urls", "https://music.example.kr/song/1\n", content_type="text/plain"
    )

    assert response.json()["urls"] == [{"url": "https://music.example.kr/song/1", "optOut": True, "optIn": False}]


def test_the_bulk_check_is_one_lookup_whatever_its_size(mixed_registry, lab):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = spawning_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw)
    many = "\n".join(f"https://news.example.kr/2026/opinion/{n}" for n in range(2_000))
    client.post("/api/v1/compat/urls", "https://news.example.kr/", content_type="text/plain")  # the key's first use

    with CaptureQueriesContext(connection) as one:
        client.post("/api/v1/compat/urls", "https://news.example.kr/", content_type="text/plain")
    with CaptureQueriesContext(connection) as two_thousand:
        response = client.post("/api/v1/compat/urls", many, content_type="text/plain")

    assert len(response.json()["urls"]) == 2_000
    assert all(u["optOut"] for u in response.json()["urls"])
    assert len(one.captured_queries) == len(two_thousand.captured_queries)


def test_more_than_ten_thousand_urls_is_a_413(lab):
    body = "\n".join(f"https://site.example.kr/{n}" for n in range(10_001))

    response = spawning_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw).post(
        "/api/v1/compat/urls", body, content_type="text/plain"
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_items"


def test_ten_thousand_urls_and_blank_lines_are_accepted(lab):
    body = "\n".join(f"https://site.example.kr/{n}" for n in range(10_000)) + "\n\n\n"

    response = spawning_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw).post(
        "/api/v1/compat/urls", body, content_type="text/plain"
    )

    assert response.status_code == 200
    assert len(response.json()["urls"]) == 10_000


def test_the_bulk_check_needs_a_key(db):
    response = APIClient().post("/api/v1/compat/urls", "https://a.example.kr/", content_type="text/plain")

    assert response.status_code == 401


def test_the_bulk_check_needs_the_lookup_scope(holder):
    response = spawning_client(ApiKeyFactory(party=holder, scopes=["works:write"]).raw).post(
        "/api/v1/compat/urls", "https://a.example.kr/", content_type="text/plain"
    )

    assert (response.status_code, response.json()["error"]["code"]) == (403, "missing_scope")


def test_an_unknown_key_in_spawnings_form_is_refused(db):
    response = spawning_client("not-a-key").post(
        "/api/v1/compat/urls", "https://a.example.kr/", content_type="text/plain"
    )

    assert response.status_code == 401


def test_the_bulk_check_takes_only_plain_text(lab):
    response = key_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw).post(
        "/api/v1/compat/urls", {"urls": ["https://a.example.kr/"]}, format="json"
    )

    assert response.status_code == 415


def test_the_work_page_is_rate_limited_per_address(book, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"lookup": "5/min", "lookup_anonymous": "1/min"})

    answers = [page(book.pk) for _ in range(2)]

    assert [r.status_code for r in answers] == [200, 429]
    assert int(answers[1]["Retry-After"]) > 0


def test_a_body_that_is_not_utf8_is_a_400(lab):
    response = spawning_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw).post(
        "/api/v1/compat/urls", "https://a.example.kr/é".encode("latin-1"), content_type="text/plain"
    )

    assert (response.status_code, response.json()["error"]["code"]) == (400, "parse_error")


def test_an_empty_body_has_no_answers(lab):
    response = spawning_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw).post(
        "/api/v1/compat/urls", "\r\n\n", content_type="text/plain"
    )

    assert (response.status_code, response.json()) == (200, {"urls": []})
