"""Hostile input through the portal and the admin: dates out of range and NUL characters are errors on the form,
nothing is written, and the staff reports fall back to their default period."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from compensation.models import MarketShareDistribution, Settlement, Tariff, UsageManifest

pytestmark = pytest.mark.django_db

CSV = b"scheme,value,units,unit,used_at\r\nisbn,9788936434021,5,token,2026-01-01\r\n"


def errors_of(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    form = response.context.get("form") or response.context["adminform"].form
    return " ".join(str(error) for errors in form.errors.values() for error in errors) + " ".join(
        str(error) for error in form.non_field_errors()
    )


@pytest.mark.parametrize("value", ["0001-01-01", "0555-06-15", "9999-12-31"])
def test_a_manifest_period_out_of_range_is_an_error_on_the_upload_form(lab_client, settings, value):
    response = lab_client.post(
        "/dashboard/manifests/",
        {
            "manifest_id": "run-1",
            "model": "hangul-7b",
            "purpose": "train-genai",
            "period_start": value,
            "file": SimpleUploadedFile("run.csv", CSV),
        },
    )

    assert "1900-01-01" in errors_of(response)
    assert not UsageManifest.objects.exists()
    assert not [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


def test_a_manifest_file_with_a_nul_character_is_an_error_on_the_upload_form(lab_client, settings):
    response = lab_client.post(
        "/dashboard/manifests/",
        {
            "manifest_id": "run-1",
            "model": "hangul-7b",
            "purpose": "train-genai",
            "file": SimpleUploadedFile("run.csv", CSV.replace(b"token", b"tok\x00en")),
        },
    )

    assert "NUL" in errors_of(response)
    assert not UsageManifest.objects.exists()
    assert not [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


@pytest.mark.parametrize("value", ["0001-01-01", "0555-06-15", "9999-12-31"])
def test_admin_dates_out_of_range_are_errors_on_the_forms(staff_client, value):
    tariff = staff_client.post(
        "/admin/compensation/tariff/add/",
        {"kind": "text", "unit": "token", "rate_krw": "1", "effective_from_0": value, "effective_from_1": "00:00:00"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    settlement = staff_client.post(
        "/admin/compensation/settlement/add/", {"first_day": value, "last_day": value}, HTTP_ACCEPT_LANGUAGE="en"
    )
    distribution = staff_client.post(
        "/admin/compensation/marketsharedistribution/add/", {"hold_month": value}, HTTP_ACCEPT_LANGUAGE="en"
    )

    for response in (tariff, settlement, distribution):
        assert "1900-01-01" in errors_of(response)
    assert not Tariff.objects.exists()
    assert not Settlement.objects.exists()
    assert not MarketShareDistribution.objects.exists()


@pytest.mark.parametrize("query", ["first=0001-01-01&last=0001-01-31", "first=2026-01-01&last=9999-12-31"])
def test_a_report_period_out_of_range_falls_back_to_the_default(staff_client, query):
    response = staff_client.get(f"/admin/compensation/reports/?{query}", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    # The default period, not the one asked for.
    assert "first=" not in response.context["query"]


@pytest.mark.parametrize("path", ["/dashboard/works/", "/search/", "/api/v1/works"])
def test_a_nul_character_in_a_query_string_is_a_400(owner_client, path):
    response = owner_client.get(path, {"q": "a\x00b", "identifier": "isbn:978\x00"})

    assert response.status_code == 400
    if path.startswith("/api/"):
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("nul_character", "q")
    else:
        assert "NUL" in response.content.decode()
