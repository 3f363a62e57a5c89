"""AI labs in the portal: keys shown once, lookups with receipts, manifests with outcomes, violations."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from compensation.models import ManifestStatus, UsageManifest
from registry.models import ApiKey
from registry.services import apikey_authenticate
from tests.factories import RefusalFactory, TariffFactory

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_works_and_can_be_revoked(lab_client, lab):
    response = lab_client.post("/dashboard/keys/", {"name": "pipeline", "scopes": ["lookup", "usage:write"]})
    assert response.status_code == 302
    response = lab_client.get("/dashboard/keys/")
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(party=lab)
    raw = response.context["created_key"]["raw"]
    assert raw in response.content.decode()
    assert apikey_authenticate(raw_key=raw) == key
    assert raw not in lab_client.get("/dashboard/keys/").content.decode()
    response = lab_client.post(f"/dashboard/keys/{key.pk}/revoke/")
    assert response.status_code == 302
    assert apikey_authenticate(raw_key=raw) is None


def test_a_lab_looks_up_and_gets_a_verifiable_signed_answer(lab_client, book, holder):
    RefusalFactory(work=book)
    response = lab_client.post(
        "/dashboard/lookup/",
        {"purpose": "train-genai", "items": "isbn:978-89-364-3402-1\nhttps://x.example.kr/a\nisbn:123"},
    )
    assert response.status_code == 200
    answer = response.context["answer"]
    assert [r["status"] for r in answer["results"]] == ["refused", "unregistered", "invalid"]
    assert "receipt" in answer
    from optout.receipts import receipt_verify

    payload = {k: v for k, v in answer.items() if k != "receipt"}
    assert receipt_verify(payload=payload, receipt=answer["receipt"]).valid


def test_a_manifest_is_uploaded_processed_and_its_outcomes_downloaded(
    lab_client, lab, book, staff, django_capture_on_commit_callbacks
):
    TariffFactory(
        kind="text",
        unit="token",
        rate_krw=Decimal("0.5"),
        effective_from=timezone.now() - timedelta(days=30),
        set_by=staff,
    )
    used_at = (timezone.now() - timedelta(days=1)).isoformat()
    body = (
        "scheme,value,units,unit,used_at\r\n"
        f"isbn,9788936434021,2000,token,{used_at}\r\n"
        f"url,https://unknown.example.kr/x,1000,token,{used_at}\r\n"
        f"isbn,9788936434022,5,token,{used_at}\r\n"
    ).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_client.post(
            "/dashboard/manifests/",
            {
                "manifest_id": "run-1",
                "model": "hangul-7b",
                "purpose": "train-genai",
                "file": SimpleUploadedFile("run.csv", body),
            },
        )
    assert response.status_code == 302
    manifest = UsageManifest.objects.get(lab=lab)
    assert manifest.status == ManifestStatus.PROCESSED
    page = lab_client.get(response["Location"]).content.decode()
    assert "<code>matched</code>" in page
    assert "<code>invalid</code>" in page
    assert lab_client.get(f"/dashboard/manifests/{manifest.pk}/status.json").json()["percent"] == 100
    csv_text = b"".join(
        lab_client.get(f"/dashboard/manifests/{manifest.pk}/outcomes?format=csv").streaming_content
    ).decode()
    assert csv_text.splitlines()[0].startswith('"line","scheme","value"')
    assert len(csv_text.strip().splitlines()) == 4


def test_a_manifest_error_is_shown_on_its_field(lab_client):
    response = lab_client.post(
        "/dashboard/manifests/",
        {
            "manifest_id": "run-1",
            "model": "m",
            "purpose": "train-genai",
            "file": SimpleUploadedFile("run.csv", b"a,b\r\n1,2\r\n"),
        },
    )
    assert response.status_code == 200
    assert 'id="id_file_error"' in response.content.decode()
    assert 'value="run-1"' in response.content.decode()


def test_holder_pages_are_not_found_for_a_lab_and_lab_pages_for_a_holder(lab_client, owner_client):
    assert lab_client.get("/dashboard/works/").status_code == 404
    assert owner_client.get("/dashboard/manifests/").status_code == 404
    assert lab_client.get("/dashboard/").status_code == 200
    assert owner_client.get("/dashboard/earnings/").status_code == 200
