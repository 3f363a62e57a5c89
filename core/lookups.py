"""``field__any_of={...}``: ``IN`` that binds a whole set as one PostgreSQL array literal.

A 10,000-item lookup would otherwise send 10,000 placeholders that Django, psycopg and the
planner each process one by one; ``= ANY('{...}'::type[])`` sends one string. Pass a set or
frozenset: Django walks lists and tuples value by value before a lookup sees them. SQLite keeps
the plain ``IN``.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Lookup
from django.db.models.sql.compiler import SQLCompiler


def array_literal(values: list[Any]) -> tuple[str, str]:
    """A PostgreSQL array literal for ints or strings, and the type to cast it to."""
    if all(isinstance(value, int) for value in values):
        return "{" + ",".join(map(str, values)) + "}", "bigint[]"
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}", "text[]"


@Field.register_lookup
class AnyOf(Lookup[Any]):
    lookup_name = "any_of"
    prepare_rhs = False

    # The stubs' params are a tuple of str and int; Django passes any list of values the driver adapts (dates too).
    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:  # type: ignore[override]
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            return "1 = 0", list(lhs_params)
        if connection.vendor == "postgresql":
            literal, array_type = array_literal(values)
            return f"{lhs} = ANY(%s::{array_type})", [*lhs_params, literal]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
