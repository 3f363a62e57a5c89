"""Usage manifests through the API: validation, permissions, formats, every outcome, re-pricing, reports.

Each test drives the HTTP API (or, where the API has no handle, the service the API calls) and then reads
the database and the ledger, so it fails if the behaviour it names breaks.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from compensation.models import AccountKind, LedgerEntry, ManifestLine, Outcome, Tariff, UsageManifest
from compensation.usage import services as usage_module
from compensation.usage.selectors import OUTCOME_COLUMNS
from compensation.usage.services import usage_manifest_process, usage_reprice
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.errors import InvalidInput
from optout.models import KindRegime
from optout.services import regime_set
from registry.models import AuditEvent, WorkStatus
from registry.services import claim_accept_for_review, domain_add, domain_check
from tests.compensation.helpers import (
    BOOK,
    COLUMNS,
    MANIFESTS,
    OTHER_BOOK,
    ago,
    assert_conserved,
    assert_nothing_created,
    balance,
    csv_bytes,
    line,
    manifest,
)
from tests.factories import ApiKeyFactory, ClaimFactory, LabFactory, UserFactory, WorkFactory, verify_claims
from tests.helpers import key_client, streamed

pytestmark = pytest.mark.django_db

SONG = "KRA401900001"
OTHER_SONG = "KRA401900002"
# A rate of 0.0005 KRW per token: 1,000 tokens are 0.5 won, 500,000 micro-won.
# Anything identified by URL is priced as "other" per item.
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


# --- Helpers --------------------------------------------------------------------------------------


def jsonl_bytes(objects: list[Any]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in objects)


def error_of(response: Any) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    assert error["message"], error
    return response.status_code, error["code"], error.get("field")


def rows_of(manifest_pk: int) -> dict[int, ManifestLine]:
    return {
        row.line_no: row for row in ManifestLine.objects.filter(manifest_id=manifest_pk).select_related("held_account")
    }


def acknowledgement(client: APIClient, manifest_pk: int) -> list[dict[str, Any]]:
    response = client.get(f"{MANIFESTS}/{manifest_pk}/outcomes?format=jsonl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    return [orjson.loads(raw) for raw in streamed(response).splitlines()]


# --- Fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def send(lab_api: APIClient, django_capture_on_commit_callbacks: Capture) -> Callable[..., Any]:
    """POST a JSON manifest and run what it queued on commit (the Celery task, eagerly)."""

    def _send(body: dict[str, Any], *, client: APIClient | None = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return (client or lab_api).post(MANIFESTS, body, format="json")

    return _send


@pytest.fixture
def upload(lab_api: APIClient, django_capture_on_commit_callbacks: Capture) -> Callable[..., Any]:
    """POST a manifest file (multipart) and run what it queued on commit."""

    def _upload(content: bytes, name: str, *, client: APIClient | None = None, **fields: str) -> Any:
        file = io.BytesIO(content)
        file.name = name
        data = {"manifest_id": "file-1", "model": "hangul-7b", **fields, "file": file}
        with django_capture_on_commit_callbacks(execute=True):
            return (client or lab_api).post(MANIFESTS, data, format="multipart")

    return _upload


@pytest.fixture
def other_lab_api(db: Any) -> APIClient:
    other_lab = LabFactory(name="Busan Models", owner=UserFactory(username="ml@busan.example"))
    return key_client(ApiKeyFactory(party=other_lab, scopes=["lookup", "usage:write"]).raw)


@pytest.fixture
def news_domain(holder: Any) -> Any:
    """https://news.example.kr, proved by the holder's DNS TXT record."""
    domain = domain_add(actor=Actor(party=holder), holder=holder, origin="https://news.example.kr", method="dns")
    return domain_check(
        actor=Actor(party=holder), domain=domain, resolver=lambda name: [f"optout-registry-verification={domain.token}"]
    )


def refuse(client: APIClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/refusals", {"purposes": ["train-ai"], **body}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


# --- Validation: a clear 4xx naming the field, and nothing created -----------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        pytest.param({"manifest_id": None}, 400, "required", "manifest_id", id="no-manifest-id"),
        pytest.param({"manifest_id": "   "}, 400, "required", "manifest_id", id="blank-manifest-id"),
        pytest.param({"manifest_id": 17}, 400, "invalid", "manifest_id", id="manifest-id-not-text"),
        pytest.param({"manifest_id": "r" * 201}, 400, "too_long", "manifest_id", id="manifest-id-too-long"),
        pytest.param({"model": None}, 400, "required", "model", id="no-model"),
        pytest.param({"purpose": "train-everything"}, 400, "invalid_purpose", "purpose", id="bad-purpose"),
        pytest.param(
            {"period_start": "2026-03-01T00:00:00+09:00", "period_end": "2026-02-01T00:00:00+09:00"},
            400,
            "invalid_period",
            "period_end",
            id="period-ends-before-it-starts",
        ),
        pytest.param({"period_start": "last tuesday"}, 400, "invalid_datetime", "period_start", id="bad-start"),
        pytest.param({"period_end": "2026-02-30T00:00:00"}, 400, "invalid_datetime", "period_end", id="bad-end"),
        pytest.param({"period_end": 1767225600}, 400, "invalid_datetime", "period_end", id="end-as-number"),
        pytest.param({"lines": None}, 400, "required", "lines", id="no-lines"),
        pytest.param({"lines": {"scheme": "isbn"}}, 400, "required", "lines", id="lines-not-a-list"),
        pytest.param({"lines": "isbn,9780306406157"}, 400, "required", "lines", id="lines-as-text"),
        pytest.param({"lines": []}, 400, "required", "lines", id="lines-empty"),
        pytest.param(
            {"lines": [{"scheme": "isbn", "value": OTHER_BOOK}, "isbn,9780306406157,1,token,2026-01-01"]},
            400,
            "not_an_object",
            "lines[1]",
            id="element-not-an-object",
        ),
    ],
)
def test_an_invalid_json_manifest_is_refused_naming_the_field_and_creates_nothing(
    send, settings, overrides, status, code, field
):
    response = send(manifest([line()], **overrides))

    assert error_of(response) == (status, code, field)
    assert_nothing_created(settings.MEDIA_ROOT)


def test_a_json_manifest_over_the_line_limit_is_413_and_at_the_limit_is_accepted(send, settings, tariffs):
    settings.USAGE_MANIFEST_MAX_JSON_LINES = 3
    lines = [line(units=n) for n in range(1, 5)]

    too_many = send(manifest(lines))

    assert error_of(too_many) == (413, "too_many_lines", "lines")
    assert_nothing_created(settings.MEDIA_ROOT)

    at_limit = send(manifest(lines[:3]))

    assert at_limit.status_code == 202, at_limit.content
    assert at_limit.json()["lines_total"] == 3


def test_a_file_over_the_line_limit_is_413_and_blank_lines_count(upload, settings, tariffs):
    settings.USAGE_MANIFEST_MAX_LINES = 2
    rows = [["isbn", OTHER_BOOK, n, "token", ago(days=1)] for n in (1, 2, 3)]

    too_many = upload(csv_bytes(rows), "run.csv")
    too_many_gzipped = upload(gzip.compress(csv_bytes(rows)), "run.csv.gz")

    assert error_of(too_many) == (413, "too_many_lines", "file")
    assert error_of(too_many_gzipped) == (413, "too_many_lines", "file")
    assert_nothing_created(settings.MEDIA_ROOT)

    # Every line counts toward the limit, blank ones too: a file of blank lines is no cheaper to read.
    two_with_blanks = csv_bytes(rows[:2]) + b"\r\n\r\n"
    assert error_of(upload(two_with_blanks, "run.csv")) == (413, "too_many_lines", "file")
    assert_nothing_created(settings.MEDIA_ROOT)

    accepted = upload(csv_bytes(rows[:1]) + b"\r\n", "run.csv")

    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["lines_total"] == 1


@pytest.mark.parametrize(
    ("content", "name", "fields", "code", "field"),
    [
        pytest.param(
            b"scheme,value,units,unit\r\nisbn,9780306406157,1,token\r\n",
            "run.csv",
            {},
            "invalid_header",
            "file",
            id="csv-header-lacks-used_at",
        ),
        pytest.param(
            b"isbn,9780306406157,1,token,2026-01-01\r\n", "run.csv", {}, "invalid_header", "file", id="no-header"
        ),
        pytest.param(b"whatever", "run.xlsx", {}, "invalid_format", "file", id="unknown-extension"),
        pytest.param(b"whatever", "run", {}, "invalid_format", "file", id="no-extension"),
        pytest.param(b"{}", "run.jsonl", {"format": "xml"}, "invalid_format", "format", id="unknown-format"),
        pytest.param(b"", "run.csv", {}, "empty_file", "file", id="empty-csv"),
        pytest.param(b"", "run.jsonl", {}, "empty_manifest", "file", id="empty-jsonl"),
        pytest.param(
            b"scheme,value,units,unit,used_at\r\n\r\n", "run.csv", {}, "empty_manifest", "file", id="header-only"
        ),
        pytest.param(b"\n  \n\n", "run.jsonl", {}, "empty_manifest", "file", id="jsonl-blank-lines-only"),
        pytest.param(b"\x1f\x8bnot gzip at all", "run.jsonl.gz", {}, "unreadable_file", "file", id="corrupt-gzip"),
        pytest.param(b'{"scheme": "isbn"}\n', "run.jsonl", {"model": ""}, "required", "model", id="no-model"),
        pytest.param(
            b'{"scheme": "isbn"}\n', "run.jsonl", {"purpose": "x"}, "invalid_purpose", "purpose", id="purpose"
        ),
    ],
)
def test_an_invalid_upload_is_refused_naming_the_field_and_creates_nothing(
    upload, settings, content, name, fields, code, field
):
    response = upload(content, name, **fields)

    assert error_of(response) == (400, code, field)
    assert_nothing_created(settings.MEDIA_ROOT)


def test_a_multipart_request_without_a_file_is_refused(lab_api, settings):
    response = lab_api.post(MANIFESTS, {"manifest_id": "run-1", "model": "m"}, format="multipart")

    assert error_of(response) == (400, "required", "file")
    assert_nothing_created(settings.MEDIA_ROOT)


# --- Permissions ----------------------------------------------------------------------------------------


def test_a_rights_holders_key_is_not_a_labs_even_with_the_usage_scope(holder, staff_api, settings):
    holder_with_usage_scope = key_client(ApiKeyFactory(party=holder, scopes=["usage:write", "works:write"]).raw)

    response = holder_with_usage_scope.post(MANIFESTS, manifest([line()]), format="json")
    from_staff = staff_api.post(MANIFESTS, manifest([line()]), format="json")

    assert error_of(response) == (403, "not_a_lab", None)
    assert error_of(from_staff) == (403, "not_a_lab", None)
    assert_nothing_created(settings.MEDIA_ROOT)


def test_a_lab_key_without_the_usage_scope_cannot_submit(lab, settings):
    lookup_only = key_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw)
    file = io.BytesIO(csv_bytes([["isbn", OTHER_BOOK, 1, "token", ago(days=1)]]))
    file.name = "run.csv"

    as_json = lookup_only.post(MANIFESTS, manifest([line()]), format="json")
    as_file = lookup_only.post(MANIFESTS, {"manifest_id": "f", "model": "m", "file": file}, format="multipart")

    assert error_of(as_json) == (403, "missing_scope", None)
    assert error_of(as_file) == (403, "missing_scope", None)
    assert_nothing_created(settings.MEDIA_ROOT)


def test_anonymous_callers_are_refused(send, settings, tariffs):
    anonymous = APIClient()
    created = send(manifest([line()]))
    assert created.status_code == 202
    url = created.json()["url"]

    assert anonymous.post(MANIFESTS, manifest([line()], manifest_id="run-2"), format="json").status_code == 401
    assert anonymous.get(MANIFESTS).status_code == 401
    assert anonymous.get(url).status_code == 401
    assert anonymous.get(url + "/outcomes?format=jsonl").status_code == 401
    assert UsageManifest.objects.count() == 1


def test_another_lab_and_a_holder_cannot_read_a_manifest_but_staff_can(
    send, lab, tariffs, other_lab_api, holder_api, staff_api
):
    created = send(manifest([line()])).json()
    url = created["url"]

    for outsider in (other_lab_api, holder_api):
        assert error_of(outsider.get(url)) == (404, "not_found", None)
        assert outsider.get(url + "/outcomes?format=jsonl").status_code == 404
        assert outsider.get(MANIFESTS).json()["count"] == 0

    staff_detail = staff_api.get(url)
    assert staff_detail.status_code == 200
    assert staff_detail.json()["lab"] == lab.pk
    assert [row["outcome"] for row in acknowledgement(staff_api, created["id"])] == ["unmatched_held"]
    assert [m["id"] for m in staff_api.get(MANIFESTS).json()["results"]] == [created["id"]]


@pytest.mark.parametrize("format", ["csv", "jsonl"])
def test_an_error_on_the_acknowledgement_file_is_still_a_json_error(send, tariffs, other_lab_api, format):
    created = send(manifest([line()])).json()
    url = f"{created['outcomes_url']}?format={format}"

    not_theirs = other_lab_api.get(url)
    anonymous = APIClient().get(url)

    assert not_theirs["Content-Type"] == anonymous["Content-Type"] == "application/json"
    assert error_of(not_theirs) == (404, "not_found", None)
    assert error_of(anonymous) == (401, "not_authenticated", None)


def test_manifest_ids_are_per_lab(send, tariffs, other_lab_api):
    ours = send(manifest([line()]))
    theirs = send(manifest([line(units=5)]), client=other_lab_api)

    assert ours.status_code == theirs.status_code == 202
    assert ours.json()["id"] != theirs.json()["id"]
    assert UsageManifest.objects.filter(manifest_id="run-1").count() == 2


# --- Lines: each gets an outcome; an unreadable one is invalid with its reason, the rest go on -----------


def test_unreadable_jsonl_lines_are_invalid_with_reasons_and_file_line_numbers(upload, lab_api, tariffs):
    period_start = timezone.now() - timedelta(days=10)
    objects: list[Any] = [
        line(),  # 1
        None,  # 2: blank, skipped but counted
        b'{"scheme": "isbn", "value": ',  # 3
        [1, 2, 3],  # 4
        line(scheme="ean"),  # 5
        line("9788936434022"),  # 6: wrong check digit
        line(units="lots"),  # 7
        line(units=-5),  # 8
        line(units=0),  # 9
        line(unit="page"),  # 10
        line(used_at="yesterday"),  # 11
        line(used_at=(timezone.now() + timedelta(days=1)).isoformat()),  # 12
        line(used_at=(period_start - timedelta(days=1)).isoformat()),  # 13
        line(units=2000),  # 14: a good line after the bad ones
        line(used_at=12345),  # 15
        line(units="0.0000001"),  # 16: finer than a micro-unit
    ]
    raw = b"".join(
        b"\n" if item is None else (item + b"\n" if isinstance(item, bytes) else orjson.dumps(item) + b"\n")
        for item in objects
    )

    response = upload(raw, "run.jsonl", period_start=period_start.isoformat(), period_end=timezone.now().isoformat())

    assert response.status_code == 202, response.content
    assert response.json()["lines_total"] == 15
    acknowledged = {row["line"]: row for row in acknowledgement(lab_api, response.json()["id"])}
    reasons = {number: (row["outcome"], row["reason_code"]) for number, row in acknowledged.items()}
    assert reasons == {
        1: ("unmatched_held", ""),
        3: ("invalid", "bad_json"),
        4: ("invalid", "not_an_object"),
        5: ("invalid", "unknown_scheme"),
        6: ("invalid", "invalid_checksum"),
        7: ("invalid", "invalid_units"),
        8: ("invalid", "negative_units"),
        9: ("invalid", "invalid_units"),
        10: ("invalid", "unknown_unit"),
        11: ("invalid", "invalid_used_at"),
        12: ("invalid", "used_at_in_future"),
        13: ("invalid", "used_at_outside_period"),
        14: ("unmatched_held", ""),
        15: ("invalid", "invalid_used_at"),
        16: ("invalid", "invalid_units"),
    }
    for number, row in acknowledged.items():
        if row["outcome"] == "invalid":
            assert row["reason"], number
            assert row["amount_micro"] is None
            assert row["entry_id"] is None
    assert acknowledged[14]["amount_micro"] == 1_000_000
    assert acknowledged[6]["value"] == "9788936434022"


def test_csv_lines_are_numbered_after_the_header_and_blank_lines_keep_their_numbers(upload, lab_api, tariffs):
    used = ago(days=1)
    content = (
        "\ufeffused_at,unit,units,value,scheme\r\n"  # BOM, and the columns in another order
        f"{used},token,1000,{OTHER_BOOK},isbn\r\n"  # 1
        "\r\n"  # 2: blank
        f"{used},token,1000,{OTHER_BOOK}\r\n"  # 3: a column short
        f'{used},TOKEN,2000," 978-0-306-40615-7 ",ISBN\r\n'  # 4: spaced, hyphenated, upper case
        ",,,,\r\n"  # 5: empty cells
        f"{used},token,3000,{OTHER_BOOK},isbn,extra\r\n"  # 6: a column too many
    ).encode()

    response = upload(content, "run.csv")

    assert response.status_code == 202, response.content
    assert response.json()["format"] == "csv"
    assert response.json()["lines_total"] == 5
    acknowledged = {row["line"]: row for row in acknowledgement(lab_api, response.json()["id"])}
    assert {n: (r["outcome"], r["reason_code"]) for n, r in acknowledged.items()} == {
        1: ("unmatched_held", ""),
        3: ("invalid", "wrong_columns"),
        4: ("unmatched_held", ""),
        5: ("invalid", "unknown_scheme"),
        6: ("invalid", "wrong_columns"),
    }
    assert acknowledged[1]["scheme"] == "isbn"
    assert acknowledged[1]["key"] == acknowledged[4]["key"] == f"isbn:{OTHER_BOOK}"
    assert (acknowledged[1]["amount_micro"], acknowledged[4]["amount_micro"]) == (500_000, 1_000_000)


@pytest.mark.parametrize(
    ("name", "fields", "compress", "format"),
    [
        pytest.param("run.jsonl", {}, False, "jsonl", id="jsonl"),
        pytest.param("run.ndjson.gz", {}, True, "jsonl", id="jsonl-gzip"),
        pytest.param("run.txt", {"format": "jsonl"}, False, "jsonl", id="format-field-names-it"),
        pytest.param("run.csv", {"format": "JSONL"}, False, "jsonl", id="format-field-overrides-the-name"),
        pytest.param("export.bin", {"format": "jsonl"}, True, "jsonl", id="gzip-known-by-its-bytes"),
        pytest.param("run.jsonl", {"format": "csv"}, True, "csv", id="csv-despite-the-name"),
    ],
)
def test_json_lines_and_csv_uploads_plain_or_gzip_with_the_format_field(
    upload, lab_api, tariffs, name, fields, compress, format
):
    lines = [line(), line(units=2000), line("9788936434022")]
    table = [[item[column] for column in COLUMNS] for item in lines]
    raw = csv_bytes(table) if format == "csv" else jsonl_bytes(lines)

    response = upload(gzip.compress(raw) if compress else raw, name, **fields)

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["format"], body["compressed"], body["lines_total"]) == (format, compress, 3)
    assert lab_api.get(body["url"]).json()["status"] == "processed"
    acknowledged = acknowledgement(lab_api, body["id"])
    assert [(r["line"], r["outcome"], r["reason_code"]) for r in acknowledged] == [
        (1, "unmatched_held", ""),
        (2, "unmatched_held", ""),
        (3, "invalid", "invalid_checksum"),
    ]
    assert UsageManifest.objects.get().original_name == name


def test_a_json_lines_file_may_start_with_a_byte_order_mark(upload, lab_api, tariffs):
    response = upload(codecs.BOM_UTF8 + jsonl_bytes([line(), line(units=3)]), "run.jsonl")

    assert response.status_code == 202, response.content
    acknowledged = acknowledgement(lab_api, response.json()["id"])
    assert [(r["line"], r["outcome"], r["reason_code"]) for r in acknowledged] == [
        (1, "unmatched_held", ""),
        (2, "unmatched_held", ""),
    ]


# --- Outcomes: who is paid, what is held, what is a violation -------------------------------------------


def test_a_partly_verified_work_pays_the_verified_share_and_holds_the_rest(send, lab, lab_api, holder, staff, tariffs):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], share_bp=6000, verified_by=staff)
    claim = work.claims.get()

    response = send(manifest([line(BOOK, units=1000), line(BOOK, units=7, used_at=ago(days=2))]))

    assert response.status_code == 202, response.content
    rows = rows_of(response.json()["id"])
    assert rows[1].outcome == Outcome.MATCHED
    assert (rows[1].amount_micro, rows[1].paid_micro, rows[1].held_micro) == (500_000, 300_000, 200_000)
    assert rows[1].open_bp == 4000
    assert rows[1].held_account is not None
    assert rows[1].held_account.kind == AccountKind.ESCROW_UNCLAIMED
    assert rows[1].held_account.escrow_key == f"work:{work.pk}"
    # 7 tokens are 3,500 micro-won: 2,100 to the owner, 1,400 held.
    assert (rows[2].paid_micro, rows[2].held_micro) == (2_100, 1_400)
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == -302_100
    assert balance(AccountKind.ESCROW_UNCLAIMED, key=f"work:{work.pk}") == -201_400
    assert balance(AccountKind.LAB_RECEIVABLE, party=lab) == 503_500
    assert_conserved(lab)

    first = acknowledgement(lab_api, response.json()["id"])[0]
    assert first["work_id"] == work.pk
    assert (first["to_owners_micro"], first["held_micro"], first["held_for"]) == (300_000, 200_000, f"work:{work.pk}")
    assert first["owners"] == [
        {"holder": holder.pk, "claim": claim.pk, "amount_micro": 300_000, "entry_id": rows[1].entry_id}
    ]
    # Money is integers in every export: 300000.0 would be a float sneaking in.
    assert [type(first[name]) for name in ("amount_micro", "to_owners_micro", "held_micro")] == [int, int, int]
    assert type(first["owners"][0]["amount_micro"]) is int
    as_csv = lab_api.get(f"{MANIFESTS}/{response.json()['id']}/outcomes?format=csv")
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"].startswith("text/csv")
    assert "attachment" in as_csv["Content-Disposition"]
    reader = csv.DictReader(io.StringIO(b"".join(as_csv.streaming_content).decode()))
    assert reader.fieldnames == list(OUTCOME_COLUMNS)
    csv_rows = list(reader)
    assert csv_rows[0]["owners"] == f"{holder.pk}:300000"
    assert csv_rows[0]["outcome"] == "matched"


def test_a_registered_work_nobody_has_verified_is_held_as_an_unclaimed_share(send, lab, holder, tariffs):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])  # the claim stays pending

    response = send(manifest([line(BOOK)]))

    row = rows_of(response.json()["id"])[1]
    assert row.outcome == Outcome.SHARE_UNCLAIMED
    assert row.work_id == work.pk
    assert (row.amount_micro, row.paid_micro, row.held_micro, row.open_bp) == (500_000, 0, 500_000, 10_000)
    assert row.held_account is not None
    assert (row.held_account.kind, row.held_account.escrow_key) == (AccountKind.ESCROW_UNCLAIMED, f"work:{work.pk}")
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == 0
    assert_conserved(lab)


def test_a_work_claimed_beyond_100_percent_is_disputed_and_held(send, lab, holder, other_holder, staff, tariffs):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    rival = ClaimFactory(work=work, holder=other_holder, share_bp=5000)
    # The overclaim disputes the work once staff accept it for review (filed, it changes nothing).
    claim_accept_for_review(actor=Actor(user=staff), claim=rival)
    work.refresh_from_db()
    assert work.status == WorkStatus.DISPUTED

    response = send(manifest([line(BOOK)]))

    row = rows_of(response.json()["id"])[1]
    assert row.outcome == Outcome.DISPUTED_HELD
    assert (row.paid_micro, row.held_micro) == (0, 500_000)
    assert row.held_account is not None
    assert (row.held_account.kind, row.held_account.escrow_key) == (AccountKind.ESCROW_DISPUTED, f"work:{work.pk}")
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == 0
    assert balance(AccountKind.HOLDER_PAYABLE, party=other_holder) == 0
    assert_conserved(lab)


def test_a_kind_under_licensing_is_license_required_from_when_the_regime_starts(send, lab, holder, staff, tariffs):
    song = WorkFactory(holder=holder, identifiers=[("isrc", SONG)], kind="audio", verified_by=staff)
    tariff_set(
        actor=Actor(user=staff),
        kind="audio",
        unit="second",
        rate_krw=Decimal("0.01"),
        effective_from=timezone.now() - timedelta(days=400),
    )
    starts = timezone.now() - timedelta(days=30)
    # Staff cannot set a regime in the past (history cannot be rewritten), so the row is written directly.
    with pytest.raises(InvalidInput):
        regime_set(actor=Actor(user=staff), kind="audio", regime="license_required", effective_from=starts)
    KindRegime.objects.create(kind="audio", regime="license_required", effective_from=starts)

    response = send(
        manifest(
            [
                line(SONG, scheme="isrc", units=100, unit="second"),  # under licensing
                line(SONG, scheme="isrc", units=100, unit="second", used_at=ago(days=60)),  # before it
                line(OTHER_SONG, scheme="isrc", units=100, unit="second"),  # no work: use-first, held
            ]
        )
    )

    rows = rows_of(response.json()["id"])
    assert rows[1].outcome == Outcome.LICENSE_REQUIRED
    assert (rows[1].amount_micro, rows[1].tariff_id, rows[1].entry_id) == (None, None, None)
    assert rows[1].work_id == song.pk
    assert rows[2].outcome == Outcome.MATCHED
    assert rows[2].paid_micro == 1_000_000
    assert rows[3].outcome == Outcome.UNMATCHED_HELD
    assert_conserved(lab)


def test_a_use_without_a_tariff_is_unpriced_and_posts_nothing(send, lab_api, holder, staff, tariffs):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)

    response = send(manifest([line(BOOK, units=30, unit="second")]))

    assert response.status_code == 202
    row = rows_of(response.json()["id"])[1]
    assert row.outcome == Outcome.UNPRICED
    assert (row.work_id, row.kind, row.unit) == (work.pk, "text", "second")
    assert (row.amount_micro, row.tariff_id, row.entry_id, row.paid_micro) == (None, None, None, 0)
    assert not LedgerEntry.objects.exists()
    summary = lab_api.get(response.json()["url"]).json()["summary"]
    assert summary["outcomes"]["unpriced"] == {"lines": 1, "amount_micro": 0}
    assert summary["totals"]["amount_micro"] == 0


def test_a_url_under_a_refused_prefix_on_a_verified_domain_is_a_violation(
    send, lab, lab_api, holder, holder_api, news_domain, tariffs
):
    refusal = refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/2026/")
    now = timezone.now().isoformat()  # after the refusal took effect, before the manifest is received
    column = "https://news.example.kr/2026/opinion/column-1"

    response = send(
        manifest(
            [
                # The lines say their kind: a URL without one is priced as text, which has no item tariff here.
                line(column, scheme="url", units=2, unit="item", used_at=now, kind="other"),
                line(column, scheme="url", units=2, unit="item", used_at=ago(days=1), kind="other"),  # before it
                line("https://news.example.kr/sports/1", scheme="url", units=1, unit="item", used_at=now, kind="other"),
            ]
        )
    )

    acknowledged = acknowledgement(lab_api, response.json()["id"])
    assert [row["outcome"] for row in acknowledged] == ["refused_at_use", "unmatched_held", "unmatched_held"]
    violation = acknowledged[0]
    assert violation["refusal_id"] == refusal["id"]
    assert (violation["amount_micro"], violation["violation_micro"], violation["to_owners_micro"]) == (
        6_000_000,
        6_000_000,
        0,
    )
    assert violation["held_for"] is None
    assert violation["kind"] == "other"
    assert acknowledged[1]["held_for"] == f"url:{column}"
    assert acknowledged[1]["refusal_id"] is None
    assert balance(AccountKind.VIOLATIONS, party=lab) == -6_000_000
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == 0
    assert_conserved(lab)


def test_a_refusal_for_generative_training_only_does_not_refuse_a_train_ai_manifest(
    send, lab, holder, holder_api, staff, tariffs
):
    genai_only = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)])
    any_ai = WorkFactory(holder=holder, identifiers=[("isbn", OTHER_BOOK)])
    verify_claims(genai_only, staff)
    verify_claims(any_ai, staff)
    genai_refusal = refuse(holder_api, scope="work", work=genai_only.pk, purposes=["train-genai"])
    ai_refusal = refuse(holder_api, scope="work", work=any_ai.pk, purposes=["train-ai"])
    now = timezone.now().isoformat()
    lines = [line(BOOK, used_at=now), line(OTHER_BOOK, used_at=now)]

    train_ai = send(manifest(lines, manifest_id="classifier", purpose="train-ai"))
    train_genai = send(manifest(lines, manifest_id="generator", purpose="train-genai"))
    default_purpose = send(manifest(lines, manifest_id="unspecified"))

    assert train_ai.json()["purpose"] == "train-ai"
    assert default_purpose.json()["purpose"] == "train-genai"
    for response, expected in [
        (train_ai, [("matched", None), ("refused_at_use", ai_refusal["id"])]),
        (train_genai, [("refused_at_use", genai_refusal["id"]), ("refused_at_use", ai_refusal["id"])]),
        (default_purpose, [("refused_at_use", genai_refusal["id"]), ("refused_at_use", ai_refusal["id"])]),
    ]:
        rows = rows_of(response.json()["id"])
        assert [(rows[n].outcome, rows[n].refusal_id) for n in (1, 2)] == expected
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == -500_000
    assert_conserved(lab)


# --- Re-pricing ------------------------------------------------------------------------------------------


def test_unpriced_uses_are_priced_when_staff_backdate_the_first_tariff(
    send, lab, lab_api, holder, holder_api, staff, staff_api, tariffs, django_capture_on_commit_callbacks
):
    song = WorkFactory(holder=holder, identifiers=[("isrc", SONG)], kind="audio", verified_by=staff)
    refuse(holder_api, scope="work", work=song.pk)
    now = timezone.now().isoformat()
    response = send(
        manifest(
            [
                line(SONG, scheme="isrc", units=10, unit="second", used_at=ago(days=5)),  # 1: before the refusal
                line(OTHER_SONG, scheme="isrc", units=20, unit="second", used_at=ago(days=5)),  # 2: no work
                line(SONG, scheme="isrc", units=10, unit="second", used_at=ago(days=60)),  # 3: before any tariff
                line(OTHER_BOOK),  # 4: priced at once
                line(SONG, scheme="isrc", units=4, unit="second", used_at=now),  # 5: refused, price unknown
            ]
        )
    )
    url = response.json()["url"]
    rows = rows_of(response.json()["id"])
    assert [rows[n].outcome for n in range(1, 6)] == [
        "unpriced",
        "unpriced",
        "unpriced",
        "unmatched_held",
        "refused_at_use",
    ]
    assert rows[5].amount_micro is None
    assert LedgerEntry.objects.count() == 1
    assert_conserved(lab)

    with django_capture_on_commit_callbacks(execute=True):
        first_tariff = staff_api.post(
            "/api/v1/tariffs",
            {"kind": "audio", "unit": "second", "rate_krw": "0.5", "effective_from": ago(days=30)},
            format="json",
        )

    assert first_tariff.status_code == 201, first_tariff.content
    rows = rows_of(response.json()["id"])
    assert [rows[n].outcome for n in range(1, 6)] == [
        "matched",
        "unmatched_held",
        "unpriced",
        "unmatched_held",
        "refused_at_use",
    ]
    assert rows[1].tariff_id == rows[2].tariff_id == rows[5].tariff_id == first_tariff.json()["id"]
    assert (rows[1].amount_micro, rows[1].paid_micro) == (5_000_000, 5_000_000)
    assert rows[2].held_account is not None
    assert (rows[2].amount_micro, rows[2].held_account.escrow_key) == (10_000_000, f"isrc:{OTHER_SONG}")
    assert (rows[5].amount_micro, rows[5].violation_micro) == (2_000_000, 2_000_000)
    assert rows[3].amount_micro is None
    assert LedgerEntry.objects.count() == 2
    assert balance(AccountKind.HOLDER_PAYABLE, party=holder) == -5_000_000
    assert balance(AccountKind.VIOLATIONS, party=lab) == -2_000_000
    assert_conserved(lab)
    summary = lab_api.get(url).json()["summary"]
    assert summary["outcomes"]["matched"] == {"lines": 1, "amount_micro": 5_000_000}
    assert summary["outcomes"]["unmatched_held"] == {"lines": 2, "amount_micro": 10_500_000}
    assert summary["outcomes"]["unpriced"] == {"lines": 1, "amount_micro": 0}
    assert summary["totals"]["amount_micro"] == balance(AccountKind.LAB_RECEIVABLE, party=lab) == 17_500_000

    # A tariff in force already: starting another in the past would rewrite priced history.
    with django_capture_on_commit_callbacks(execute=True):
        rewrite = staff_api.post(
            "/api/v1/tariffs",
            {"kind": "audio", "unit": "second", "rate_krw": "9", "effective_from": ago(days=10)},
            format="json",
        )

    assert error_of(rewrite) == (400, "in_the_past", "effective_from")
    assert Tariff.objects.filter(kind="audio").count() == 1
    assert LedgerEntry.objects.count() == 2

    # Before the first one is still a gap: the oldest use is priced at that older rate.
    with django_capture_on_commit_callbacks(execute=True):
        older = staff_api.post(
            "/api/v1/tariffs",
            {"kind": "audio", "unit": "second", "rate_krw": "0.1", "effective_from": ago(days=90)},
            format="json",
        )

    assert older.status_code == 201, older.content
    rows = rows_of(response.json()["id"])
    assert (rows[3].outcome, rows[3].tariff_id, rows[3].amount_micro) == ("matched", older.json()["id"], 1_000_000)
    assert rows[1].amount_micro == 5_000_000  # unchanged
    assert LedgerEntry.objects.count() == 3
    assert_conserved(lab)

    # Re-pricing again (a task delivered twice) changes nothing.
    assert usage_reprice(tariff_id=older.json()["id"]) == 0
    assert usage_reprice(tariff_id=first_tariff.json()["id"]) == 0
    assert LedgerEntry.objects.count() == 3


# --- Processing in chunks -------------------------------------------------------------------------------


def test_chunks_post_one_entry_each_and_duplicates_are_caught_across_chunks(send, lab, settings, tariffs):
    settings.USAGE_CHUNK_LINES = 2
    first = line(units=100)
    response = send(
        manifest(
            [
                first,  # chunk 1
                line(units=-1),
                dict(first),  # chunk 2: the same use again
                line(units=200),
                line(units=300),  # chunk 3
            ]
        )
    )

    manifest_pk = response.json()["id"]
    rows = rows_of(manifest_pk)
    assert [rows[n].outcome for n in range(1, 6)] == [
        "unmatched_held",
        "invalid",
        "duplicate",
        "unmatched_held",
        "unmatched_held",
    ]
    assert rows[3].amount_micro is None
    keys = sorted(LedgerEntry.objects.values_list("idempotency_key", flat=True))
    assert keys == [f"usage:{manifest_pk}:lines:{span}" for span in ("1-2", "3-4", "5-5")]
    assert rows[1].entry_id != rows[4].entry_id != rows[5].entry_id
    assert_conserved(lab)

    # The task delivered again after the end: nothing more.
    usage_manifest_process(manifest_id=manifest_pk)
    assert LedgerEntry.objects.count() == 3
    assert ManifestLine.objects.count() == 5


class WorkerKilled(BaseException):
    pass


def test_the_first_chunks_grow_and_a_resumed_task_cuts_where_a_clean_run_would(
    lab_api, lab, settings, tariffs, monkeypatch, django_capture_on_commit_callbacks
):
    settings.USAGE_CHUNK_LINES = 8
    settings.USAGE_FIRST_CHUNK_LINES = 2
    with django_capture_on_commit_callbacks(execute=False):
        response = lab_api.post(MANIFESTS, manifest([line(units=100 + n) for n in range(30)]), format="json")
    manifest_pk = response.json()["id"]

    # The worker dies at the fourth chunk (lines 9-16), after three committed.
    settle = usage_module._chunk_settle
    calls = 0

    def dying(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise WorkerKilled  # nothing catches a kill; an exception would fail the manifest
        return settle(*args)

    monkeypatch.setattr(usage_module, "_chunk_settle", dying)
    with pytest.raises(WorkerKilled):
        usage_manifest_process(manifest_id=manifest_pk)
    assert UsageManifest.objects.get(pk=manifest_pk).lines_done == 8
    monkeypatch.setattr(usage_module, "_chunk_settle", settle)

    usage_manifest_process(manifest_id=manifest_pk)

    keys = sorted(LedgerEntry.objects.values_list("idempotency_key", flat=True), key=lambda k: int(k.split("-")[-1]))
    spans = ("1-2", "3-4", "5-8", "9-16", "17-24", "25-30")
    assert keys == [f"usage:{manifest_pk}:lines:{span}" for span in spans]
    assert ManifestLine.objects.filter(manifest_id=manifest_pk, outcome="unmatched_held").count() == 30
    assert_conserved(lab)


# --- Reports: detail, progress, list, resubmission -----------------------------------------------------


def test_the_detail_reports_progress_and_the_summary_per_outcome(
    lab_api, lab, holder, staff, tariffs, django_capture_on_commit_callbacks
):
    WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    matched = line(BOOK, units=1000)  # 500,000
    lines = [
        matched,
        line(units=2000),  # unmatched_held: 1,000,000
        line(units="many"),  # invalid
        line(BOOK, units=9, unit="second"),  # unpriced
        {**matched, "units": "1000.000"},  # the same use again
    ]
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = lab_api.post(MANIFESTS, manifest(lines), format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == body["url"] == f"{MANIFESTS}/{body['id']}"
    assert body["outcomes_url"] == f"{body['url']}/outcomes"
    assert (body["status"], body["lines_total"], body["lines_done"], body["progress"]) == ("received", 5, 0, 0.0)
    assert len(queued) == 1  # the processing task, enqueued on commit
    waiting = lab_api.get(body["url"]).json()
    assert waiting["status"] == "received"
    assert waiting["summary"] is None  # appears once processed: polling a large manifest stays cheap

    queued[0]()

    detail = lab_api.get(body["url"]).json()
    assert (detail["status"], detail["lines_total"], detail["lines_done"], detail["progress"]) == (
        "processed",
        5,
        5,
        1.0,
    )
    assert detail["started_at"] is not None
    assert detail["finished_at"] is not None
    assert detail["failure_reason"] == ""
    assert detail["summary"]["outcomes"] == {
        "matched": {"lines": 1, "amount_micro": 500_000},
        "share_unclaimed": {"lines": 0, "amount_micro": 0},
        "unmatched_held": {"lines": 1, "amount_micro": 1_000_000},
        "disputed_held": {"lines": 0, "amount_micro": 0},
        "refused_at_use": {"lines": 0, "amount_micro": 0},
        "license_required": {"lines": 0, "amount_micro": 0},
        "unpriced": {"lines": 1, "amount_micro": 0},
        "invalid": {"lines": 1, "amount_micro": 0},
        "duplicate": {"lines": 1, "amount_micro": 0},
    }
    assert detail["summary"]["totals"] == {
        "lines": 5,
        "amount_micro": 1_500_000,
        "to_owners_micro": 500_000,
        "held_micro": 1_000_000,
        "released_micro": 0,
        "violations_micro": 0,
    }
    assert AuditEvent.objects.filter(code="compensation.manifest.received").count() == 1
    assert AuditEvent.objects.filter(code="compensation.manifest.processed").count() == 1


def test_a_stored_file_that_can_no_longer_be_read_fails_the_manifest(
    lab_api, tariffs, django_capture_on_commit_callbacks
):
    file = io.BytesIO(gzip.compress(jsonl_bytes([line(), line(units=5)])))
    file.name = "run.jsonl.gz"
    with django_capture_on_commit_callbacks(execute=False):
        response = lab_api.post(MANIFESTS, {"manifest_id": "f", "model": "m", "file": file}, format="multipart")
    assert response.status_code == 202, response.content
    stored = UsageManifest.objects.get()
    Path(stored.file.path).write_bytes(gzip.compress(jsonl_bytes([line()]))[:-12])  # truncated on disk

    usage_manifest_process(manifest_id=stored.pk)

    detail = lab_api.get(response.json()["url"]).json()
    assert detail["status"] == "failed"
    assert detail["failure_reason"]
    assert detail["lines_done"] == 0
    assert not LedgerEntry.objects.exists()
    assert AuditEvent.objects.filter(code="compensation.manifest.failed").exists()


def test_the_list_is_the_labs_own_newest_first_and_paginated(lab_api, other_lab_api, staff_api, tariffs, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    ids = [
        lab_api.post(MANIFESTS, manifest([line()], manifest_id=f"run-{n}"), format="json").json()["id"]
        for n in range(3)
    ]
    theirs = other_lab_api.post(MANIFESTS, manifest([line()]), format="json").json()["id"]

    first_page = lab_api.get(MANIFESTS).json()
    second_page = lab_api.get(first_page["next"]).json()

    assert first_page["count"] == 3
    assert [m["id"] for m in first_page["results"]] == [ids[2], ids[1]]
    assert [m["id"] for m in second_page["results"]] == [ids[0]]
    assert second_page["next"] is None
    assert first_page["results"][0]["summary"] is None  # the list stays cheap
    assert first_page["results"][0]["manifest_id"] == "run-2"
    assert staff_api.get(MANIFESTS).json()["count"] == 4
    assert [m["id"] for m in other_lab_api.get(MANIFESTS).json()["results"]] == [theirs]


def test_the_same_manifest_again_answers_the_first_and_changes_nothing(send, lab, tariffs):
    lines = [line(), line(units=7)]
    first = send(manifest(lines))
    # The same lines with their keys in another order are the same content.
    reordered = [dict(reversed(list(item.items()))) for item in lines]
    again = send(manifest(reordered))

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert UsageManifest.objects.count() == 1
    assert ManifestLine.objects.count() == 2
    assert LedgerEntry.objects.count() == 1
    assert AuditEvent.objects.filter(code="compensation.manifest.received").count() == 1
    assert_conserved(lab)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda lines: {"model": "hangul-8b"}, id="other-model"),
        pytest.param(lambda lines: {"purpose": "train-ai"}, id="other-purpose"),
        pytest.param(lambda lines: {"period_start": ago(days=30)}, id="other-period"),
        pytest.param(lambda lines: {"lines": [*lines, line(units=3)]}, id="one-more-line"),
        pytest.param(lambda lines: {"lines": [{**lines[0], "units": 1001}]}, id="other-units"),
    ],
)
def test_the_same_manifest_id_with_other_content_is_a_conflict(send, tariffs, change):
    lines = [line()]
    first = send(manifest(lines))

    conflict = send(manifest(lines, **change(lines)))

    assert error_of(conflict) == (409, "manifest_id_conflict", "manifest_id")
    assert conflict.json()["error"]["manifest"] == first.json()["id"]
    assert UsageManifest.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_the_same_file_again_plain_or_gzipped_answers_the_first(upload, tariffs):
    raw = jsonl_bytes([line(), line(units=9)])

    first = upload(raw, "run.jsonl")
    same_bytes = upload(raw, "copy.jsonl")
    gzipped = upload(gzip.compress(raw), "run.jsonl.gz")
    changed = upload(raw + jsonl_bytes([line(units=1)]), "run.jsonl")

    assert first.status_code == 202
    assert (same_bytes.status_code, gzipped.status_code) == (200, 200)
    assert same_bytes.json()["id"] == gzipped.json()["id"] == first.json()["id"]
    assert error_of(changed) == (409, "manifest_id_conflict", "manifest_id")
    assert UsageManifest.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_a_signed_in_lab_member_submits_like_a_key(lab, tariffs, django_capture_on_commit_callbacks):
    member = APIClient()
    member.force_login(lab.memberships.get().user)

    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(MANIFESTS, manifest([line()]), format="json")

    assert response.status_code == 202, response.content
    stored = UsageManifest.objects.get()
    assert (stored.lab_id, stored.submitted_by, stored.api_key) == (lab.pk, lab.memberships.get().user, None)
    assert stored.status == "processed"
