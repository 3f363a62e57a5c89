"""GET /api/v1/balance: a party's balances by account kind and month, from the ledger's lines."""

from __future__ import annotations

import pytest

from compensation.ledger.services import ledger_post
from compensation.models import EntryKind
from tests.helpers import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(accounts):
    """March: the lab owes 1.5 won to holder and 0.5 won to escrow; April: 2 won to holder."""

    def post(key, when, lines):
        ledger_post(idempotency_key=key, kind=EntryKind.ACCRUAL, effective_at=at(when), lines=lines)

    post(
        "m1",
        "2026-03-01T00:00:00+09:00",
        [(accounts["lab"], 2_000_000), (accounts["holder"], -1_500_000), (accounts["unmatched"], -500_000)],
    )
    # 00:30 on 1 April in Seoul is still 31 March in UTC: months are counted in Korean time.
    post("m2", "2026-04-01T00:30:00+09:00", [(accounts["lab"], 2_000_000), (accounts["holder"], -2_000_000)])
    post("o1", "2026-03-10T00:00:00+09:00", [(accounts["lab"], 7), (accounts["other"], -7)])
    return accounts


def test_a_holder_reads_its_balance_by_kind_and_month(holder_api, holder, ledger):
    response = holder_api.get("/api/v1/balance")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["party"] == holder.pk
    assert body["unit"] == "micro_won"
    assert body["by_kind"] == {"holder_payable": -3_500_000}
    assert body["by_month"] == [
        {"month": "2026-03", "by_kind": {"holder_payable": -1_500_000}},
        {"month": "2026-04", "by_kind": {"holder_payable": -2_000_000}},
    ]


def test_a_lab_reads_its_receivable(lab_api, ledger):
    body = lab_api.get("/api/v1/balance").json()
    assert body["by_kind"] == {"lab_receivable": 4_000_007}


def test_a_period_limits_the_lines(holder_api, ledger):
    response = holder_api.get(
        "/api/v1/balance", {"period_start": "2026-04-01T00:00:00+09:00", "period_end": "2026-05-01T00:00:00+09:00"}
    )
    assert response.status_code == 200
    assert response.json()["by_kind"] == {"holder_payable": -2_000_000}


def test_a_period_ends_after_it_starts(holder_api, ledger):
    response = holder_api.get(
        "/api/v1/balance", {"period_start": "2026-04-01T00:00:00+09:00", "period_end": "2026-04-01T00:00:00+09:00"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "period_end"


def test_a_holder_cannot_read_another_partys_balance(holder_api, other_holder, ledger):
    response = holder_api.get("/api/v1/balance", {"party": other_holder.pk})
    assert response.status_code == 403


def test_staff_read_any_partys_balance(staff_api, other_holder, ledger):
    response = staff_api.get("/api/v1/balance", {"party": other_holder.pk})
    assert response.status_code == 200
    assert response.json()["by_kind"] == {"holder_payable": -7}
    assert staff_api.get("/api/v1/balance", {"party": 999_999}).status_code == 404


def test_staff_without_a_party_must_name_one(staff_api, ledger):
    response = staff_api.get("/api/v1/balance")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_party"


def test_a_party_without_entries_has_empty_balances(other_holder_api, holder):
    body = other_holder_api.get("/api/v1/balance").json()
    assert body["by_kind"] == {}
    assert body["by_month"] == []


def test_anonymous_callers_are_refused(api):
    assert api.get("/api/v1/balance").status_code in (401, 403)
