"""Registering, listing and finding works through the HTTP API."""

from __future__ import annotations

import hashlib
import io

import pytest

from registry.models import AuditEvent, ClaimStatus, Identifier, OwnershipClaim, Work, WorkStatus
from tests.factories import ApiKeyFactory
from tests.helpers import key_client

pytestmark = pytest.mark.django_db

BOOK = {
    "title": "소년이 온다",
    "kind": "text",
    "identifiers": [{"scheme": "isbn", "value": "89-364-3402-0"}],
    "creators": ["Han Kang"],
    "language": "ko",
    "creation_year": 2014,
}


def test_holder_registers_a_work_with_its_claim(holder_api, holder):
    response = holder_api.post("/api/v1/works", BOOK, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "소년이 온다"
    assert body["status"] == WorkStatus.UNVERIFIED
    # ISBN-10 is stored in its 13-digit form.
    assert body["identifiers"] == [{"scheme": "isbn", "value": "9788936434021", "spelling": "89-364-3402-0"}]
    assert body["claim"]["share_bp"] == 10000
    assert body["claim"]["status"] == ClaimStatus.PENDING
    work = Work.objects.get(pk=body["id"])
    claim = OwnershipClaim.objects.get(work=work)
    assert claim.holder == holder
    event = AuditEvent.objects.get(code="registry.work.registered")
    assert event.object_id == str(work.pk)
    assert event.actor_party == holder
    assert event.data["identifiers"] == ["isbn:9788936434021"]


def test_registering_an_identifier_another_work_holds_is_refused_with_that_work(holder_api, other_holder_api):
    first = holder_api.post("/api/v1/works", BOOK, format="json").json()
    # The same ISBN written as ISBN-13 with hyphens.
    same_book = {**BOOK, "title": "Human Acts", "identifiers": [{"scheme": "ISBN", "value": "978-89-364-3402-1"}]}

    response = other_holder_api.post("/api/v1/works", same_book, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "identifier_taken"
    assert error["existing_work_id"] == first["id"]
    assert Work.objects.count() == 1


def test_invalid_identifier_is_refused_with_reason_and_field_and_nothing_is_written(holder_api):
    bad = {
        **BOOK,
        "identifiers": [{"scheme": "doi", "value": "10.1000/x"}, {"scheme": "isbn", "value": "978-89-364-3402-5"}],
    }

    response = holder_api.post("/api/v1/works", bad, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_checksum"
    assert error["field"] == "identifiers[1].value"
    assert Work.objects.count() == 0
    assert Identifier.objects.count() == 0
    assert not AuditEvent.objects.filter(code="registry.work.registered").exists()


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({**BOOK, "title": ""}, "blank", "title"),
        ({**BOOK, "kind": "poem"}, "invalid_choice", "kind"),
        ({**BOOK, "identifiers": []}, "required", "identifiers"),
        ({**BOOK, "identifiers": [{"scheme": "ark", "value": "x"}]}, "unknown_scheme", "identifiers[0].scheme"),
        ({**BOOK, "share_bp": 0}, "min_value", "share_bp"),
        ({**BOOK, "language": "korean language"}, "invalid_format", "language"),
        ({**BOOK, "creation_year": 3000}, "out_of_range", "creation_year"),
    ],
)
def test_bad_work_input_gets_a_specific_error(holder_api, payload, code, field):
    response = holder_api.post("/api/v1/works", payload, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert Work.objects.count() == 0


def test_equivalent_spellings_in_one_request_collapse_to_one_identifier(holder_api):
    payload = {
        **BOOK,
        "identifiers": [
            {"scheme": "doi", "value": "doi:10.1000/ABC"},
            {"scheme": "doi", "value": "https://doi.org/10.1000/abc"},
        ],
    }
    response = holder_api.post("/api/v1/works", payload, format="json")

    assert response.status_code == 201
    # One identifier, with the first spelling it was given.
    assert response.json()["identifiers"] == [{"scheme": "doi", "value": "10.1000/abc", "spelling": "doi:10.1000/ABC"}]


def test_work_is_found_by_each_identifier_in_any_spelling(holder_api):
    payload = {
        **BOOK,
        "identifiers": [
            {"scheme": "isbn", "value": "9788936434021"},
            {"scheme": "url", "value": "https://books.example.kr/han-kang"},
        ],
    }
    work_id = holder_api.post("/api/v1/works", payload, format="json").json()["id"]
    holder_api.post(
        "/api/v1/works",
        {**BOOK, "title": "Other", "identifiers": [{"scheme": "isbn", "value": "9780306406157"}]},
        format="json",
    )

    by_isbn10 = holder_api.get("/api/v1/works", {"identifier": "isbn:89-364-3402-0"}).json()
    by_url = holder_api.get("/api/v1/works", {"identifier": "url:HTTPS://Books.Example.KR:443/han-kang#top"}).json()

    assert [w["id"] for w in by_isbn10["results"]] == [work_id]
    assert [w["id"] for w in by_url["results"]] == [work_id]


def test_work_list_is_paginated_and_filterable_by_kind_and_status(holder_api):
    for n in range(3):
        holder_api.post(
            "/api/v1/works",
            {"title": f"Song {n}", "kind": "audio", "identifiers": [{"scheme": "isrc", "value": f"KRA401900{n:03d}"}]},
            format="json",
        )
    holder_api.post("/api/v1/works", BOOK, format="json")

    audio = holder_api.get("/api/v1/works", {"kind": "audio"}).json()
    unverified = holder_api.get("/api/v1/works", {"status": "unverified"}).json()
    verified = holder_api.get("/api/v1/works", {"status": "verified"}).json()

    assert audio["count"] == 3
    assert {w["kind"] for w in audio["results"]} == {"audio"}
    assert unverified["count"] == 4
    assert verified["count"] == 0
    assert holder_api.get("/api/v1/works", {"kind": "poem"}).status_code == 400


def test_work_list_shows_only_the_callers_works(holder_api, other_holder_api):
    holder_api.post("/api/v1/works", BOOK, format="json")

    assert other_holder_api.get("/api/v1/works").json()["count"] == 0


def test_registering_by_file_keeps_only_its_fingerprints(holder_api, settings, django_capture_on_commit_callbacks):
    content = "AI 학습 거부 등록부에 등록하는 원고입니다. " * 50
    upload = io.BytesIO(content.encode())
    upload.name = "manuscript.txt"

    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.post(
            "/api/v1/works", {"title": "원고", "kind": "text", "file": upload}, format="multipart"
        )

    # Accepted: the worker fingerprints the file (tests/registry/test_work_files.py has the job's details).
    assert response.status_code == 202, response.content
    work = holder_api.get(f"/api/v1/works/{response.json()['id']}").json()
    identifiers = {i["scheme"]: i["value"] for i in work["identifiers"]}
    assert identifiers["sha256"] == hashlib.sha256(content.encode()).hexdigest()
    assert identifiers["iscc"].startswith("ISCC:")
    # The file itself is not kept once fingerprinted.
    media = settings.MEDIA_ROOT
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_registering_with_a_sha256_computed_by_the_holder(holder_api):
    digest = hashlib.sha256(b"image bytes").hexdigest().upper()
    response = holder_api.post(
        "/api/v1/works",
        {"title": "Photo", "kind": "image", "identifiers": [{"scheme": "sha256", "value": digest}]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["identifiers"] == [{"scheme": "sha256", "value": digest.lower(), "spelling": digest}]


def test_session_user_registers_for_their_party(session_api, holder):
    response = session_api.post("/api/v1/works", BOOK, format="json")

    assert response.status_code == 201
    assert OwnershipClaim.objects.get().holder == holder
    assert AuditEvent.objects.get(code="registry.work.registered").actor_user is not None


def test_key_without_works_write_scope_cannot_register(holder):

    lookup_only = key_client(ApiKeyFactory(party=holder, scopes=["lookup"]).raw)
    response = lookup_only.post("/api/v1/works", BOOK, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert Work.objects.count() == 0


def test_lab_cannot_register_works_even_with_the_works_write_scope(lab):

    lab_with_write = key_client(ApiKeyFactory(party=lab, scopes=["works:write"]).raw)

    response = lab_with_write.post("/api/v1/works", BOOK, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_a_holder"
    assert Work.objects.count() == 0


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "check digit"), ("ko", "검증 숫자")],
)
def test_import_row_errors_are_written_in_the_uploaders_language(
    holder_api, language, expected, django_capture_on_commit_callbacks
):
    import io

    upload = io.BytesIO(b"title,kind,isbn\nGood,text,9788936434021\nBroken,text,9788936434022\n")
    upload.name = "works.csv"
    with django_capture_on_commit_callbacks(execute=True):
        accepted = holder_api.post(
            "/api/v1/works/bulk", {"file": upload}, format="multipart", HTTP_ACCEPT_LANGUAGE=language
        )
    assert accepted.status_code == 202, accepted.content
    # Read back in the other language: the stored message stays the uploader's.
    other = "ko" if language == "en" else "en"
    errors = holder_api.get(f"/api/v1/imports/{accepted.json()['id']}/errors", HTTP_ACCEPT_LANGUAGE=other).json()
    (error,) = errors["results"]
    assert error["row"] == 3
    assert expected in error["message"]
