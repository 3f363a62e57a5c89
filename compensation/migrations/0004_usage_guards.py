"""Database guards for usage and escrow (PostgreSQL; SQLite keeps the CHECK constraints only).

- The balance check of migration 0002 ran a full sum of its entry for every line, which is quadratic in
  the lines of an entry; a chunk of a manifest posts entries of thousands of lines. It now sums once per
  entry and (sub)transaction: only for the last line that transaction wrote (index
  ``ledgerline_entry_id_idx``). A line added to an entry by any other transaction is checked itself.
- Held money is released at most once (ledger invariant 6): an escrow account's balance may never turn
  into a debit, i.e. more released than was held. Checked at commit, for debits of escrow accounts only.
- Manifest lines (the acknowledgement rows) are never deleted; TRUNCATE follows the ledger's rule.
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION compensation_entry_balanced() RETURNS trigger AS $$
DECLARE
    checked_entry bigint;
    line_count bigint;
    line_total numeric;
    this_xmin xid;
    next_xmin xid;
BEGIN
    IF TG_TABLE_NAME = 'compensation_ledgerentry' THEN
        checked_entry := NEW.id;
    ELSE
        checked_entry := NEW.entry_id;
        -- When the entry's next line was written by the same (sub)transaction, that line (or the last one
        -- after it) checks the whole entry. A line added to an entry by another transaction is always
        -- checked itself. Two index probes, not a scan: an entry may have thousands of lines.
        SELECT this.xmin INTO this_xmin FROM compensation_ledgerline this WHERE this.id = NEW.id;
        SELECT later.xmin INTO next_xmin FROM compensation_ledgerline later
         WHERE later.entry_id = checked_entry AND later.id > NEW.id
         ORDER BY later.id
         LIMIT 1;
        IF next_xmin IS NOT NULL AND next_xmin = this_xmin THEN
            RETURN NULL;
        END IF;
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

CREATE FUNCTION compensation_escrow_not_overdrawn() RETURNS trigger AS $$
DECLARE
    balance numeric;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM compensation_account
         WHERE id = NEW.account_id AND kind IN ('escrow_unmatched', 'escrow_unclaimed', 'escrow_disputed')
    ) THEN
        RETURN NULL;
    END IF;
    SELECT COALESCE(SUM(amount_micro), 0) INTO balance FROM compensation_ledgerline WHERE account_id = NEW.account_id;
    IF balance > 0 THEN
        RAISE EXCEPTION 'escrow account % would release more than it holds (balance % micro-won)', NEW.account_id, balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'compensation_escrow_not_overdrawn';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER compensation_escrow_not_overdrawn
    AFTER INSERT ON compensation_ledgerline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.amount_micro > 0) EXECUTE FUNCTION compensation_escrow_not_overdrawn();

CREATE FUNCTION compensation_no_delete() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('compensation.allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% keeps every row: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_manifestline_no_delete BEFORE DELETE ON compensation_manifestline
    FOR EACH ROW EXECUTE FUNCTION compensation_no_delete();
CREATE TRIGGER compensation_manifestline_no_truncate BEFORE TRUNCATE ON compensation_manifestline
    FOR EACH STATEMENT EXECUTE FUNCTION compensation_no_delete();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS compensation_manifestline_no_truncate ON compensation_manifestline;
DROP TRIGGER IF EXISTS compensation_manifestline_no_delete ON compensation_manifestline;
DROP FUNCTION IF EXISTS compensation_no_delete();
DROP TRIGGER IF EXISTS compensation_escrow_not_overdrawn ON compensation_ledgerline;
DROP FUNCTION IF EXISTS compensation_escrow_not_overdrawn();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("compensation", "0003_usage_manifests")]
    operations = [migrations.RunPython(forward, backward)]
