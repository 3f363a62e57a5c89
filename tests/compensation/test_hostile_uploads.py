"""Hostile usage manifests through the API: decompression and size bombs, NUL characters, dates out of range.

Each bomb is built streaming (a compressor fed a chunk at a time), so the test holds only the compressed bytes;
the limits are lowered so that each is reached after a few megabytes. Every refusal is a 4xx with its code (and
the line where one applies), and nothing is written: no manifest, no line, no ledger entry, no stored file.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from compensation.models import LedgerEntry, ManifestLine, ManifestStatus, UsageManifest
from compensation.usage.services import usage_manifest_process
from tests.compensation.helpers import assert_nothing_created

pytestmark = pytest.mark.django_db

MANIFESTS = "/api/v1/usage-manifests"
BOOK = "9780306406157"
CSV_HEADER = b"scheme,value,units,unit,used_at\r\n"

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


def gzip_stream(pieces: Iterator[bytes]) -> bytes:
    """A gzip member of ``pieces``, compressed as they come: only the compressed bytes are ever held."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 16 + 15: gzip framing
    out = io.BytesIO()
    for piece in pieces:
        out.write(compressor.compress(piece))
    out.write(compressor.flush())
    return out.getvalue()


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes made of ``chunk``, a chunk at a time."""
    while total > 0:
        yield chunk[:total]
        total -= len(chunk)


def a_line(value: str = BOOK, **extra: Any) -> bytes:
    used_at = (timezone.now() - timedelta(days=1)).isoformat()
    fields = {"scheme": "isbn", "value": value, "units": 1000, "unit": "token", "used_at": used_at, **extra}
    return orjson.dumps(fields) + b"\n"


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert "error" in body, body
    error: dict[str, Any] = body["error"]
    assert error["message"]
    return {"status": response.status_code, **error}


@pytest.fixture
def upload(lab_api: APIClient, django_capture_on_commit_callbacks: Capture) -> Callable[..., Any]:
    def _upload(content: bytes, name: str, **fields: str) -> Any:
        file = io.BytesIO(content)
        file.name = name
        data = {"manifest_id": "run-1", "model": "hangul-7b", **fields, "file": file}
        with django_capture_on_commit_callbacks(execute=True):
            return lab_api.post(MANIFESTS, data, format="multipart")

    return _upload


@pytest.fixture
def small_limits(settings: Any) -> Any:
    settings.USAGE_MANIFEST_MAX_LINE_BYTES = 1024
    settings.USAGE_MANIFEST_MAX_INFLATED_BYTES = 4 * 1024 * 1024
    settings.USAGE_MANIFEST_MAX_LINES = 10_000
    return settings


# --- Bombs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "start", "line"), [("one-line.jsonl.gz", b"", 1), ("one-line.csv.gz", CSV_HEADER, 1)])
def test_a_gzip_of_one_endless_line_is_refused_at_its_line_without_reading_it_whole(
    upload, small_limits, name, start, line
):
    # 64 MiB of one line inflate from about 64 KiB; the upload stops after the line limit's worth.
    bomb = gzip_stream(iter([start, *repeated(b"x" * 65536, 64 * 1024 * 1024)]))
    assert len(bomb) < 200_000

    error = error_of(upload(bomb, name))

    assert (error["status"], error["code"], error["field"], error["line"]) == (400, "line_too_long", "file", line)
    assert_nothing_created(small_limits.MEDIA_ROOT)


def test_a_gzip_of_blank_lines_is_refused_because_blank_lines_count(upload, small_limits):
    # A million blank lines: each cheap, together the CPU a gzip of 10 GiB of them once took.
    bomb = gzip_stream(repeated(b"\n" * 65536, 1_000_000))

    error = error_of(upload(bomb, "blank.jsonl.gz"))

    assert (error["status"], error["code"], error["field"]) == (413, "too_many_lines", "file")
    assert_nothing_created(small_limits.MEDIA_ROOT)


def test_a_gzip_inflating_past_the_byte_limit_is_refused(upload, small_limits):
    small_limits.USAGE_MANIFEST_MAX_LINES = 10_000_000
    # Short, valid-looking lines, so that only the inflated size is over a limit.
    bomb = gzip_stream(repeated(a_line() * 1000, 8 * 1024 * 1024))

    error = error_of(upload(bomb, "big.jsonl.gz"))

    assert (error["status"], error["code"], error["field"]) == (413, "inflated_too_large", "file")
    assert_nothing_created(small_limits.MEDIA_ROOT)


@pytest.mark.parametrize("name", ["big.csv", "big.csv.gz"])
def test_a_file_over_the_upload_byte_limit_is_refused_before_it_is_read(upload, settings, name):
    settings.USAGE_MANIFEST_MAX_UPLOAD_BYTES = 4096
    content = CSV_HEADER + b"".join(f"isbn,{BOOK},{n},token,2026-01-01\r\n".encode() for n in range(200))
    assert len(content) > 4096

    error = error_of(upload(content, name))

    assert (error["status"], error["code"], error["field"]) == (413, "file_too_large", "file")
    assert_nothing_created(settings.MEDIA_ROOT)


def test_reading_longer_than_the_inspection_deadline_is_refused(upload, settings):
    # No time to spend at all: the first look at the clock (after 1,024 lines) is past the deadline.
    settings.USAGE_MANIFEST_INSPECT_SECONDS = 0
    content = a_line() * 3000

    error = error_of(upload(content, "slow.jsonl"))

    assert (error["status"], error["code"], error["field"]) == (413, "inspection_timeout", "file")
    assert_nothing_created(settings.MEDIA_ROOT)


def test_a_line_at_the_limit_is_accepted(upload, settings):
    settings.USAGE_MANIFEST_MAX_LINE_BYTES = 256
    line = a_line()
    padded = line[:-2] + b" " * (257 - len(line)) + b"}\r\n"
    assert len(padded.rstrip(b"\r\n")) == 256

    over = error_of(upload(padded + padded.replace(b"}\r\n", b" }\r\n"), "edge.jsonl"))
    response = upload(padded + padded.replace(b"1000", b"2000"), "edge.jsonl")

    assert (over["status"], over["code"], over["line"]) == (400, "line_too_long", 2)
    assert response.status_code == 202, response.content
    assert response.json()["lines_total"] == 2


# --- NUL characters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "line"),
    [
        pytest.param(
            a_line() + a_line(value="97803064\x0006157".replace("\x00", "\\u0000")), "run.jsonl", 2, id="escape"
        ),
        pytest.param(a_line() * 2 + b'{"scheme":"isbn","value":"978\x000306406157"}\n', "run.jsonl", 3, id="raw"),
        pytest.param(
            CSV_HEADER + f"isbn,{BOOK},1,token,2026-01-01\r\nisbn,978\x000306406157,1,token,2026-01-01\r\n".encode(),
            "run.csv",
            2,
            id="csv",
        ),
        pytest.param(
            gzip_stream(iter([CSV_HEADER, b"isbn,9780306406157,1,tok\x00en,2026-01-01\r\n"])),
            "run.csv.gz",
            1,
            id="gzip",
        ),
    ],
)
def test_a_nul_character_in_a_line_is_refused_naming_the_line(upload, settings, content, name, line):
    error = error_of(upload(content, name))

    assert (error["status"], error["code"], error["field"], error["line"]) == (400, "nul_character", "file", line)
    assert_nothing_created(settings.MEDIA_ROOT)


@pytest.mark.parametrize("field", ["manifest_id", "model", "model_version"])
def test_a_nul_character_in_a_manifest_field_is_a_400_naming_it(upload, lab_api, settings, field):
    as_file = error_of(upload(a_line(), "run.jsonl", **{field: "run\x001"}))
    body = {"manifest_id": "run-1", "model": "hangul-7b", field: "run\x001", "lines": [orjson.loads(a_line())]}
    as_json = error_of(lab_api.post(MANIFESTS, body, format="json"))

    assert (as_file["status"], as_file["code"], as_file["field"]) == (400, "nul_character", field)
    assert (as_json["status"], as_json["code"], as_json["field"]) == (400, "nul_character", field)
    assert_nothing_created(settings.MEDIA_ROOT)


def test_a_nul_character_in_a_json_manifest_line_names_the_line_and_field(lab_api, settings):
    lines = [orjson.loads(a_line()), orjson.loads(a_line(value="978\x000306406157"))]
    body = {"manifest_id": "run-1", "model": "hangul-7b", "lines": lines}

    error = error_of(lab_api.post(MANIFESTS, body, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "nul_character", "lines[1].value")
    assert_nothing_created(settings.MEDIA_ROOT)


# --- The worker's side ----------------------------------------------------------------------------


def _accepted_then_replaced(
    upload: Callable[..., Any], content: bytes, django_capture_on_commit_callbacks: Capture
) -> UsageManifest:
    """A manifest accepted (its task not run), whose stored file is then replaced by ``content``: a file
    stored before today's rules, or under higher limits than the worker now has."""
    response = upload(a_line(), "run.jsonl")
    assert response.status_code == 202, response.content
    manifest = UsageManifest.objects.get()
    with manifest.file.storage.open(manifest.file.name or "", "wb") as stored:
        stored.write(content)
    return manifest


@pytest.fixture
def upload_queued(lab_api: APIClient) -> Callable[..., Any]:
    def _upload(content: bytes, name: str) -> Any:
        file = io.BytesIO(content)
        file.name = name
        return lab_api.post(MANIFESTS, {"manifest_id": "run-1", "model": "hangul-7b", "file": file}, format="multipart")

    return _upload


def test_the_worker_fails_a_stored_manifest_with_an_overlong_line_instead_of_reading_it(
    upload_queued, settings, django_capture_on_commit_callbacks
):
    manifest = _accepted_then_replaced(
        upload_queued, a_line() + b"x" * (4 * 1024 * 1024) + b"\n", django_capture_on_commit_callbacks
    )
    settings.USAGE_MANIFEST_MAX_LINE_BYTES = 1024

    usage_manifest_process(manifest_id=manifest.pk)

    manifest.refresh_from_db()
    assert manifest.status == ManifestStatus.FAILED
    assert "1024" in manifest.failure_reason
    assert not LedgerEntry.objects.exists()


def test_the_worker_reports_a_stored_line_with_a_nul_character_as_invalid(
    upload_queued, tariffs_for_text, django_capture_on_commit_callbacks
):
    manifest = _accepted_then_replaced(
        upload_queued, a_line(value="978\x000306406157"), django_capture_on_commit_callbacks
    )

    usage_manifest_process(manifest_id=manifest.pk)

    manifest.refresh_from_db()
    assert manifest.status == ManifestStatus.PROCESSED
    row = ManifestLine.objects.get(manifest=manifest)
    assert (row.outcome, row.reason_code) == ("invalid", "nul_character")


@pytest.fixture
def tariffs_for_text(staff: Any) -> None:
    from compensation.usage.tariffs import tariff_set
    from core.actors import Actor

    tariff_set(
        actor=Actor(user=staff),
        kind="text",
        unit="token",
        rate_krw="0.0005",
        effective_from=timezone.now() - timedelta(days=30),
    )


# --- Dates out of range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["0001-01-01", "0555-06-15T00:00:00+09:00", "9999-12-31", "9999-12-31T23:59:59-09:00"]
)
@pytest.mark.parametrize("field", ["period_start", "period_end"])
def test_a_manifest_period_out_of_range_is_a_400_naming_the_field(upload, lab_api, settings, value, field):
    as_file = error_of(upload(a_line(), "run.jsonl", **{field: value}))
    body = {"manifest_id": "run-1", "model": "hangul-7b", field: value, "lines": [orjson.loads(a_line())]}
    as_json = error_of(lab_api.post(MANIFESTS, body, format="json"))

    assert (as_file["status"], as_file["code"], as_file["field"]) == (400, "date_out_of_range", field)
    assert (as_json["status"], as_json["code"], as_json["field"]) == (400, "date_out_of_range", field)
    assert_nothing_created(settings.MEDIA_ROOT)


@pytest.mark.parametrize("used_at", ["0001-01-01", "0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-09:00"])
def test_a_line_used_out_of_range_is_an_invalid_line_not_a_crash(
    lab_api, tariffs_for_text, django_capture_on_commit_callbacks, used_at
):
    lines = [orjson.loads(a_line()), {**orjson.loads(a_line()), "used_at": used_at}]
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(
            MANIFESTS, {"manifest_id": "run-1", "model": "hangul-7b", "lines": lines}, format="json"
        )

    assert response.status_code == 202, response.content
    manifest = UsageManifest.objects.get()
    assert manifest.status == ManifestStatus.PROCESSED
    row = ManifestLine.objects.get(manifest=manifest, line_no=2)
    assert (row.outcome, row.reason_code) == ("invalid", "invalid_used_at")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period_start": "0001-01-01T00:00:00"}, "period_start"),
        ({"period_start": "0001-01-01T00:00:00+09:00"}, "period_start"),
        ({"period_end": "9999-12-31T23:59:59-09:00"}, "period_end"),
        ({"period_end": "0555-01-01T00:00:00"}, "period_end"),
    ],
)
def test_a_balance_period_out_of_range_is_a_400_naming_the_field(lab_api, params, field):
    error = error_of(lab_api.get("/api/v1/balance", params))

    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"period_start": "0001-01-01", "period_end": "0001-01-31"}, "period_start"),
        ({"period_start": "0555-01-01", "period_end": "0555-01-31"}, "period_start"),
        ({"period_start": "2026-01-01", "period_end": "9999-12-31"}, "period_end"),
    ],
)
def test_a_settlement_period_out_of_range_is_a_400_and_settles_nothing(staff_api, body, field):
    from compensation.models import Settlement

    error = error_of(staff_api.post("/api/v1/settlements", body, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", field)
    assert not Settlement.objects.exists()


@pytest.mark.parametrize("month", ["0001-01", "0555-06", "9999-12"])
def test_a_distribution_month_out_of_range_is_a_400_and_distributes_nothing(staff_api, month):
    from compensation.models import MarketShareDistribution

    error = error_of(staff_api.post("/api/v1/distributions", {"hold_month": month}, format="json"))

    assert (error["status"], error["code"], error["field"]) == (400, "date_out_of_range", "hold_month")
    assert not MarketShareDistribution.objects.exists()


def test_a_body_past_the_upload_ceiling_is_refused_while_it_streams_in(upload, settings):
    # Past every kind's limit the file is not even received whole (nor spooled to disk) before the refusal.
    settings.UPLOAD_CEILING_BYTES = 64 * 1024
    content = a_line() * 4000

    error = error_of(upload(content, "big.jsonl"))

    assert (error["status"], error["code"]) == (413, "request_too_large")
    assert_nothing_created(settings.MEDIA_ROOT)
