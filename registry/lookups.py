"""``field__any_of=[...]``: ``IN`` that binds a whole list as one PostgreSQL array parameter.

A 10,000-item lookup would otherwise send 10,000 placeholders that Django, psycopg and the
planner each process one by one; ``= ANY(%s)`` sends one. SQLite keeps the plain ``IN``.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Lookup
from django.db.models.sql.compiler import SQLCompiler


@Field.register_lookup
class AnyOf(Lookup[Any]):
    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:  # type: ignore[override]
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            return "1 = 0", list(lhs_params)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
