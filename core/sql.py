"""What hand-written SQL shares across the apps: constants taken from the ``TextChoices``, and the one SQL
function whose name differs between PostgreSQL and SQLite.

Where the code asks which database it runs on (``connection.vendor``), and nowhere else:

- the seams of the hot paths, each chosen once per connection and held to one table of cases by a differential
  test: the lookup's ``lookup_engine_for`` (``optout.lookup_engines``), the usage manifests'
  ``usage_engine_for`` (``compensation.usage.services``, deciding by ``compensation.usage.decisions``), the
  ledger's ``ledger_writer_for`` (``compensation.ledger.services``) and the work search's ``search_engine_for``
  (``registry.search``: pg_trgm and bigram indexes, or LIKE; ``tests/registry/test_search.py`` holds both to one
  table of cases);
- what those seams are built on: ``core.locks.advisory_lock`` (PostgreSQL's advisory locks; SQLite has one writer
  at a time), ``core.lookups.AnyOf`` (one array literal instead of a placeholder per value) and
  ``json_array_elements`` below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db.backends.base.base import BaseDatabaseWrapper

_PLAIN = re.compile(r"[A-Za-z0-9_.:-]+")


def sql_literal(value: str) -> str:
    """``value`` (a status, outcome, kind, ...) as an SQL string literal, for SQL formatted once at import.

    Only plain words are accepted, so the literal never needs escaping: anything else is a programming error.
    """
    text = str(value)
    if not _PLAIN.fullmatch(text):
        raise ValueError(f"not a plain SQL constant: {text!r}")
    return f"'{text}'"


def sql_literals(values: Iterable[str]) -> str:
    """Several constants as the inside of an SQL ``IN (...)`` list."""
    return ", ".join(sql_literal(value) for value in values)


def json_array_elements(connection: BaseDatabaseWrapper) -> str:
    """The table function that gives each element of a JSON array as ``value``: PostgreSQL's
    ``jsonb_array_elements``, SQLite's ``json_each`` (which reads a column as JSON text)."""
    return "jsonb_array_elements" if connection.vendor == "postgresql" else "json_each"
