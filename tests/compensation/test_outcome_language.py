"""Outcome files say why a line is invalid in their reader's language, whatever language the worker wrote it in.

The worker stores reasons in the registry's default language (Korean here); a lab that uploads and
downloads in English reads English reasons, with the values they name (a unit, a column count, an ISBN).
Without a language asked for, the file is in the language the manifest was uploaded in.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from compensation.models import ManifestLine, UsageManifest, UsageUnit
from compensation.usage.manifests import line_reason
from tests.compensation.helpers import manifest_body
from tests.helpers import streamed

pytestmark = pytest.mark.django_db

USED_AT = "2026-01-01T00:00:00+09:00"
BAD_CHECKSUM = "9788936434022"

ENGLISH = {
    1: "units is not a number.",
    2: f"“furlong” is not a unit; use one of {', '.join(UsageUnit.values)}.",
    3: "The check digit of this ISBN is wrong; look for a mistyped character.",
    4: "used_at is not an ISO 8601 date or date and time.",
    5: "units must be more than zero.",
}


def line(**overrides: Any) -> dict[str, Any]:
    return {"scheme": "isbn", "value": "9788936434021", "units": "10", "unit": "token", "used_at": USED_AT, **overrides}


@pytest.fixture
def invalid_manifest(lab_api, settings, django_capture_on_commit_callbacks) -> UsageManifest:
    settings.LANGUAGE_CODE = "ko"
    lines = [
        line(units="many"),
        line(unit="furlong"),
        line(value=BAD_CHECKSUM),
        line(used_at="last tuesday"),
        line(units="0"),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(
            "/api/v1/usage-manifests", manifest_body(lines), format="json", HTTP_ACCEPT_LANGUAGE="en"
        )
    assert response.status_code == 202, response.content
    manifest = UsageManifest.objects.get(pk=response.json()["id"])
    assert manifest.language == "en"
    return manifest


def reasons_of_csv(content: bytes) -> dict[int, str]:
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    return {int(row["line"]): row["reason"] for row in rows}


def test_a_lab_that_asks_in_english_reads_english_reasons(invalid_manifest, lab_api):
    # Stored as the worker wrote them: in the default language, Korean.
    stored = dict(ManifestLine.objects.filter(manifest=invalid_manifest).values_list("line_no", "reason"))
    assert stored[1] != ENGLISH[1]
    assert "furlong" in stored[2]
    url = f"/api/v1/usage-manifests/{invalid_manifest.pk}/outcomes"

    as_csv = lab_api.get(f"{url}?format=csv", HTTP_ACCEPT_LANGUAGE="en")
    assert as_csv.status_code == 200
    assert as_csv["Content-Language"] == "en"
    assert reasons_of_csv(b"".join(as_csv.streaming_content)) == ENGLISH

    as_jsonl = lab_api.get(f"{url}?format=jsonl", HTTP_ACCEPT_LANGUAGE="en")
    rows = [orjson.loads(raw) for raw in b"".join(as_jsonl.streaming_content).splitlines()]
    assert {row["line"]: row["reason"] for row in rows} == ENGLISH

    pages = lab_api.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    assert {row["line"]: row["reason"] for row in pages["results"]} == ENGLISH


def test_the_same_file_in_korean_when_asked_in_korean(invalid_manifest, lab_api):
    url = f"/api/v1/usage-manifests/{invalid_manifest.pk}/outcomes?format=csv"
    korean = reasons_of_csv(b"".join(lab_api.get(url, HTTP_ACCEPT_LANGUAGE="ko").streaming_content))
    stored = dict(ManifestLine.objects.filter(manifest=invalid_manifest).values_list("line_no", "reason"))
    assert korean == stored
    assert all(korean[number] != ENGLISH[number] for number in ENGLISH)
    assert "furlong" in korean[2]


def test_without_a_language_asked_the_file_is_in_the_uploaders(invalid_manifest, lab_api):
    url = f"/api/v1/usage-manifests/{invalid_manifest.pk}/outcomes?format=csv"
    response = lab_api.get(url)
    assert response["Content-Language"] == "en"
    assert reasons_of_csv(streamed(response)) == ENGLISH


def test_the_portal_download_follows_the_language_chosen_there(invalid_manifest, lab, settings):
    client = Client()
    client.force_login(lab.memberships.get().user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    response = client.get(f"/dashboard/manifests/{invalid_manifest.pk}/outcomes")
    assert response.status_code == 200
    assert reasons_of_csv(streamed(response)) == ENGLISH
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    korean = reasons_of_csv(streamed(client.get(f"/dashboard/manifests/{invalid_manifest.pk}/outcomes")))
    assert korean[1] != ENGLISH[1]


def test_a_csv_lines_column_count_is_said_again_with_its_numbers(lab_api, settings, django_capture_on_commit_callbacks):
    settings.LANGUAGE_CODE = "ko"
    content = f"scheme,value,units,unit,used_at\r\nisbn,9788936434021,10,token,{USED_AT},extra\r\n".encode()
    fields = {"manifest_id": "run-csv", "model": "hangul-7b", "purpose": "train-genai", "format": "csv"}
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(
            "/api/v1/usage-manifests",
            {**fields, "file": SimpleUploadedFile("uses.csv", content, "text/csv")},
            format="multipart",
            HTTP_ACCEPT_LANGUAGE="ko",
        )
    assert response.status_code == 202, response.content
    url = f"/api/v1/usage-manifests/{response.json()['id']}/outcomes?format=csv"
    english = reasons_of_csv(b"".join(lab_api.get(url, HTTP_ACCEPT_LANGUAGE="en").streaming_content))
    assert english == {1: "The line has 6 columns; the header has 5."}


def test_a_reason_it_does_not_know_is_kept_as_stored():
    assert (
        line_reason(code="invalid_units", reason="hand-written", scheme="", value="", language="en") == "hand-written"
    )
    assert line_reason(code="no_such_code", reason="텍스트", scheme="", value="", language="en") == "텍스트"
