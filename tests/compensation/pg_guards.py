"""Lets the test suite empty the ledger tables on PostgreSQL; imported by ``tests/conftest.py``.

The ledger refuses TRUNCATE (``compensation/migrations/0002_ledger_guards.py``) unless the session sets
``compensation.allow_truncate``. pytest-django's transactional tests flush the whole database with one
TRUNCATE between tests, so every test connection to PostgreSQL sets it as soon as it is opened.
Tests that prove TRUNCATE is refused turn it off with ``SET LOCAL`` inside their transaction.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created


def allow_ledger_truncate(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET compensation.allow_truncate = 'on'")


connection_created.connect(allow_ledger_truncate, dispatch_uid="tests.compensation.allow_ledger_truncate")
