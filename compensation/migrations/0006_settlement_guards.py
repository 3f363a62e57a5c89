"""Database guards for settlement (PostgreSQL; SQLite keeps the CHECK constraints only).

- Two settlements never cover the same instant (an exclusion constraint on their periods).
- Periods are settled in order, and a settlement that runs closes the books through the end of its period:
  no ledger entry may be dated before that instant, except the running settlement's own payouts inside its
  period. The ledger moves late postings to the open period before they get here (compensation/periods.py);
  this refuses whatever does not go through it.
- A settlement's period, thresholds and, once settled, its status never change; statements (but for their
  payout entry, while the run posts it), invoices and their lines never change; settlements, statements,
  invoices, their lines and distributions are never deleted (TRUNCATE follows the ledger's rule).
"""

from django.db import migrations

PG_FORWARD = """
ALTER TABLE compensation_settlement ADD CONSTRAINT settlement_no_overlap
    EXCLUDE USING gist (tstzrange(period_start, period_end) WITH &&);

CREATE FUNCTION compensation_period_open() RETURNS trigger AS $$
DECLARE
    closed record;
BEGIN
    SELECT id, status, period_start, period_end INTO closed FROM compensation_settlement
     WHERE status IN ('running', 'settled')
     ORDER BY period_end DESC
     LIMIT 1;
    IF FOUND AND NEW.effective_at < closed.period_end AND NOT (
        closed.status = 'running' AND NEW.kind = 'payout' AND NEW.source ->> 'settlement' = closed.id::text
        AND NEW.effective_at >= closed.period_start
    ) THEN
        RAISE EXCEPTION 'ledger entry % is dated %, before % where settlement % closed the books',
            NEW.idempotency_key, NEW.effective_at, closed.period_end, closed.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_period_closed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_period_open BEFORE INSERT ON compensation_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION compensation_period_open();

CREATE FUNCTION compensation_settlement_fixed() RETURNS trigger AS $$
BEGIN
    IF NEW.period_start <> OLD.period_start OR NEW.period_end <> OLD.period_end
       OR NEW.payout_threshold_micro <> OLD.payout_threshold_micro OR NEW.withholding_bp <> OLD.withholding_bp THEN
        RAISE EXCEPTION 'settlement %: its period and terms never change', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_settlement_fixed';
    END IF;
    IF OLD.status = 'settled' AND NEW.status <> 'settled' THEN
        RAISE EXCEPTION 'settlement % is settled: its period stays closed', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_settlement_fixed';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_settlement_fixed BEFORE UPDATE ON compensation_settlement
    FOR EACH ROW EXECUTE FUNCTION compensation_settlement_fixed();

-- Periods are settled in order: a new one starts at or after the end of every other.
CREATE FUNCTION compensation_settlement_in_order() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM compensation_settlement WHERE period_end > NEW.period_start) THEN
        RAISE EXCEPTION 'settlement of % to %: a period ending after its start is already settled or planned',
            NEW.period_start, NEW.period_end
            USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_settlement_in_order';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_settlement_in_order BEFORE INSERT ON compensation_settlement
    FOR EACH ROW EXECUTE FUNCTION compensation_settlement_in_order();

-- A statement gets its payout entry while its settlement runs; after that, and invoices and lines
-- always, are as the run wrote them.
CREATE FUNCTION compensation_settled_fixed() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'compensation_statement' THEN
        -- Nested: OLD.settlement_id only exists on this table.
        IF EXISTS (SELECT 1 FROM compensation_settlement WHERE id = OLD.settlement_id AND status = 'running') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '% of a settlement never changes: UPDATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

_KEPT_TABLES = (
    "compensation_settlement",
    "compensation_statement",
    "compensation_statementline",
    "compensation_invoice",
    "compensation_invoiceline",
    "compensation_marketsharedistribution",
    "compensation_distributionshare",
)

PG_FORWARD += "".join(
    f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
    FOR EACH ROW EXECUTE FUNCTION compensation_settled_fixed();
"""
    for table in (
        "compensation_statement",
        "compensation_statementline",
        "compensation_invoice",
        "compensation_invoiceline",
        "compensation_distributionshare",
    )
)

PG_FORWARD += "".join(
    f"""
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION compensation_no_delete();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION compensation_no_delete();
"""
    for table in _KEPT_TABLES
)

PG_BACKWARD = "".join(
    f"""
DROP TRIGGER IF EXISTS {table}_no_update ON {table};
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
DROP TRIGGER IF EXISTS {table}_no_delete ON {table};
"""
    for table in _KEPT_TABLES
) + """
DROP FUNCTION IF EXISTS compensation_settled_fixed();
DROP TRIGGER IF EXISTS compensation_settlement_in_order ON compensation_settlement;
DROP FUNCTION IF EXISTS compensation_settlement_in_order();
DROP TRIGGER IF EXISTS compensation_settlement_fixed ON compensation_settlement;
DROP FUNCTION IF EXISTS compensation_settlement_fixed();
DROP TRIGGER IF EXISTS compensation_period_open ON compensation_ledgerentry;
DROP FUNCTION IF EXISTS compensation_period_open();
ALTER TABLE compensation_settlement DROP CONSTRAINT IF EXISTS settlement_no_overlap;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("compensation", "0005_settlements")]
    operations = [migrations.RunPython(forward, backward)]
