"""Instants inside signed lookup answers are valid RFC 3339, whatever their date.

Written in Seoul's zone, an instant before 1908 carries its local mean time offset (+08:27:52), which RFC 3339
cannot express; the answers write every instant in UTC instead. Receipts issued before keep verifying: the
signature covers the payload's bytes as sent, whatever its timestamps look like.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from optout import services as optout_services
from optout.receipts import receipt_sign
from registry.models import OwnershipClaim
from tests.factories import RefusalFactory

pytestmark = pytest.mark.django_db

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ISBN = "9788936434021"


def instants(answer: dict[str, Any]) -> list[str]:
    found = [answer["request"]["as_of"], answer["issued_at"]]
    found += [result["refusal"]["effective_from"] for result in answer["results"] if result["refusal"]]
    return found


@pytest.mark.parametrize("as_of", ["1907-06-01T00:00:00+09:00", "1907-06-01", "1900-01-01T00:00:00"])
def test_a_lookup_as_of_before_1908_signs_rfc_3339_instants_that_verify(
    holder, staff, lab_api, book, monkeypatch, as_of
):
    # A refusal and an ownership in force since 1899 (records carried over from an older register): the
    # service refuses a start in the past, and refusals are append-only, so the clock check is set aside.
    since = datetime(1899, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(optout_services, "_not_in_the_past", lambda value, *, field: value)
    RefusalFactory(work=book, purposes=["train-genai"], effective_from=since)
    OwnershipClaim.objects.filter(work=book).update(decided_at=since)

    response = lab_api.post(
        "/api/v1/lookup", {"items": [{"scheme": "isbn", "value": ISBN}], "as_of": as_of}, format="json"
    )

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["results"][0]["status"] == "refused"
    assert all(RFC3339.fullmatch(moment) for moment in instants(answer)), instants(answer)
    assert answer["results"][0]["refusal"]["effective_from"] == "1899-01-01T00:00:00Z"
    assert answer["request"]["as_of"].endswith("Z")
    assert datetime.fromisoformat(answer["request"]["as_of"]).year in (1899, 1907)
    verified = APIClient().post("/api/v1/receipts/verify", answer, format="json")
    assert verified.json() == {"valid": True, "key_id": answer["receipt"]["key_id"], "reason": "ok"}


def test_a_single_lookup_as_of_before_1908_signs_an_rfc_3339_as_of(lab_api):
    response = lab_api.get("/api/v1/lookup", {"scheme": "isbn", "value": ISBN, "as_of": "1905-03-01T12:00:00"})

    assert response.status_code == 200, response.content
    # Noon in Seoul in 1905 (local mean time, +08:27:52) is 03:32:08 UTC.
    assert response.json()["request"]["as_of"] == "1905-03-01T03:32:08Z"


def test_a_receipt_issued_with_the_old_offsets_still_verifies(holder_api):
    # What the registry signed before: as_of written with Seoul's local mean time offset.
    payload = {
        "request": {"purpose": "train-genai", "as_of": "1905-03-01T12:00:00+08:27:52", "item_count": 1},
        "results": [],
        "issued_at": "2026-03-02T09:00:00+09:00",
        "caller": "anonymous",
        "last_refusal_event_id": 0,
    }
    answer = {**payload, "receipt": receipt_sign(payload=payload, own_payload=True)}

    verified = APIClient().post("/api/v1/receipts/verify", answer, format="json")

    assert verified.status_code == 200, verified.content
    assert verified.json()["valid"] is True
