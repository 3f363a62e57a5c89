"""Inserting many rows of one table at once: PostgreSQL's COPY, Django's ``bulk_create`` elsewhere.

Both take the same rows (a mapping of field ``attname`` to value per row) and give back the same complete rows, with
their primary keys, so a caller writes one table of values and never asks which database it runs on. On PostgreSQL
the primary keys are taken from the table's sequence first (one query) and the rows are streamed with COPY (one
statement): Django's ``bulk_create`` builds a model instance and prepares every value of every row in Python, which
for an import of 100,000 works costs more than the database's own work. ``tests/core/test_bulk.py`` holds the two
paths to the same rows.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models import signals
from django.db.models.base import ModelState

M = TypeVar("M", bound=models.Model)

Row = tuple[Any, ...]

# Each table's primary key sequence, asked once per process.
_SEQUENCES: dict[str, str] = {}


def _plain(value: Any) -> Any:
    # A TextChoices member (a field's default) is written as its value, as Django writes it.
    return value.value if isinstance(value, enum.Enum) else value


def _defaults(model: type[models.Model], given: set[str]) -> dict[str, Any]:
    """The default of each concrete field a row does not give (as ``bulk_create`` takes it: an empty text for a text
    field without one), computed once for the whole insert."""
    defaults: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in given:
            continue
        defaults[field.attname] = _plain(field.get_default())
    return defaults


def copy_available() -> bool:
    """Whether ``rows_insert`` streams rows by COPY: on PostgreSQL."""
    return connection.vendor == "postgresql"


def rows_insert(model: type[models.Model], rows: Iterable[Mapping[str, Any]], *, copy: bool | None = None) -> list[Row]:
    """Insert ``rows`` (each a mapping of ``attname`` to value, all with the same keys) into ``model``'s table, in
    order; return each as a complete tuple of its concrete fields' values in ``_meta.concrete_fields`` order (the
    primary key included), which ``model.from_db`` turns into an instance.

    Fields a row does not give take their default (a callable default is called once for the insert). Call it
    inside a transaction: on PostgreSQL the keys are taken before the rows are written. Triggers, checks and
    unique constraints apply as to any insert; a violation raises Django's ``IntegrityError``. ``copy`` chooses the
    path (by default ``copy_available()``); the tests write the same rows both ways.
    """
    given_rows = list(rows)
    if not given_rows:
        return []
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    given = set(given_rows[0])
    defaults = _defaults(model, given)
    fields = meta.concrete_fields
    if not (copy_available() if copy is None else copy):
        instances = model._default_manager.bulk_create([model(**defaults, **row) for row in given_rows])
        return [tuple(getattr(instance, field.attname) for field in fields) for instance in instances]
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        sequence = _SEQUENCES.get(meta.db_table)
        if sequence is None:
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [meta.db_table, pk.column])
            sequence = _SEQUENCES[meta.db_table] = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, len(given_rows)])
        ids = sorted(row[0] for row in cursor.fetchall())
        attnames = [field.attname for field in fields]
        complete = []
        for pk_value, row in zip(ids, given_rows, strict=True):
            values = {**defaults, **row}
            values[pk.attname] = pk_value
            complete.append(tuple(map(values.__getitem__, attnames)))
        # JSON columns are adapted as Django adapts them (its encoder, psycopg's Jsonb); every other value is one
        # psycopg writes as it is (text, numbers, dates, times, None).
        json_columns = [
            (index, field.encoder) for index, field in enumerate(fields) if isinstance(field, models.JSONField)
        ]
        columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
        with connection.wrap_database_errors, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as stream:
            for complete_row in complete:
                if json_columns:
                    out = list(complete_row)
                    for index, encoder in json_columns:
                        if out[index] is not None:
                            out[index] = connection.ops.adapt_json_value(out[index], encoder)
                    stream.write_row(out)
                else:
                    stream.write_row(complete_row)
    return complete


def rows_as_instances(model: type[M], rows: Sequence[Row]) -> list[M]:
    """The model instances of complete rows from ``rows_insert``, as if read from the database."""
    alias = connection.alias
    if signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model):
        return [model.from_db(alias, None, row) for row in rows]  # type: ignore[arg-type]
    # What ``from_db`` makes, without ``Model.__init__``'s walk over the fields and their descriptors for each row
    # (a tenth of an import's Python): each value is set where ``__init__`` sets it, the instance's ``__dict__``
    # under the field's ``attname``. Only without init signals, which some fields (ImageField) listen to.
    attnames = [field.attname for field in model._meta.concrete_fields]
    instances = []
    for row in rows:
        instance = model.__new__(model)
        state = instance._state = ModelState()
        state.adding, state.db = False, alias
        instance.__dict__.update(zip(attnames, row, strict=True))
        instances.append(instance)
    return instances
