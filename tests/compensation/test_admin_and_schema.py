"""The admin shows the ledger read-only and adds tariffs through the service; the API is documented."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from compensation.ledger.services import ledger_post
from compensation.models import EntryKind, LedgerEntry, Tariff
from registry.models import AuditEvent
from tests.helpers import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(staff):
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)
    return client


def test_the_ledger_pages_render_and_offer_no_edits(admin_client, accounts):
    entry, _created = ledger_post(
        idempotency_key="k",
        kind=EntryKind.ACCRUAL,
        effective_at=at("2026-03-15T12:00:00+09:00"),
        lines=[(accounts["lab"], 5), (accounts["holder"], -5)],
    )
    for model in ("account", "ledgerentry", "tariff"):
        assert admin_client.get(f"/admin/compensation/{model}/").status_code == 200, model
    detail = admin_client.get(f"/admin/compensation/ledgerentry/{entry.pk}/change/")

    assert detail.status_code == 200
    assert "권리자 미지급금 · Hangang Press" in detail.content.decode()  # the lines, inline
    assert admin_client.get("/admin/compensation/ledgerentry/add/").status_code == 403
    assert admin_client.post(f"/admin/compensation/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk, memo="").exists()


def test_staff_add_a_tariff_in_the_admin_through_the_service(admin_client, staff):
    starts = timezone.localtime(timezone.now() + timedelta(days=2))
    response = admin_client.post(
        "/admin/compensation/tariff/add/",
        {
            "kind": "image",
            "unit": "image",
            "rate_krw": "12.5",
            "effective_from_0": starts.strftime("%Y-%m-%d"),
            "effective_from_1": starts.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    tariff = Tariff.objects.get()
    assert tariff.created_by == staff
    assert AuditEvent.objects.filter(code="compensation.tariff.set", actor_user=staff).exists()


def test_a_conflicting_tariff_message_is_translated(staff_api):
    starts = (timezone.now() + timedelta(days=1)).isoformat()
    body = {"kind": "text", "unit": "token", "rate_krw": "1", "effective_from": starts}
    staff_api.post("/api/v1/tariffs", body, format="json")

    response = staff_api.post("/api/v1/tariffs", body, format="json", HTTP_ACCEPT_LANGUAGE="ko")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "tariff_exists",
        "message": "이 종류와 단위의 요율이 이미 같은 시각에 시작합니다.",
    }


def test_the_api_schema_documents_tariffs_and_balance():
    schema = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/v1/tariffs"])
    assert "get" in schema["paths"]["/api/v1/balance"]
