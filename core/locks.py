"""PostgreSQL advisory locks held until the end of the current transaction."""

from __future__ import annotations

from django.db import connection


def advisory_lock(name: str, *, shared: bool = False) -> None:
    """Take the transaction-level advisory lock called ``name`` (shared or exclusive); it is released at
    commit or rollback. SQLite runs one writing transaction at a time, so there it is a no-op."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtext(%s))", [name])
