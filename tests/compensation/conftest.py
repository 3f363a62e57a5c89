"""Compensation fixtures: ledger accounts, tariffs, a settled September."""

from __future__ import annotations

from typing import Any

import pytest

from compensation.ledger.services import AccountKey, accounts_ensure
from compensation.models import Account, AccountKind, Invoice, Statement, Tariff
from tests.compensation.helpers import BOOK, CO_OWNED, ITEM_RATE, REFUSED, TOKEN_RATE, UNREGISTERED
from tests.factories import RefusalFactory, TariffFactory, WorkFactory
from tests.helpers import seoul


@pytest.fixture
def accounts(lab: Any, holder: Any, other_holder: Any) -> dict[str, Account]:
    keys = {
        "lab": AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk),
        "holder": AccountKey(AccountKind.HOLDER_PAYABLE, holder.pk),
        "other": AccountKey(AccountKind.HOLDER_PAYABLE, other_holder.pk),
        "unmatched": AccountKey(AccountKind.ESCROW_UNMATCHED, None, "isbn:9780306406157"),
        "rounding": AccountKey(AccountKind.ROUNDING),
    }
    found = accounts_ensure(keys=keys.values())
    return {name: found[key] for name, key in keys.items()}


@pytest.fixture
def tariffs(staff: Any) -> dict[str, Tariff]:
    # Backdated before the first tariff of each kind and unit, which is allowed. No audio tariff: audio
    # uses stay unpriced until a test adds one.
    return {
        "text": TariffFactory(kind="text", unit="token", rate_krw=TOKEN_RATE, set_by=staff),
        "other": TariffFactory(kind="other", unit="item", rate_krw=ITEM_RATE, set_by=staff),
    }


@pytest.fixture
def settled(clock: Any, world: Any, report: Any, settle: Any, holder: Any, staff: Any, settings: Any) -> dict[str, Any]:
    """September: the holder's two books used with sub-won amounts, an unregistered book, and a refused one."""
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 1_000
    RefusalFactory(work=WorkFactory(holder=holder, identifiers=[("isbn", REFUSED)], verified_by=staff))
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "5000001"), (CO_OWNED, "5000001"), (UNREGISTERED, "1000"), (REFUSED, "2000000"))
    clock(seoul(2026, 10, 3, 9))
    body = settle("2026-09-01", "2026-09-30")
    assert body["status"] == "settled"
    return {
        "statement": Statement.objects.get(settlement_id=body["id"], holder=holder),
        "invoice": Invoice.objects.get(settlement_id=body["id"]),
    }
