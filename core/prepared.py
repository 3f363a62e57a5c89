"""Statements PostgreSQL prepares once per connection and runs again without parsing or planning them.

Django binds values in the client and turns psycopg's automatic preparing off, so every statement it sends is
parsed and planned anew. For the statements on the hottest paths (a lookup of one key, the transparency log's leaf
written inside every status change) that work costs more than running them; these run through psycopg's
server-binding cursor, which prepares a statement once it has run ``PREPARE_THRESHOLD`` times on the connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

# psycopg's own default: a statement run this many times on a connection is prepared.
PREPARE_THRESHOLD = 5


class _PreparingCursor(psycopg.Cursor[Any]):
    """Binds values in the server and prepares every statement it runs (Django turns automatic preparing off)."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        return super().execute(query, params, prepare=True, binary=binary)


@contextmanager
def prepared_cursor(connection: BaseDatabaseWrapper) -> Iterator[CursorWrapper]:
    """A cursor whose statements PostgreSQL prepares, wrapped as Django wraps its own (the same error translation,
    execute wrappers and query log). PostgreSQL only; placeholders are ``%s`` or ``%(name)s`` as usual, but values
    are typed by the server, so give a placeholder a cast where its type is not plain (``%s::bigint``)."""
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django turns psycopg's preparing off (None), which also ignores prepare=True; its own cursors bind in the
        # client and never prepare, whatever this says.
        raw.prepare_threshold = PREPARE_THRESHOLD
    # django-stubs type these wrappers' argument as a wrapper; Django passes the driver's cursor, as here.
    raw_cursor: Any = _PreparingCursor(raw)
    logged = connection.queries_logged
    wrapped = connection.make_debug_cursor(raw_cursor) if logged else connection.make_cursor(raw_cursor)
    with wrapped as cursor:
        yield cursor


def prepared_execute(connection: BaseDatabaseWrapper, sql: str, params: Any, *, binary: bool = False) -> None:
    """Run one statement that returns no rows, prepared, on a cursor kept with the connection.

    For a statement inside every status change: Django's cursor wrapper and a new driver cursor per call cost
    about as much as the statement's round trip (bench/log.py), so the driver's cursor is made once per connection
    and errors are translated as Django translates them. With queries logged (DEBUG), it goes through
    ``prepared_cursor`` so that it shows in the log like any other. ``binary`` sends the values in PostgreSQL's
    binary format (bytes as they are, not hex-encoded).
    """
    if connection.queries_logged:
        with prepared_cursor(connection) as logged_cursor:
            # Django's wrappers take no format; text is as correct, only larger for bytes.
            logged_cursor.execute(sql, params)
        return
    connection.ensure_connection()
    raw = connection.connection
    cursor: _PreparingCursor | None = getattr(raw, "registry_prepared_cursor", None)
    if cursor is None:
        if raw.prepare_threshold is None:
            raw.prepare_threshold = PREPARE_THRESHOLD
        cursor = raw.registry_prepared_cursor = _PreparingCursor(raw)
    with connection.wrap_database_errors:
        cursor.execute(sql, params, binary=binary)
