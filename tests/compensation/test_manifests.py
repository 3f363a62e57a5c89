"""Usage manifests through the API: submission, processing, outcomes, ledger postings."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from django.utils import timezone

from compensation.models import AccountKind, LedgerEntry, ManifestLine, UsageManifest
from tests.compensation.helpers import manifest_body, used
from tests.factories import TariffFactory, WorkFactory

pytestmark = pytest.mark.django_db

BOOK = "9788936434021"
OTHER_BOOK = "9780306406157"


@pytest.fixture
def tariffs(staff: Any) -> None:
    # Backdated (the factory's default): before the first tariff of its kind and unit, so allowed.
    TariffFactory(kind="text", unit="token", rate_krw=Decimal("0.0005"), set_by=staff)
    TariffFactory(kind="image", unit="image", rate_krw=Decimal("2"), set_by=staff)


def submit(client: Any, body: dict[str, Any], capture: Any) -> Any:
    with capture(execute=True):
        return client.post("/api/v1/usage-manifests", body, format="json")


def test_json_manifest_is_processed_into_outcomes_and_one_balanced_entry(
    lab_api, lab, holder, staff, tariffs, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    twice = used(2)
    lines: list[dict[str, Any]] = [
        {"scheme": "isbn", "value": BOOK, "units": 1000, "unit": "token", "used_at": used()},
        {"scheme": "isbn", "value": OTHER_BOOK, "units": "2000", "unit": "token", "used_at": used()},
        {"scheme": "isbn", "value": "123", "units": 1, "unit": "token", "used_at": used()},
        {"scheme": "isbn", "value": BOOK, "units": 1000, "unit": "token", "used_at": twice},
        {"scheme": "isbn", "value": BOOK, "units": 1000, "unit": "token", "used_at": twice},
        {"scheme": "isbn", "value": BOOK, "units": 5, "unit": "second", "used_at": used()},
    ]
    response = submit(lab_api, manifest_body(lines), django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    url = response.json()["url"]
    detail = lab_api.get(url).json()
    assert detail["status"] == "processed"
    assert detail["lines_total"] == detail["lines_done"] == 6
    outcomes = detail["summary"]["outcomes"]
    assert outcomes["matched"] == {"lines": 2, "amount_micro": 1_000_000}
    assert outcomes["unmatched_held"] == {"lines": 1, "amount_micro": 1_000_000}
    assert outcomes["invalid"]["lines"] == 1
    assert outcomes["duplicate"]["lines"] == 1
    assert outcomes["unpriced"]["lines"] == 1
    assert detail["summary"]["totals"]["amount_micro"] == 2_000_000

    # One entry, balanced: the lab owes 2 won, the owner is owed 1, escrow holds 1 for the unknown ISBN.
    assert LedgerEntry.objects.count() == 1
    rows = {r.line_no: r for r in ManifestLine.objects.all()}
    assert rows[1].outcome == "matched"
    assert rows[1].paid_micro == 500_000
    assert rows[1].work_id == work.pk
    assert rows[2].outcome == "unmatched_held"
    assert rows[2].held_account is not None
    assert rows[2].held_account.kind == AccountKind.ESCROW_UNMATCHED
    assert rows[2].held_account.escrow_key == f"isbn:{OTHER_BOOK}"
    assert rows[3].outcome == "invalid"
    assert rows[3].reason_code
    assert rows[5].outcome == "duplicate"


def test_same_manifest_twice_answers_the_first_and_other_content_is_a_conflict(
    lab_api, tariffs, django_capture_on_commit_callbacks
):
    lines = [{"scheme": "isbn", "value": OTHER_BOOK, "units": 10, "unit": "token", "used_at": used()}]
    first = submit(lab_api, manifest_body(lines), django_capture_on_commit_callbacks)
    again = submit(lab_api, manifest_body(lines), django_capture_on_commit_callbacks)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    changed = submit(lab_api, manifest_body([{**lines[0], "units": 11}]), django_capture_on_commit_callbacks)
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "manifest_id_conflict"
    assert UsageManifest.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_refused_work_is_a_violation_never_paid(
    lab_api, lab, holder, holder_api, staff, tariffs, django_capture_on_commit_callbacks
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    assert (
        holder_api.post(
            "/api/v1/refusals", {"scope": "work", "work": work.pk, "purposes": ["train-ai"]}, format="json"
        ).status_code
        == 201
    )
    before = used(400)  # before the refusal: permitted then
    after = timezone.now().isoformat()
    lines = [
        {"scheme": "isbn", "value": BOOK, "units": 1000, "unit": "token", "used_at": after},
        {"scheme": "isbn", "value": BOOK, "units": 2000, "unit": "token", "used_at": before},
    ]
    response = submit(lab_api, manifest_body(lines), django_capture_on_commit_callbacks)
    rows = {r.line_no: r for r in ManifestLine.objects.all()}
    assert response.status_code == 202
    assert rows[1].outcome == "refused_at_use"
    assert rows[1].violation_micro == 500_000
    assert rows[1].paid_micro == 0
    assert rows[2].outcome == "matched"
    assert rows[2].paid_micro == 1_000_000


def test_file_upload_gzip_csv_and_outcomes_download(lab_api, tariffs, django_capture_on_commit_callbacks):
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["scheme", "value", "units", "unit", "used_at"])
    writer.writerow(["isbn", OTHER_BOOK, "100", "token", used()])
    writer.writerow(["doi", "not a doi", "100", "token", used()])
    writer.writerow(["isbn", OTHER_BOOK, "-1", "token", used()])
    payload = gzip.compress(text.getvalue().encode())
    upload = io.BytesIO(payload)
    upload.name = "run.csv.gz"
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(
            "/api/v1/usage-manifests", {"file": upload, "manifest_id": "file-1", "model": "m"}, format="multipart"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["compressed"] is True
    assert body["lines_total"] == 3
    csv_response = lab_api.get(body["outcomes_url"] + "?format=csv")
    assert csv_response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert [r["outcome"] for r in rows] == ["unmatched_held", "invalid", "invalid"]
    assert rows[2]["reason_code"] == "negative_units"
    jsonl = lab_api.get(body["outcomes_url"] + "?format=jsonl")
    parsed = [orjson.loads(line) for line in b"".join(jsonl.streaming_content).splitlines()]
    assert parsed[0]["held_for"] == f"isbn:{OTHER_BOOK}"
    assert parsed[0]["amount_micro"] == 50_000


def test_a_date_only_period_end_includes_that_day_and_the_same_instant_in_utc_is_the_same_manifest(
    lab_api, tariffs, django_capture_on_commit_callbacks
):
    today = timezone.localdate()
    noon = timezone.make_aware(datetime(today.year, today.month, today.day, 0, 0)) - timedelta(hours=12)
    start = noon - timedelta(days=3)
    lines = [{"scheme": "isbn", "value": OTHER_BOOK, "units": 10, "unit": "token", "used_at": noon.isoformat()}]
    body = manifest_body(lines, period_start=start.isoformat(), period_end=(noon.date()).isoformat(), manifest_id="day")
    first = submit(lab_api, body, django_capture_on_commit_callbacks)
    assert first.status_code == 202
    assert ManifestLine.objects.get().outcome == "unmatched_held"
    in_utc = {**body, "period_start": start.astimezone(UTC).isoformat()}
    again = submit(lab_api, in_utc, django_capture_on_commit_callbacks)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_clock_skew_multiline_csv_records_and_bad_encoding(lab_api, tariffs, django_capture_on_commit_callbacks):
    soon = (timezone.now() + timedelta(seconds=5)).isoformat()
    content = (
        "scheme,value,units,unit,used_at\n"
        f"isbn,{OTHER_BOOK},1,token,{soon}\n"
        f'url,"https://a.example.kr/x\ny",1,token,{used()}\n'
        f"url,https://a.example.kr/caf\xe9,1,token,{used()}\n"
    ).encode("latin-1")
    upload = io.BytesIO(content)
    upload.name = "m.csv"
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(
            "/api/v1/usage-manifests", {"file": upload, "manifest_id": "skew", "model": "m"}, format="multipart"
        )
    assert response.status_code == 202, response.content
    rows = {r.line_no: r for r in ManifestLine.objects.all()}
    assert rows[1].outcome == "unmatched_held"  # seconds ahead of the registry's clock is not the future
    assert sorted(rows) == [1, 2, 4]  # the record on lines 2-3 is numbered by its first line
    assert rows[4].reason_code == "bad_encoding"


def test_outcomes_as_json_pages(lab_api, tariffs, django_capture_on_commit_callbacks):
    lines = [{"scheme": "isbn", "value": OTHER_BOOK, "units": n, "unit": "token", "used_at": used()} for n in (1, 2, 3)]
    response = submit(lab_api, manifest_body(lines), django_capture_on_commit_callbacks)
    page = lab_api.get(response.json()["outcomes_url"], HTTP_ACCEPT="application/json").json()
    assert page["count"] == 3
    assert [row["line"] for row in page["results"]] == [1, 2, 3]
    assert page["results"][2]["amount_micro"] == 1_500


def test_violations_are_visible_to_the_lab_the_owner_and_staff_only(
    lab_api,
    holder,
    holder_api,
    other_holder_api,
    staff,
    staff_api,
    tariffs,
    admin_client,
    django_capture_on_commit_callbacks,
):
    work = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    refusal = holder_api.post(
        "/api/v1/refusals", {"scope": "work", "work": work.pk, "purposes": ["train-ai"]}, format="json"
    ).json()
    lines = [{"scheme": "isbn", "value": BOOK, "units": 1000, "unit": "token", "used_at": timezone.now().isoformat()}]
    submit(lab_api, manifest_body(lines), django_capture_on_commit_callbacks)

    for client in (lab_api, holder_api, staff_api):
        (violation,) = client.get("/api/v1/violations").json()["results"]
        assert violation["work"] == work.pk
        assert violation["refusal"] == refusal["id"]
        assert violation["amount_micro"] == 500_000
        assert violation["lab_name"] == "Seoul AI Lab"
    assert other_holder_api.get("/api/v1/violations").json()["results"] == []

    manifest = UsageManifest.objects.get()
    for url in (
        "/admin/compensation/usagemanifest/",
        f"/admin/compensation/usagemanifest/{manifest.pk}/change/",
        "/admin/compensation/manifestline/?outcome=refused_at_use",
    ):
        assert admin_client.get(url).status_code == 200
