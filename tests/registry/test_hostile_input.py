"""Hostile input through the API: bulk-import bombs and NUL characters, deeply nested JSON, NUL characters in
JSON bodies, and dates outside the range the registry accepts.

Each refusal is a 4xx with its code and the field or line, and nothing is written: no import, no work, no
claim, no refusal, no stored file.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
import pytest
from openpyxl import Workbook
from rest_framework.test import APIClient

from optout.models import KindRegime, Refusal, RefusalEvent, RefusalEventKind
from registry.imports import work_import_process
from registry.models import ImportStatus, OwnershipClaim, Work, WorkImport, WorkImportRowError

pytestmark = pytest.mark.django_db

BULK = "/api/v1/works/bulk"
HEADER = b"title,kind,identifiers\n"
BOOK_ISBN = "9788936434021"

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert "error" in body, body
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return {"status": response.status_code, **error}


def assert_no_import(media_root: Any) -> None:
    assert not WorkImport.objects.exists()
    assert not Work.objects.exists()
    assert not [path for path in Path(media_root).rglob("*") if path.is_file()]


def streamed(pieces: Iterator[bytes]) -> io.BytesIO:
    out = io.BytesIO()
    for piece in pieces:
        out.write(piece)
    out.seek(0)
    return out


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    while total > 0:
        yield chunk[:total]
        total -= len(chunk)


@pytest.fixture
def bulk(holder_api: APIClient, django_capture_on_commit_callbacks: Capture) -> Callable[..., Any]:
    def _bulk(content: bytes | io.BytesIO, name: str) -> Any:
        file = content if isinstance(content, io.BytesIO) else io.BytesIO(content)
        file.name = name
        with django_capture_on_commit_callbacks(execute=True):
            return holder_api.post(BULK, {"file": file}, format="multipart")

    return _bulk


# --- Bulk imports ---------------------------------------------------------------------------------


def test_an_import_of_one_endless_line_is_refused_at_its_line(bulk, settings):
    settings.WORK_IMPORT_MAX_LINE_BYTES = 1024
    content = streamed(iter([HEADER, b"Endless,text,isbn:", *repeated(b"9" * 65536, 8 * 1024 * 1024)]))

    error = error_of(bulk(content, "works.csv"))

    assert (error["status"], error["code"], error["field"], error["line"]) == (400, "line_too_long", "file", 2)
    assert_no_import(settings.MEDIA_ROOT)


def test_a_json_lines_import_of_one_endless_line_is_refused_at_its_line(bulk, settings):
    settings.WORK_IMPORT_MAX_LINE_BYTES = 1024
    first = orjson.dumps({"title": "A", "kind": "text", "identifiers": f"isbn:{BOOK_ISBN}"}) + b"\n"
    content = streamed(iter([first, b'{"title": "', *repeated(b"x" * 65536, 4 * 1024 * 1024)]))

    error = error_of(bulk(content, "works.jsonl"))

    assert (error["status"], error["code"], error["line"]) == (400, "line_too_long", 2)
    assert_no_import(settings.MEDIA_ROOT)


def test_an_import_of_blank_lines_is_refused_because_blank_lines_count(bulk, settings):
    settings.WORK_IMPORT_MAX_ROWS = 100
    content = HEADER + f"Book,text,isbn:{BOOK_ISBN}\n".encode() + b"\n" * 100

    error = error_of(bulk(content, "works.csv"))

    assert (error["status"], error["code"], error["field"]) == (413, "too_many_lines", "file")
    assert_no_import(settings.MEDIA_ROOT)


def test_an_import_over_the_byte_limit_is_refused_before_it_is_read(bulk, settings):
    settings.WORK_IMPORT_MAX_UPLOAD_BYTES = 2048
    content = HEADER + b"".join(f"Book {n},text,isbn:{BOOK_ISBN}\n".encode() for n in range(200))

    error = error_of(bulk(content, "works.csv"))

    assert (error["status"], error["code"], error["field"]) == (413, "file_too_large", "file")
    assert_no_import(settings.MEDIA_ROOT)


def test_a_workbook_inflating_past_the_limit_is_refused(bulk, settings):
    settings.WORK_IMPORT_MAX_INFLATED_BYTES = 64 * 1024
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["title", "kind", "identifiers"])
    sheet.append(["x" * 32000, "text", f"isbn:{BOOK_ISBN}"])
    for n in range(3):
        sheet.append([f"Book {n} " + "y" * 30000, "text", ""])
    buffer = io.BytesIO()
    workbook.save(buffer)
    assert len(buffer.getvalue()) < 64 * 1024  # small as sent; large only once unzipped

    error = error_of(bulk(buffer.getvalue(), "works.xlsx"))

    assert (error["status"], error["code"], error["field"]) == (413, "inflated_too_large", "file")
    assert_no_import(settings.MEDIA_ROOT)


def test_an_import_taking_longer_than_the_inspection_deadline_is_refused(bulk, settings):
    settings.WORK_IMPORT_INSPECT_SECONDS = 0
    content = HEADER + f"Book,text,isbn:{BOOK_ISBN}\n".encode() * 3000

    error = error_of(bulk(content, "works.csv"))

    assert (error["status"], error["code"], error["field"]) == (413, "inspection_timeout", "file")
    assert_no_import(settings.MEDIA_ROOT)


@pytest.mark.parametrize(
    ("content", "name", "line"),
    [
        pytest.param(
            HEADER + b"Good,text,isbn:9788936434021\nBad\x00,text,isbn:9780306406157\n", "works.csv", 3, id="csv"
        ),
        pytest.param(
            b'{"title": "Good", "kind": "text", "identifiers": "isbn:9788936434021"}\n'
            b'{"title": "Bad\\u0000", "kind": "text", "identifiers": "isbn:9780306406157"}\n',
            "works.jsonl",
            2,
            id="jsonl",
        ),
    ],
)
def test_a_nul_character_in_an_import_is_refused_naming_the_line(bulk, settings, content, name, line):
    error = error_of(bulk(content, name))

    assert (error["status"], error["code"], error["field"], error["line"]) == (400, "nul_character", "file", line)
    assert_no_import(settings.MEDIA_ROOT)


def _stored_then_replaced(holder_api: APIClient, content: bytes) -> WorkImport:
    """An import accepted (its task not run) whose stored file is then replaced: a file stored before today's
    rules, or under a higher limit than the worker now has."""
    file = io.BytesIO(HEADER + f"Book,text,isbn:{BOOK_ISBN}\n".encode())
    file.name = "works.csv"
    assert holder_api.post(BULK, {"file": file}, format="multipart").status_code == 202
    work_import = WorkImport.objects.get()
    with work_import.file.storage.open(work_import.file.name or "", "wb") as stored:
        stored.write(content)
    return work_import


def test_the_worker_reports_a_stored_row_with_a_nul_character_against_its_row(holder_api):
    content = HEADER + f"Good,text,isbn:{BOOK_ISBN}\nBad\x00,text,isbn:9780306406157\n".encode()
    work_import = _stored_then_replaced(holder_api, content)

    work_import_process(import_id=work_import.pk)

    work_import.refresh_from_db()
    assert work_import.status == ImportStatus.PROCESSED
    assert list(WorkImportRowError.objects.values_list("row", "field", "code")) == [(3, "title", "nul_character")]
    assert list(Work.objects.values_list("title", flat=True)) == ["Good"]


def test_the_worker_fails_a_stored_import_with_an_overlong_line_instead_of_reading_it(holder_api, settings):
    content = HEADER + b"Endless,text,isbn:" + b"9" * (2 * 1024 * 1024) + b"\n"
    work_import = _stored_then_replaced(holder_api, content)
    settings.WORK_IMPORT_MAX_LINE_BYTES = 1024

    work_import_process(import_id=work_import.pk)

    work_import.refresh_from_db()
    assert work_import.status == ImportStatus.FAILED
    assert "1024" in work_import.failure_reason
    assert not Work.objects.exists()


# --- Deeply nested JSON ---------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
@pytest.mark.parametrize(
    ("client_name", "path"),
    [
        ("holder_api", "/api/v1/works"),
        ("holder_api", "/api/v1/claims"),
        ("anonymous", "/api/v1/receipts/verify"),
        ("lab_api", "/api/v1/lookup"),
    ],
)
def test_json_nested_100000_deep_is_a_400(request, client_name, path, body):
    client = APIClient() if client_name == "anonymous" else request.getfixturevalue(client_name)

    error = error_of(client.post(path, body, content_type="application/json"))

    assert (error["status"], error["code"]) == (400, "json_too_deep")
    assert not Work.objects.exists()
    assert not OwnershipClaim.objects.exists()


def test_json_nested_just_past_the_setting_is_a_400_and_within_it_is_read(holder_api, settings):
    settings.API_JSON_MAX_DEPTH = 4
    within = {"title": "Book", "kind": "text", "identifiers": [{"scheme": "isbn", "value": BOOK_ISBN}]}  # depth 3
    too_deep = {**within, "creators": [{"name": [["x"]]}]}  # depth 5

    refused = error_of(holder_api.post("/api/v1/works", too_deep, format="json"))
    accepted = holder_api.post("/api/v1/works", within, format="json")

    assert (refused["status"], refused["code"]) == (400, "json_too_deep")
    assert accepted.status_code == 201, accepted.content


# --- NUL characters in JSON bodies ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_name", "path", "body", "field"),
    [
        ("holder_api", "/api/v1/works", {"title": "Bo\x00ok", "kind": "text"}, "title"),
        (
            "holder_api",
            "/api/v1/works",
            {"title": "Book", "kind": "text", "identifiers": [{"scheme": "isbn", "value": "978\x008936434021"}]},
            "identifiers[0].value",
        ),
        ("holder_api", "/api/v1/works", {"title": "Book", "kind": "text", "creators": ["Han\x00 Kang"]}, "creators[0]"),
        ("holder_api", "/api/v1/domains", {"origin": "https://press.example\x00", "method": "file"}, "origin"),
        ("holder_api", "/api/v1/api-keys", {"name": "ci\x00", "scopes": ["lookup"]}, "name"),
        ("lab_api", "/api/v1/lookup", {"items": [{"scheme": "isbn", "value": "978\x008936434021"}]}, "items[0].value"),
    ],
)
def test_a_nul_character_in_a_json_body_is_a_400_naming_the_field(request, client_name, path, body, field):
    client = request.getfixturevalue(client_name)

    error = error_of(client.post(path, body, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "nul_character", field)
    assert not Work.objects.exists()


# --- Dates out of range ---------------------------------------------------------------------------

OUT_OF_RANGE = ["0001-01-01", "0555-06-15", "9999-12-31"]
OUT_OF_RANGE_INSTANTS = [
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+09:00",
    "0555-06-15T12:00:00",
    "9999-12-31T23:59:59-09:00",
]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_work_valid_from_out_of_range_is_a_400(holder_api, value):
    body = {"title": "Book", "kind": "text", "valid_from": value}

    error = error_of(holder_api.post("/api/v1/works", body, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "valid_from")
    assert not Work.objects.exists()


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_a_claim_valid_from_out_of_range_is_a_400(holder_api, other_holder_api, value):
    body = {"title": "Book", "kind": "text", "identifiers": [{"scheme": "isbn", "value": BOOK_ISBN}]}
    work = other_holder_api.post("/api/v1/works", body, format="json").json()

    error = error_of(holder_api.post("/api/v1/claims", {"work": work["id"], "valid_from": value}, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "valid_from")
    assert OwnershipClaim.objects.count() == 1


@pytest.mark.parametrize("value", OUT_OF_RANGE_INSTANTS)
def test_a_refusal_effective_out_of_range_is_a_400(holder_api, value):
    body = {"scope": "catalogue", "purposes": ["train-genai"], "effective_from": value}

    error = error_of(holder_api.post("/api/v1/refusals", body, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "effective_from")
    assert not Refusal.objects.exists()


@pytest.mark.parametrize("value", OUT_OF_RANGE_INSTANTS)
def test_a_withdrawal_out_of_range_is_a_400(holder_api, value):
    refusal = holder_api.post("/api/v1/refusals", {"scope": "catalogue", "purposes": ["train-genai"]}, format="json")
    assert refusal.status_code == 201, refusal.content

    response = holder_api.post(
        f"/api/v1/refusals/{refusal.json()['id']}/withdraw", {"effective_at": value}, format="json"
    )

    error = error_of(response)
    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "effective_at")
    assert not RefusalEvent.objects.filter(kind=RefusalEventKind.WITHDRAWN).exists()


@pytest.mark.parametrize("value", OUT_OF_RANGE_INSTANTS)
def test_staff_date_inputs_out_of_range_are_400s(staff_api, value):
    regime = staff_api.post(
        "/api/v1/regimes", {"kind": "text", "regime": "license_required", "effective_from": value}, format="json"
    )
    tariff = staff_api.post(
        "/api/v1/tariffs", {"kind": "text", "unit": "token", "rate_krw": "1", "effective_from": value}, format="json"
    )

    for response in (regime, tariff):
        error = error_of(response)
        assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "effective_from")
    assert not KindRegime.objects.exists()


@pytest.mark.parametrize("value", OUT_OF_RANGE_INSTANTS)
def test_a_lookup_as_of_out_of_range_is_a_400(lab_api, value):
    batch = lab_api.post(
        "/api/v1/lookup", {"items": [{"scheme": "isbn", "value": BOOK_ISBN}], "as_of": value}, format="json"
    )
    single = lab_api.get("/api/v1/lookup", {"scheme": "isbn", "value": BOOK_ISBN, "as_of": value})

    for response in (batch, single):
        error = error_of(response)
        assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "as_of")


def test_a_nul_character_in_a_form_field_is_a_400_naming_the_field(holder_api):
    body = {"title": "Bo\x00ok", "kind": "text", "identifiers": f"isbn:{BOOK_ISBN}"}

    error = error_of(holder_api.post("/api/v1/works", body, format="multipart"))

    assert (error["status"], error["code"], error["field"]) == (400, "nul_character", "title")
    assert not Work.objects.exists()


def test_a_nul_character_in_a_query_parameter_is_a_400_naming_it(lab_api):
    error = error_of(lab_api.get("/api/v1/lookup", {"scheme": "isbn", "value": "978\x008936434021"}))

    assert (error["status"], error["code"], error["field"]) == (400, "nul_character", "value")
