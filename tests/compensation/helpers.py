"""Helpers shared by the compensation tests: usage manifests, ledger balances, raw SQL around the services."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from compensation.ledger.selectors import account_balance
from compensation.models import Account, AccountKind, LedgerEntry, ManifestLine, UsageManifest
from config.celery import app as celery_app
from registry.models import AuditEvent

MANIFESTS = "/api/v1/usage-manifests"
# Three books of the settlement tests: one owned by ``holder``, one co-owned 60/40, one nobody registered.
BOOK = "9788936434021"
CO_OWNED = "9780306406157"
UNREGISTERED = "9780262033848"
OTHER_BOOK = "9780306406157"
REFUSED = "9791162540121"
# A rate of 0.0005 KRW per token: 1,000 tokens are 0.5 won, 500,000 micro-won.
TOKEN_RATE = Decimal("0.0005")
# Anything identified by URL is priced as "other" per item.
ITEM_RATE = Decimal("3")
COLUMNS = ["scheme", "value", "units", "unit", "used_at"]


# --- Usage manifests ------------------------------------------------------------------------------


def ago(**delta: float) -> str:
    return (timezone.now() - timedelta(**delta)).isoformat()


def used(days_ago: int = 1) -> str:
    return ago(days=days_ago)


def line(
    value: str = OTHER_BOOK, *, scheme: str = "isbn", units: Any = 1000, unit: str = "token", **extra: Any
) -> dict[str, Any]:
    """One use of a manifest, a day ago."""
    return {"scheme": scheme, "value": value, "units": units, "unit": unit, "used_at": ago(days=1), **extra}


def manifest(lines: Any, /, **overrides: Any) -> dict[str, Any]:
    """A manifest body without a purpose; an override of ``None`` leaves the field out."""
    body: dict[str, Any] = {"manifest_id": "run-1", "model": "hangul-7b", "model_version": "1", "lines": lines}
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def manifest_body(lines: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """A manifest body for training a generative model."""
    body: dict[str, Any] = {"manifest_id": "run-1", "model": "hangul-7b", "model_version": "1"}
    body["purpose"] = "train-genai"
    body.update(overrides)
    body["lines"] = lines
    return body


def csv_bytes(rows: list[list[Any]], *, header: list[str] = COLUMNS) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)  # "\r\n" line ends, as spreadsheets write them
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


# --- Ledger -----------------------------------------------------------------------------------------


def balance(kind: str, *, party: Any = None, key: str = "") -> int:
    account = Account.objects.filter(kind=kind, party=party, escrow_key=key).first()
    return account_balance(account=account) if account is not None else 0


def assert_conserved(lab: Any) -> None:
    """Ledger invariant 4, seen from the lab: what its lines cost is exactly what it owes."""
    lines = ManifestLine.objects.filter(manifest__lab=lab, amount_micro__isnull=False)
    total = sum(row.amount_micro or 0 for row in lines)
    assert balance(AccountKind.LAB_RECEIVABLE, party=lab) == total
    for row in lines:
        assert row.amount_micro == row.paid_micro + row.held_micro + row.violation_micro


def assert_nothing_created(media_root: Any) -> None:
    """No manifest, line, ledger entry, manifest audit event or stored file: a refused upload left no trace."""
    assert not UsageManifest.objects.exists()
    assert not ManifestLine.objects.exists()
    assert not LedgerEntry.objects.exists()
    assert not AuditEvent.objects.filter(code__startswith="compensation.manifest").exists()
    assert not [path for path in Path(media_root).rglob("*") if path.is_file()]


def deferred_guards_check() -> None:
    """Fire the deferred PostgreSQL ledger triggers now, as COMMIT would (tests roll back, never commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


# Raw SQL around the ledger service, as a bug or a person at a psql prompt would write it.
INSERT_ENTRY = """
    INSERT INTO compensation_ledgerentry (idempotency_key, kind, effective_at, created_at, memo, source)
    VALUES (%s, 'accrual', now(), now(), '', '{}') RETURNING id
"""
INSERT_LINE = "INSERT INTO compensation_ledgerline (entry_id, account_id, amount_micro) VALUES (%s, %s, %s)"


def raw_entry(cursor: Any, key: str, lines: list[tuple[int, int]]) -> int:
    cursor.execute(INSERT_ENTRY, [key])
    entry_id = int(cursor.fetchone()[0])
    for account_id, amount in lines:
        cursor.execute(INSERT_LINE, [entry_id, account_id, amount])
    return entry_id


def sql_run(*statements: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


# --- Celery -----------------------------------------------------------------------------------------


@contextmanager
def eager() -> Iterator[None]:
    """Run tasks in this process, as the rest of the suite does, until the block ends."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False
