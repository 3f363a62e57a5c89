"""Ledger fixtures: a lab, two holders and the accounts money moves between."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.db import connection

from compensation.ledger import AccountKey, accounts_ensure
from compensation.models import Account, AccountKind


def deferred_guards_check() -> None:
    """Fire the deferred PostgreSQL ledger triggers now, as COMMIT would (tests roll back, never commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


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
