"""Finding works by title, creator and identifier: the public search, a holder's ``works?q=``, and the engines.

The ranking cases run on whichever database the suite runs on (SQLite's LIKE, or PostgreSQL's indexes), so both
engines are held to one table; the PostgreSQL-only cases prove pg_trgm reads Hangul and that the indexes serve
the queries.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from registry.search import SEARCH_QUERY_MAX_LENGTH, search_form, work_search_ids
from tests.factories import RefusalFactory, WorkFactory, isbn

pytestmark = pytest.mark.django_db


def titles(ids: list[int]) -> list[str]:
    from registry.models import Work

    by_id = dict(Work.objects.filter(pk__in=ids).values_list("pk", "title"))
    return [by_id[pk] for pk in ids]


@pytest.fixture
def shelf(holder: Any, other_holder: Any, staff: Any) -> dict[str, Any]:
    """Works of two holders, Korean and English, named for what each case looks for."""
    made = {}
    for n, (title, creators, owner) in enumerate(
        [
            ("봄의 정원 이야기", ["김정원"], holder),
            ("봄의정원", ["Han Kang"], holder),
            ("정원", [], other_holder),
            ("정원사의 하루", ["이봄"], other_holder),
            ("The Secret Garden", ["Frances Hodgson Burnett"], holder),
            ("Garden", ["Anna Lee"], other_holder),
            ("Gardens of the Moon", ["Steven Erikson"], other_holder),
            ("바다", ["정원"], holder),
            ("100% 확률_실험", [], holder),
        ],
        start=1,
    ):
        made[title] = WorkFactory(
            holder=owner, title=title, creators=creators, identifiers=[("isbn", isbn(n))], verified_by=staff
        )
    return made


# --- The ranking rule, on either database --------------------------------------------------------------

CASES = [
    # exact title, then the start of a title, then a part of one, then a creator's name (shorter titles first)
    ("정원", ["정원", "바다", "정원사의 하루", "봄의정원", "봄의 정원 이야기"]),
    # spacing does not matter, either way
    ("봄의정원", ["봄의정원", "봄의 정원 이야기"]),
    ("봄의 정원", ["봄의정원", "봄의 정원 이야기"]),
    ("정원 이야기", ["봄의 정원 이야기"]),
    # a Hangul substring inside a word
    ("원이야", ["봄의 정원 이야기"]),
    # Latin: case does not matter; exact title first, then starts, then contains
    ("GARDEN", ["Garden", "Gardens of the Moon", "The Secret Garden"]),
    ("secret garden", ["The Secret Garden"]),
    # creators: an exact name before a part of one
    ("han kang", ["봄의정원"]),
    ("burnett", ["The Secret Garden"]),
    ("이봄", ["정원사의 하루"]),
    # one character looks only at the start of titles (and at identifiers)
    ("봄", ["봄의정원", "봄의 정원 이야기"]),
    # LIKE's wildcards are searched as themselves
    ("100%", ["100% 확률_실험"]),
    ("률_실", ["100% 확률_실험"]),
    ("%", []),  # one character: not the start of any title, and never a wildcard
    ("nothing like this", []),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_search_ranks_the_same_on_every_database(shelf, query, expected):
    assert titles(work_search_ids(query=query)) == expected


def test_an_identifier_in_any_spelling_finds_its_work_first(shelf):
    hyphenated = f"{isbn(5)[:3]}-{isbn(5)[3:5]}-{isbn(5)[5:12]}-{isbn(5)[12]}"
    for query in (hyphenated, isbn(5), f"ISBN:{hyphenated}", f"isbn {isbn(5)}"[5:]):
        assert titles(work_search_ids(query=query))[:1] == ["The Secret Garden"], query


def test_search_form_folds_case_space_and_unicode_composition():
    decomposed = "\u1107\u1169\u11b7\u110b\u1174 \u110c\u1165\u11bc\u110b\u116f\u11ab"  # 봄의 정원, as macOS writes it
    assert search_form(decomposed) == "봄의정원"
    assert search_form("  The\tSecret  GARDEN ") == "thesecretgarden"


# --- The public API ---------------------------------------------------------------------------------


def test_anyone_finds_a_korean_title_by_a_part_of_it(api, shelf):
    response = api.get("/api/v1/search", {"q": "정원 이야기"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 1
    (result,) = body["results"]
    work = shelf["봄의 정원 이야기"]
    assert result["id"] == work.pk
    assert result["title"] == "봄의 정원 이야기"
    assert result["creators"] == ["김정원"]
    assert result["kind"] == "text"
    assert result["status"] == "permitted"
    assert result["refused"] is False
    assert result["url"] == f"http://testserver/works/{work.pk}"
    # Never who owns it.
    assert "claims" not in result


def test_search_results_say_which_works_are_refused(api, shelf):
    RefusalFactory(work=shelf["Garden"])

    results = api.get("/api/v1/search", {"q": "garden"}).json()["results"]

    assert [(r["title"], r["status"], r["refused"]) for r in results] == [
        ("Garden", "refused", True),
        ("Gardens of the Moon", "permitted", False),
        ("The Secret Garden", "permitted", False),
    ]


def test_anyone_finds_a_work_by_its_creator_and_by_an_identifier(api, shelf):
    by_creator = api.get("/api/v1/search", {"q": "Frances Hodgson"}).json()["results"]
    by_isbn = api.get("/api/v1/search", {"q": f"978-89-{isbn(2)[5:12]}-{isbn(2)[12]}"}).json()["results"]

    assert [r["title"] for r in by_creator] == ["The Secret Garden"]
    assert [r["title"] for r in by_isbn][:1] == ["봄의정원"]


def test_search_pages_in_fifties_with_the_best_first(api, holder):
    for n in range(1, 62):
        WorkFactory(holder=holder, title=f"정원 {n:03d}", identifiers=[("isbn", isbn(100 + n))])
    WorkFactory(holder=holder, title="정원", identifiers=[("isbn", isbn(99))])

    first = api.get("/api/v1/search", {"q": "정원"}).json()
    second = api.get("/api/v1/search", {"q": "정원", "page": 2}).json()

    assert first["count"] == 62
    assert len(first["results"]) == 50
    assert first["results"][0]["title"] == "정원"
    assert first["next"].endswith("page=2&q=%EC%A0%95%EC%9B%90") or "page=2" in first["next"]
    assert len(second["results"]) == 12
    assert second["next"] is None
    assert [r["title"] for r in second["results"]][-1] == "정원 061"


@pytest.mark.parametrize("q", ["", "   ", None])
def test_an_empty_query_is_refused_with_its_code_and_field(api, q):
    response = api.get("/api/v1/search", {} if q is None else {"q": q})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "query_empty"
    assert response.json()["error"]["field"] == "q"


def test_a_too_long_query_is_refused(api):
    response = api.get("/api/v1/search", {"q": "가" * (SEARCH_QUERY_MAX_LENGTH + 1)})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "query_too_long",
        "message": response.json()["error"]["message"],
        "field": "q",
    }
    assert str(SEARCH_QUERY_MAX_LENGTH) in response.json()["error"]["message"]


# --- A holder's own works -----------------------------------------------------------------------------


def test_a_holders_search_lists_only_its_own_works(holder_api, other_holder_api, shelf):
    own = holder_api.get("/api/v1/works", {"q": "정원"}).json()
    others = other_holder_api.get("/api/v1/works", {"q": "정원"}).json()

    assert [w["title"] for w in own["results"]] == ["바다", "봄의정원", "봄의 정원 이야기"]
    assert own["count"] == 3
    assert [w["title"] for w in others["results"]] == ["정원", "정원사의 하루"]
    # The holder's list keeps its full shape (identifiers, claims).
    assert own["results"][0]["identifiers"] == [{"scheme": "isbn", "value": isbn(8), "spelling": isbn(8)}]


def test_a_holders_search_combines_with_the_other_filters(holder_api, shelf):
    body = holder_api.get("/api/v1/works", {"q": "garden", "kind": "audio"}).json()

    assert body["count"] == 0


def test_a_holders_empty_search_is_refused_and_no_q_lists_everything(holder_api, shelf):
    empty = holder_api.get("/api/v1/works", {"q": ""})
    everything = holder_api.get("/api/v1/works")

    assert empty.status_code == 400
    assert empty.json()["error"]["code"] == "query_empty"
    assert empty.json()["error"]["field"] == "q"
    assert everything.json()["count"] == 5


# --- PostgreSQL: pg_trgm reads Hangul; the indexes serve the queries ------------------------------------


def _plan(sql: str, params: list[Any]) -> str:
    with connection.cursor() as cursor:
        # Planned as on a large table: with a handful of rows a scan is cheaper, and proves nothing.
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")


@pytest.mark.postgres
def test_pg_trgm_reads_hangul_as_word_characters_under_this_databases_locale(shelf):
    with connection.cursor() as cursor:
        cursor.execute("SHOW lc_ctype")
        (lc_ctype,) = cursor.fetchone()
        cursor.execute("SELECT show_trgm('봄의 정원'), similarity('봄의정원', '봄의 정원')")
        trigrams, similarity = cursor.fetchone()
    # Under a locale where Hangul is not alphanumeric, pg_trgm would drop it: no trigrams, similarity 0.
    assert len(trigrams) >= 4, (lc_ctype, trigrams)
    assert similarity > 0.3, lc_ctype


@pytest.mark.postgres
def test_each_query_length_is_served_by_an_index(shelf):
    text = "registry_work_search_text(title, creators)"
    contains = _plan(f"SELECT id FROM registry_work WHERE {text} LIKE %s", ["%정원이야%"])  # noqa: S608
    bigram = _plan(f"SELECT id FROM registry_work WHERE registry_search_bigrams({text}) @> ARRAY[%s]", ["정원"])  # noqa: S608
    prefix = _plan("SELECT id FROM registry_work WHERE registry_search_norm(title) LIKE %s", ["봄%"])

    assert "registry_work_search_trgm" in contains
    assert "registry_work_search_bigrams" in bigram
    assert "registry_work_search_title" in prefix


@pytest.mark.postgres
@pytest.mark.parametrize(
    "text", ["", "a", "ab", "abc", "정원", "봄의정원이야기", "봄의정원\x1f김정원", "aaaa", "가나가나가"]
)
def test_bigrams_are_every_two_adjacent_characters(text):
    # Migration 0015 computes them without generate_series; the set must be 0008's, odd lengths and repeats too.
    with connection.cursor() as cursor:
        cursor.execute("SELECT registry_search_bigrams(%s)", [text])
        (bigrams,) = cursor.fetchone()
    assert sorted(set(bigrams)) == sorted({text[i : i + 2] for i in range(len(text) - 1)})
    assert all(len(bigram) == 2 for bigram in bigrams)


@pytest.mark.postgres
def test_hangul_search_through_the_indexes_finds_substrings_and_spacing_variants(api, shelf):
    with connection.cursor() as cursor:
        # The search's statements, planned as on a large table: the indexes, not a scan, must find the rows.
        cursor.execute("SET enable_seqscan = off")
        try:
            two = titles(work_search_ids(query="정원"))
            three = titles(work_search_ids(query="의정원"))
            spaced = titles(work_search_ids(query="봄의 정 원"))
        finally:
            cursor.execute("RESET enable_seqscan")

    assert two == ["정원", "바다", "정원사의 하루", "봄의정원", "봄의 정원 이야기"]
    assert three == ["봄의정원", "봄의 정원 이야기"]
    assert spaced == ["봄의정원", "봄의 정원 이야기"]


# --- Licensing contacts and the public work page ---------------------------------------------------------


def test_the_public_page_shows_creators_and_the_holders_licensing_contact(api, holder_api, shelf):
    saved = holder_api.put(
        "/api/v1/licensing-contact",
        {"licensing_email": "rights@hangang.example", "licensing_url": "https://hangang.example/licensing"},
        format="json",
    )
    work = shelf["The Secret Garden"]

    body = api.get(f"/works/{work.pk}").content.decode()

    assert saved.status_code == 200, saved.content
    assert saved.json() == {
        "licensing_email": "rights@hangang.example",
        "licensing_url": "https://hangang.example/licensing",
    }
    assert "Frances Hodgson Burnett" in body
    assert 'href="mailto:rights@hangang.example"' in body
    assert "https://hangang.example/licensing" in body
    # Another holder's work shows no contact: that holder gave none.
    other = api.get(f"/works/{shelf['Garden'].pk}").content.decode()
    assert "rights@hangang.example" not in other
    assert "Licensing contact" not in other


def test_a_works_own_contact_replaces_the_holders_and_only_a_verified_holder_sets_it(
    api, holder_api, other_holder_api, holder, shelf
):
    from registry.models import AuditEvent

    holder_api.put("/api/v1/licensing-contact", {"licensing_email": "rights@hangang.example"}, format="json")
    work = shelf["봄의정원"]

    response = holder_api.put(
        f"/api/v1/works/{work.pk}/licensing-contact", {"licensing_url": "https://books.example/spring"}, format="json"
    )
    stranger = other_holder_api.put(
        f"/api/v1/works/{work.pk}/licensing-contact", {"licensing_url": "https://evil.example"}, format="json"
    )
    body = api.get(f"/works/{work.pk}").content.decode()

    assert response.status_code == 200, response.content
    assert response.json()["licensing_url"] == "https://books.example/spring"
    assert stranger.status_code == 404
    assert "https://books.example/spring" in body
    assert "rights@hangang.example" not in body
    assert "Han Kang" in body
    assert AuditEvent.objects.filter(code="registry.work.licensing_contact_set", object_id=str(work.pk)).count() == 1


def test_a_licensing_contact_must_be_an_email_and_an_http_address(holder_api, holder):
    bad_email = holder_api.put("/api/v1/licensing-contact", {"licensing_email": "not-mail"}, format="json")
    bad_url = holder_api.put("/api/v1/licensing-contact", {"licensing_url": "javascript:alert(1)"}, format="json")

    assert bad_email.status_code == 400
    assert bad_email.json()["error"]["field"] == "licensing_email"
    assert bad_url.status_code == 400
    assert bad_url.json()["error"]["field"] == "licensing_url"
    holder.refresh_from_db()
    assert (holder.licensing_email, holder.licensing_url) == ("", "")


def test_a_pending_claimant_cannot_set_a_works_contact(holder, other_holder, other_holder_api, staff):
    from tests.factories import ClaimFactory

    work = WorkFactory(holder=holder, title="Contested", identifiers=[("isbn", isbn(77))], verified_by=staff)
    ClaimFactory(work=work, holder=other_holder, share_bp=1)

    response = other_holder_api.put(
        f"/api/v1/works/{work.pk}/licensing-contact", {"licensing_email": "x@evil.example"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "claim_not_verified"
    work.refresh_from_db()
    assert work.licensing_email == ""


# --- The portal's search page ---------------------------------------------------------------------------


def test_the_portal_search_lists_korean_titles_with_their_status_and_link(shelf, settings):
    from django.test import Client

    RefusalFactory(work=shelf["정원"])
    client = Client(HTTP_ACCEPT_LANGUAGE="ko")

    response = client.get("/search", {"q": "봄의정원"})
    body = response.content.decode()
    refused = client.get("/search", {"q": "정원"}).content.decode()

    assert response.status_code == 200
    assert "저작물 2건을 찾았습니다" in body
    assert f'href="/works/{shelf["봄의정원"].pk}"' in body
    assert f'href="/works/{shelf["봄의 정원 이야기"].pk}"' in body
    assert "Han Kang" in body
    assert "거부" in refused


def test_the_portal_search_in_english_finds_by_creator_and_says_when_nothing_matches(shelf):
    from django.test import Client

    client = Client(HTTP_ACCEPT_LANGUAGE="en")

    found = client.get("/search", {"q": "steven erikson"}).content.decode()
    nothing = client.get("/search", {"q": "no such title anywhere"})

    assert "1 work found" in found
    assert "Gardens of the Moon" in found
    assert nothing.status_code == 200
    assert "No registered work matches" in nothing.content.decode()


def test_the_portal_search_refuses_a_too_long_query(shelf):
    from django.test import Client

    response = Client(HTTP_ACCEPT_LANGUAGE="en").get("/search", {"q": "x" * (SEARCH_QUERY_MAX_LENGTH + 1)})

    assert response.status_code == 400
    assert "at most 200 characters" in response.content.decode()
