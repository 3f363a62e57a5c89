"""Market-share distribution: a hold month's unclaimed escrow goes once, after the hold period, to the holders
the same lab paid that month, pro rata, keeping a reserve that a late claimant still receives.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone, translation

from compensation.models import (
    AccountKind,
    DistributionShare,
    EntryKind,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    MarketShareDistribution,
    StatementLine,
    StatementLineKind,
)
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from registry.models import OwnershipClaim
from registry.services import claim_verify
from tests.compensation.helpers import manifest_body
from tests.factories import ApiKeyFactory, LabFactory, UserFactory, WorkFactory
from tests.helpers import key_client, seoul

pytestmark = pytest.mark.django_db

MICRO = 1_000_000
BOOK = "9788936434021"
OTHER_BOOK = "9780306406157"
UNCLAIMED = "9780262033848"
ORPHAN = "9791162540640"


@pytest.fixture
def clock(time_machine: Any) -> Any:
    def move(moment: datetime) -> None:
        time_machine.move_to(moment, tick=False)

    return move


def _report(client: Any, capture: Any, manifest_id: str, *uses: tuple[str, str]) -> None:
    used_at = (timezone.now() - timedelta(hours=1)).isoformat()
    lines = [{"scheme": "isbn", "value": v, "units": u, "unit": "token", "used_at": used_at} for v, u in uses]
    with capture(execute=True):
        response = client.post("/api/v1/usage-manifests", manifest_body(lines, manifest_id=manifest_id), format="json")
    assert response.status_code == 202, response.content


def _payable(party: Any) -> int:
    total = LedgerLine.objects.filter(account__kind=AccountKind.HOLDER_PAYABLE, account__party=party).aggregate(
        t=Sum("amount_micro")
    )["t"]
    return -int(total or 0)


def _distribute(staff_api: Any, capture: Any, month: str, expect: int) -> dict[str, Any]:
    with capture(execute=True):
        response = staff_api.post("/api/v1/distributions", {"hold_month": month}, format="json")
    assert response.status_code == expect, response.content
    return dict(response.json())


def test_a_hold_month_is_distributed_once_by_market_share_and_the_reserve_waits_for_a_late_claimant(
    clock, staff, staff_api, holder, other_holder, lab_api, settings, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    settings.MARKET_SHARE_RESERVE_BP = 1_000
    clock(seoul(2023, 3, 1, 9))
    tariff_set(
        actor=Actor(user=staff), kind="text", unit="token", rate_krw=Decimal("0.0005"), effective_from=timezone.now()
    )
    WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    WorkFactory(holder=other_holder, identifiers=[("isbn", OTHER_BOOK)], verified_by=staff)
    # Another lab that paid nobody in March: its holds cannot be distributed by its market share.
    lonely_lab = LabFactory(name="Lonely Lab", owner=UserFactory(username="lonely"))
    lonely_api = key_client(ApiKeyFactory(party=lonely_lab, scopes=["lookup", "usage:write"]).raw)

    clock(seoul(2023, 3, 15, 12))
    # 3,000 KRW to one holder, 1,000 KRW to the other, 1,000 KRW held for an ISBN nobody registered.
    _report(lab_api, capture, "march", (BOOK, "6000000"), (OTHER_BOOK, "2000000"), (UNCLAIMED, "2000000"))
    _report(lonely_api, capture, "lonely", (ORPHAN, "2000000"))
    clock(seoul(2023, 4, 2, 12))
    _report(lab_api, capture, "april", (UNCLAIMED, "2000000"))  # another month: stays held

    # The hold period (1,095 days) counts from the holds' notice, the day they were first listed (2023-03-15): it
    # ends on 2026-03-14.
    clock(seoul(2026, 3, 13, 12))
    early = _distribute(staff_api, capture, "2023-03", 400)
    assert early["error"]["code"] == "hold_period_not_over"

    clock(seoul(2026, 4, 2, 12))
    before = (_payable(holder), _payable(other_holder))
    body = _distribute(staff_api, capture, "2023-03", 202)
    distribution = MarketShareDistribution.objects.get(pk=body["id"])
    assert (distribution.status, distribution.hold_month.isoformat()) == ("done", "2023-03-01")
    pool = 900 * MICRO  # 1,000 KRW held, 10% kept in reserve
    assert (distribution.distributed_micro, distribution.reserved_micro) == (pool, 100 * MICRO)
    assert distribution.undistributable_micro == 1_000 * MICRO  # the lonely lab's
    assert _payable(holder) - before[0] == pool * 3 // 4
    assert _payable(other_holder) - before[1] == pool // 4
    shares = {(s.holder_id, s.basis_micro, s.amount_micro) for s in DistributionShare.objects.all()}
    assert shares == {(holder.pk, 3_000 * MICRO, pool * 3 // 4), (other_holder.pk, 1_000 * MICRO, pool // 4)}
    entry = LedgerEntry.objects.get(kind=EntryKind.DISTRIBUTION)
    assert entry.source["hold_month"] == "2023-03"

    march_hold = ManifestLine.objects.get(manifest__manifest_id="march", key=f"isbn:{UNCLAIMED}")
    assert (march_hold.released_micro, march_hold.hold_open) == (pool, True)
    assert march_hold.allocation[-1] == [None, None, pool, entry.pk]
    april_hold = ManifestLine.objects.get(manifest__manifest_id="april")
    assert (april_hold.released_micro, april_hold.hold_open) == (0, True)

    # Exactly once.
    entries = LedgerEntry.objects.count()
    again = _distribute(staff_api, capture, "2023-03-01", 200)
    assert again["id"] == distribution.pk
    assert LedgerEntry.objects.count() == entries

    # A late claimant gets what is left: the reserve of March, and all of April.
    late = WorkFactory(holder=holder, identifiers=[("isbn", UNCLAIMED)])
    with capture(execute=True):
        claim_verify(actor=Actor(user=staff), claim=OwnershipClaim.objects.get(work=late))
    march_hold.refresh_from_db()
    april_hold.refresh_from_db()
    assert (march_hold.released_micro, march_hold.hold_open) == (1_000 * MICRO, False)
    assert (april_hold.released_micro, april_hold.hold_open) == (1_000 * MICRO, False)

    out = StringIO()
    with translation.override("en"):
        call_command("ledger_check", stdout=out)
    assert "Ledger OK" in out.getvalue(), out.getvalue()

    # The distribution shows on the holder's statement of the period it was posted in.
    clock(seoul(2026, 5, 3, 9))
    with capture(execute=True):
        response = staff_api.post(
            "/api/v1/settlements", {"period_start": "2026-04-01", "period_end": "2026-04-30"}, format="json"
        )
    assert response.status_code == 202, response.content
    line = StatementLine.objects.get(statement__holder=holder, kind=StatementLineKind.DISTRIBUTION)
    assert line.amount_micro == pool * 3 // 4
    assert line.entry_id == entry.pk


def test_only_staff_distribute(holder_api, clock):
    clock(seoul(2026, 4, 2, 12))
    response = holder_api.post("/api/v1/distributions", {"hold_month": "2023-03"}, format="json")
    assert response.status_code == 403
    assert not MarketShareDistribution.objects.exists()
