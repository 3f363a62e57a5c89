"""Ledger invariants the database itself enforces (PostgreSQL; SQLite has the CHECK constraints only).

- Every entry's lines sum to zero and there are at least two of them. Constraint triggers on lines
  (and on entries, for an entry without any line) are DEFERRABLE INITIALLY DEFERRED, so they run at
  COMMIT, when all lines of an entry are in, and an unbalanced transaction fails as a whole.
- Entries and lines are append-only: UPDATE and DELETE (per row) and TRUNCATE (per statement) are
  refused. Tariffs refuse UPDATE and DELETE.

TRUNCATE has one escape hatch, ``SET compensation.allow_truncate = 'on'`` in the session. It exists for
the test suite alone: pytest-django empties the database between transactional tests with one
``TRUNCATE`` of every table (Django's ``flush``), which would otherwise fail for the whole suite.
``tests/compensation/pg_guards.py`` sets it on test connections; nothing in the application does, and
only a session that says so explicitly can truncate. Row triggers do not fire on TRUNCATE, and the
flush deletes no rows one by one, so UPDATE and DELETE need no such hatch.
"""

from django.db import migrations

LEDGER_TABLES = ("compensation_ledgerentry", "compensation_ledgerline")

PG_FORWARD = (
    """
CREATE FUNCTION compensation_entry_balanced() RETURNS trigger AS $$
DECLARE
    checked_entry bigint;
    line_count bigint;
    line_total numeric;
BEGIN
    IF TG_TABLE_NAME = 'compensation_ledgerentry' THEN
        checked_entry := NEW.id;
    ELSE
        checked_entry := NEW.entry_id;
    END IF;
    SELECT COUNT(*), COALESCE(SUM(amount_micro), 0) INTO line_count, line_total
      FROM compensation_ledgerline WHERE entry_id = checked_entry;
    IF line_count < 2 OR line_total <> 0 THEN
        RAISE EXCEPTION 'unbalanced ledger entry %: % line(s) summing to %', checked_entry, line_count, line_total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_entry_balanced';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- On lines: an entry that gets lines (now or in any later transaction) must balance.
CREATE CONSTRAINT TRIGGER compensation_entry_balanced
    AFTER INSERT ON compensation_ledgerline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION compensation_entry_balanced();

-- On entries: an entry committed without any line is refused too.
CREATE CONSTRAINT TRIGGER compensation_entry_has_lines
    AFTER INSERT ON compensation_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION compensation_entry_balanced();

CREATE FUNCTION compensation_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('compensation.allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
    + "".join(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION compensation_append_only();\n"
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION compensation_append_only();\n"
        for table in LEDGER_TABLES
    )
    + "CREATE TRIGGER compensation_tariff_append_only BEFORE UPDATE OR DELETE ON compensation_tariff "
    "FOR EACH ROW EXECUTE FUNCTION compensation_append_only();\n"
)

PG_BACKWARD = (
    "DROP TRIGGER IF EXISTS compensation_tariff_append_only ON compensation_tariff;\n"
    + "".join(
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};\n"
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};\n"
        for table in LEDGER_TABLES
    )
    + """
DROP FUNCTION IF EXISTS compensation_append_only();
DROP TRIGGER IF EXISTS compensation_entry_has_lines ON compensation_ledgerentry;
DROP TRIGGER IF EXISTS compensation_entry_balanced ON compensation_ledgerline;
DROP FUNCTION IF EXISTS compensation_entry_balanced();
"""
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("compensation", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
