"""The public notice of unclaimed money (/unclaimed/, GET /api/v1/unclaimed) and the hold policy: a hold is listed as
soon as it is posted, with its notice date; its period counts from that notice; at its end it is distributed by
market share or transferred to a staff-named public-interest account, exact to the won, and ledger_check agrees."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from compensation.ledger.checks import check_offenders, ledger_checks
from compensation.models import (
    AccountKind,
    EntryKind,
    HoldEndAction,
    LedgerEntry,
    LedgerLine,
    MarketShareDistribution,
    UnclaimedNotice,
)
from compensation.unclaimed.services import hold_policy_set
from core.actors import Actor
from core.errors import InvalidInput, NotPermitted
from tests.compensation.helpers import BOOK, UNREGISTERED
from tests.factories import WorkFactory, isbn, verify_claims
from tests.helpers import seoul

pytestmark = pytest.mark.django_db

MICRO = 1_000_000
AUTUMN = isbn(4242)


def _balance(kind: str, **filters: Any) -> int:
    return int(LedgerLine.objects.filter(account__kind=kind, **filters).aggregate(t=Sum("amount_micro"))["t"] or 0)


def _ledger_clean() -> None:
    broken = {check.name: check_offenders(check, limit=5) for check in ledger_checks()}
    assert {name: found for name, found in broken.items() if found[0]} == {}


def _distribute(staff_api: APIClient, capture: Any, month: str, expect: int) -> dict[str, Any]:
    with capture(execute=True):
        response = staff_api.post("/api/v1/distributions", {"hold_month": month}, format="json")
    assert response.status_code == expect, response.content
    return dict(response.json())


@pytest.fixture
def priced(world: Any, clock: Any) -> None:
    """The world's tariff starts at 2026-01-05 09:00; uses are reported (an hour old) from the next day on."""
    clock(seoul(2026, 1, 6, 9))


@pytest.fixture
def autumn(priced: Any, holder: Any) -> Any:
    """A registered work whose only claim is still pending: what its uses earn is held for it."""
    return WorkFactory(holder=holder, identifiers=[("isbn", AUTUMN)], title="Autumn Letters", creators=["Kim Minji"])


def test_a_hold_is_listed_as_soon_as_it_is_posted_banded_with_its_notice(world, autumn, report, api):
    report((UNREGISTERED, "40000000"), (AUTUMN, "2000000"), (BOOK, "2000000"))

    body = api.get("/api/v1/unclaimed").json()

    assert body["count"] == 2
    rows = {row["held_for"]: row for row in body["results"]}
    assert rows["work"]["work"]["title"] == "Autumn Letters"
    assert rows["work"]["work"]["identifiers"] == [f"isbn:{AUTUMN}"]
    assert rows["work"]["kind"] == "text"
    # 2,000,000 tokens at 0.0005 KRW: 1,000 KRW, shown only as its band.
    assert rows["work"]["amount_band"] == {"min_krw": 1_000, "max_krw": 10_000}
    assert rows["identifier"]["identifier"] == f"isbn:{UNREGISTERED}"
    assert rows["identifier"]["amount_band"] == {"min_krw": 10_000, "max_krw": 100_000}
    assert rows["identifier"]["amount_band_label"] == "10,000–100,000 KRW"  # noqa: RUF001
    for row in rows.values():
        assert row["hold_month"] == "2026-01"
        assert row["noticed_on"] == "2026-01-06"
        # ESCROW_HOLD_PERIOD_DAYS (1,095) from the notice, without a staff policy.
        assert row["hold_ends_on"] == "2029-01-05"
        assert "20000" not in str(row)
        assert "1000000000" not in str(row)
    assert UnclaimedNotice.objects.count() == 2


def test_the_list_is_searchable_by_title_creator_and_identifier(world, autumn, report, api):
    report((UNREGISTERED, "40000000"), (AUTUMN, "2000000"))

    def found(q: str) -> list[str]:
        return [row["title"] for row in api.get("/api/v1/unclaimed", {"q": q}).json()["results"]]

    assert found("autumn letters") == ["Autumn Letters"]
    assert found("Kim Minji") == ["Autumn Letters"]
    assert found(AUTUMN) == ["Autumn Letters"]
    assert found(f"isbn:{UNREGISTERED}") == [f"isbn:{UNREGISTERED}"]
    assert found("nothing like this") == []


def test_the_list_is_paginated(priced, report, api):
    report(*[(isbn(7000 + n), "2000000") for n in range(55)])

    first = api.get("/api/v1/unclaimed").json()
    second = api.get(first["next"]).json()

    assert first["count"] == 55
    assert len(first["results"]) == 50
    assert len(second["results"]) == 5
    assert second["next"] is None


def test_a_released_hold_leaves_the_list_and_a_second_month_has_its_own_notice(
    autumn, report, api, staff, clock, django_capture_on_commit_callbacks
):
    report((AUTUMN, "2000000"))
    clock(seoul(2026, 2, 10, 9))
    report((AUTUMN, "2000000"))
    assert [row["hold_month"] for row in api.get("/api/v1/unclaimed").json()["results"]] == ["2026-02", "2026-01"]

    with django_capture_on_commit_callbacks(execute=True):
        verify_claims(autumn, staff)

    assert api.get("/api/v1/unclaimed").json()["count"] == 0
    _ledger_clean()


def test_the_public_page_lists_holds_and_this_is_mine_needs_sign_in(world, autumn, report, client):
    report((AUTUMN, "2000000"), (UNREGISTERED, "2000000"))

    page = client.get("/unclaimed/", headers={"Accept-Language": "en"})

    assert page.status_code == 200
    text = page.content.decode()
    assert "Autumn Letters" in text
    assert f"isbn:{UNREGISTERED}" in text
    assert "1,000–10,000 KRW" in text  # noqa: RUF001
    claim_url = f"/dashboard/works/{autumn.pk}/claim/"
    assert claim_url in text
    assert client.get(claim_url).status_code == 302
    assert "/dashboard/works/new/?identifier=isbn%3A" + UNREGISTERED in text


def test_this_is_mine_prefills_a_new_work_with_the_identifier(priced, report, owner, holder):
    from tests.helpers import signed_in

    report((UNREGISTERED, "2000000"))
    client = signed_in(owner)

    page = client.get(f"/dashboard/works/new/?identifier=isbn:{UNREGISTERED}&kind=text").content.decode()

    assert f'value="{UNREGISTERED}"' in page


def test_only_staff_set_hold_policies_and_never_in_the_past(priced, holder, staff):
    with pytest.raises(NotPermitted):
        hold_policy_set(
            actor=Actor(party=holder), effective_from=date(2026, 2, 1), period_days=30, end_action="market_share"
        )
    with pytest.raises(InvalidInput):
        hold_policy_set(
            actor=Actor(user=staff), effective_from=date(2026, 1, 1), period_days=30, end_action="market_share"
        )
    with pytest.raises(InvalidInput):
        hold_policy_set(
            actor=Actor(user=staff), effective_from=date(2026, 2, 1), period_days=30, end_action="public_interest"
        )


def test_market_share_at_the_end_of_the_period_counted_from_the_notice_exact_to_the_won(
    priced, report, staff, staff_api, clock, settings, django_capture_on_commit_callbacks, holder
):
    capture = django_capture_on_commit_callbacks
    settings.MARKET_SHARE_RESERVE_BP = 1_000
    hold_policy_set(actor=Actor(user=staff), effective_from=date(2026, 1, 6), period_days=30, end_action="market_share")
    # 1,000 KRW to the owner of BOOK, 1,000 KRW held for an ISBN nobody registered, noticed 2026-01-06.
    report((BOOK, "2000000"), (UNREGISTERED, "2000000"))
    notice = UnclaimedNotice.objects.get()
    assert notice.hold_ends_on == date(2026, 2, 5)

    clock(seoul(2026, 2, 4, 23, 59))
    early = _distribute(staff_api, capture, "2026-01", 400)
    assert early["error"]["code"] == "hold_period_not_over"

    clock(seoul(2026, 2, 5, 0, 1))
    _distribute(staff_api, capture, "2026-01", 202)

    distribution = MarketShareDistribution.objects.get()
    assert distribution.distributed_micro == 900 * MICRO
    assert distribution.transferred_micro == 0
    assert _balance(AccountKind.HOLDER_PAYABLE, account__party=holder) == -1_900 * MICRO
    assert _balance(AccountKind.ESCROW_UNMATCHED) == -100 * MICRO
    _ledger_clean()


def test_public_interest_transfer_follows_the_policy_in_force_when_the_period_ends_exact_to_the_won(
    priced, report, staff, staff_api, clock, settings, django_capture_on_commit_callbacks, holder
):
    capture = django_capture_on_commit_callbacks
    settings.MARKET_SHARE_RESERVE_BP = 1_000
    staff_actor = Actor(user=staff)
    hold_policy_set(actor=staff_actor, effective_from=date(2026, 1, 6), period_days=30, end_action="market_share")
    # From 2026-01-25 on, what ends goes to a fund; the 30 days of a hold noticed before stay as they were.
    response = staff_api.post(
        "/api/v1/hold-policies",
        {
            "effective_from": "2026-01-25",
            "period_days": 90,
            "end_action": HoldEndAction.PUBLIC_INTEREST,
            "public_interest_account": "Korea Copyright Culture Fund",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    # 1,000 KRW to the owner; 1,234.567891 KRW held (2,469,135.782 tokens at 0.0005 KRW, rounded half-even).
    report((BOOK, "2000000"), (UNREGISTERED, "2469135.782"))
    held = -_balance(AccountKind.ESCROW_UNMATCHED)
    assert UnclaimedNotice.objects.get().hold_ends_on == date(2026, 2, 5)

    clock(seoul(2026, 2, 4, 12))
    _distribute(staff_api, capture, "2026-01", 400)
    clock(seoul(2026, 2, 5, 12))
    _distribute(staff_api, capture, "2026-01", 202)

    distribution = MarketShareDistribution.objects.get()
    transferred = held * 9_000 // 10_000
    assert distribution.transferred_micro == transferred
    assert distribution.distributed_micro == 0
    assert _balance(AccountKind.PUBLIC_INTEREST, account__escrow_key="Korea Copyright Culture Fund") == -transferred
    assert _balance(AccountKind.ESCROW_UNMATCHED) == -(held - transferred)
    # The owner got only its own accrual.
    assert _balance(AccountKind.HOLDER_PAYABLE, account__party=holder) == -1_000 * MICRO
    entry = LedgerEntry.objects.get(kind=EntryKind.TRANSFER)
    assert entry.source["public_interest"] == "Korea Copyright Culture Fund"
    _ledger_clean()
    # Asked again, the month is distributed once.
    _distribute(staff_api, capture, "2026-01", 200)
    assert LedgerEntry.objects.filter(kind=EntryKind.TRANSFER).count() == 1
