"""The change feed over HTTP: ``GET /api/v1/changes?after=&limit=`` lists status changes in cursor order, with no
gaps, in the JSON form the spec fixes (the same in webhooks and a snapshot's ``scheduled`` file).

Changes are written directly here (``StatusChange`` rows, as ``optout.status`` writes them), so that these tests
are about serving the feed, not about what causes a change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from optout.feed.selectors import change_as_json
from optout.models import StatusChange
from registry.models import AuditEvent
from tests.factories import ApiKeyFactory
from tests.helpers import key_client

CHANGES = "/api/v1/changes"


def change_add(subject: str = "isbn:9788937460883", **fields: Any) -> StatusChange:
    values: dict[str, Any] = {
        "subject_type": "key",
        "subject": subject,
        "host": "",
        "purpose": "train-ai",
        "old_status": "permitted",
        "new_status": "refused",
        "effective_at": timezone.now(),
        "cause_code": "optout.refusal.filed",
        **fields,
    }
    return StatusChange.objects.create(**values)


def changes_add(count: int) -> list[StatusChange]:
    return [change_add(f"isbn:97889374608{index:02d}") for index in range(count)]


def test_a_change_is_served_in_the_spec_json_form(lab_api: APIClient) -> None:
    cause = AuditEvent.objects.create(code="optout.refusal.filed")
    change = change_add(
        effective_at=datetime(2026, 12, 5, 9, 0, tzinfo=UTC),
        recorded_at=datetime(2026, 12, 5, 8, 59, 59, 123456, tzinfo=UTC),
        cause=cause,
    )

    response = lab_api.get(CHANGES)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "changes": [
            {
                "cursor": change.pk,
                "subject_type": "key",
                "subject": "isbn:9788937460883",
                "host": "",
                "purpose": "train-ai",
                "old_status": "permitted",
                "new_status": "refused",
                "effective_at": "2026-12-05T09:00:00Z",
                "recorded_at": "2026-12-05T08:59:59.123456Z",
                "cause": {"event_id": cause.pk, "code": "optout.refusal.filed"},
            }
        ],
        "next_cursor": change.pk,
        "has_more": False,
    }
    assert response.json()["changes"] == [change_as_json(change)]


def test_url_prefix_and_kind_changes_carry_their_host_and_subject(lab_api: APIClient) -> None:
    prefix = change_add(
        "https://news.example.kr/opinion/", subject_type="url_prefix", host="news.example.kr", purpose="train-genai"
    )
    kind = change_add("audio", subject_type="kind", new_status="license_required", cause_code="optout.regime.set")

    changes = lab_api.get(CHANGES).json()["changes"]

    assert [
        (c["cursor"], c["subject_type"], c["subject"], c["host"], c["purpose"], c["new_status"]) for c in changes
    ] == [
        (prefix.pk, "url_prefix", "https://news.example.kr/opinion/", "news.example.kr", "train-genai", "refused"),
        (kind.pk, "kind", "audio", "", "train-ai", "license_required"),
    ]
    assert changes[1]["cause"] == {"event_id": None, "code": "optout.regime.set"}


def test_pages_follow_each_other_in_cursor_order_without_gaps(lab_api: APIClient) -> None:
    made = [change.pk for change in changes_add(5)]

    seen: list[int] = []
    after, pages = 0, []
    while True:
        page = lab_api.get(CHANGES, {"after": after, "limit": 2}).json()
        pages.append((len(page["changes"]), page["has_more"]))
        seen += [c["cursor"] for c in page["changes"]]
        after = page["next_cursor"]
        if not page["has_more"]:
            break

    assert seen == made
    assert pages == [(2, True), (2, True), (1, False)]
    assert after == made[-1]


def test_an_empty_page_gives_back_the_cursor_it_was_asked_after(lab_api: APIClient) -> None:
    last = changes_add(2)[-1]

    page = lab_api.get(CHANGES, {"after": last.pk}).json()

    assert page == {"changes": [], "next_cursor": last.pk, "has_more": False}
    assert lab_api.get(CHANGES).json()["next_cursor"] == last.pk  # after defaults to 0: everything


def test_the_feed_after_a_snapshot_cursor_starts_with_the_first_change_it_lacks(lab_api: APIClient) -> None:
    before = changes_add(3)
    snapshot_cursor = before[-1].pk
    lacking = change_add("isbn:9788936434021", new_status="permitted", old_status="refused")

    page = lab_api.get(CHANGES, {"after": snapshot_cursor}).json()

    assert [c["cursor"] for c in page["changes"]] == [lacking.pk]


def test_future_dated_changes_are_listed_at_once_with_their_instant(lab_api: APIClient) -> None:
    later = timezone.now() + timedelta(days=30)
    change = change_add(effective_at=later)

    (served,) = lab_api.get(CHANGES).json()["changes"]

    assert served["cursor"] == change.pk
    assert datetime.fromisoformat(served["effective_at"]) == later


def test_a_page_holds_at_most_limit_changes_and_10000_at_most(lab_api: APIClient) -> None:
    changes_add(3)

    assert len(lab_api.get(CHANGES, {"limit": 1}).json()["changes"]) == 1
    assert len(lab_api.get(CHANGES, {"limit": 10_000}).json()["changes"]) == 3
    response = lab_api.get(CHANGES, {"limit": 10_001})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_limit"
    assert response.json()["error"]["field"] == "limit"


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "", " 1", "99999999999999999999", str(2**63)])
def test_a_malformed_cursor_is_refused_with_a_code(lab_api: APIClient, after: str) -> None:
    response = lab_api.get(CHANGES, {"after": after})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"
    assert response.json()["error"]["field"] == "after"


@pytest.mark.parametrize("limit", ["0", "x", "-5", "1e3"])
def test_a_malformed_limit_is_refused_with_a_code(lab_api: APIClient, limit: str) -> None:
    response = lab_api.get(CHANGES, {"limit": limit})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_limit"


def test_a_cursor_past_the_newest_change_was_not_given_out_here(lab_api: APIClient) -> None:
    last = changes_add(2)[-1]

    response = lab_api.get(CHANGES, {"after": last.pk + 1000})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "cursor_ahead"
    assert lab_api.get(CHANGES, {"after": 0}).status_code == 200  # an empty registry's cursor 0 is fine too


def test_an_empty_feed_answers_cursor_0(lab_api: APIClient) -> None:
    assert lab_api.get(CHANGES).json() == {"changes": [], "next_cursor": 0, "has_more": False}


# --- Who may read ------------------------------------------------------------------------------------------


def test_anonymous_callers_are_asked_to_authenticate(api: APIClient) -> None:
    response = api.get(CHANGES)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_key_without_the_lookup_scope_may_not_read_the_feed(holder: Any) -> None:
    client = key_client(ApiKeyFactory(party=holder, scopes=["works:write"]).raw)

    response = client.get(CHANGES)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"


def test_staff_keys_and_lookup_keys_read_the_feed(staff_api: APIClient, lab_api: APIClient, holder_api: Any) -> None:
    change_add()

    for client in (staff_api, lab_api, holder_api):
        response = client.get(CHANGES)
        assert response.status_code == 200
        assert len(response.json()["changes"]) == 1


def test_the_schema_documents_the_feed(lab_api: APIClient) -> None:
    schema = lab_api.get("/api/v1/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/changes"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"after", "limit"}
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    change = schema["components"]["schemas"]["ChangeOutput"]["properties"]
    assert set(change) == {
        "cursor",
        "subject_type",
        "subject",
        "host",
        "purpose",
        "old_status",
        "new_status",
        "effective_at",
        "recorded_at",
        "cause",
    }
