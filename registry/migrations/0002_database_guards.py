"""Invariants the database itself enforces.

- Verified shares of a work never sum above 10000 basis points (PostgreSQL and SQLite).
- The audit log is append-only: UPDATE and DELETE are refused (PostgreSQL).
"""

from django.db import migrations

PG_FORWARD = """
CREATE FUNCTION registry_claim_share_cap() RETURNS trigger AS $$
DECLARE
    verified_total bigint;
BEGIN
    IF NEW.status = 'verified' THEN
        -- Serialise concurrent verifications of one work: each sees the other's committed share.
        PERFORM 1 FROM registry_work WHERE id = NEW.work_id FOR UPDATE;
        SELECT COALESCE(SUM(share_bp), 0) INTO verified_total
          FROM registry_ownershipclaim WHERE work_id = NEW.work_id AND status = 'verified';
        IF verified_total > 10000 THEN
            RAISE EXCEPTION 'overclaim: verified shares of work % would sum to % basis points',
                NEW.work_id, verified_total
                USING ERRCODE = 'check_violation', CONSTRAINT = 'registry_claim_share_cap';
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER registry_claim_share_cap
    AFTER INSERT OR UPDATE OF status, share_bp ON registry_ownershipclaim
    FOR EACH ROW EXECUTE FUNCTION registry_claim_share_cap();

CREATE FUNCTION registry_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER registry_audit_append_only
    BEFORE UPDATE OR DELETE ON registry_auditevent
    FOR EACH ROW EXECUTE FUNCTION registry_audit_append_only();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS registry_audit_append_only ON registry_auditevent;
DROP FUNCTION IF EXISTS registry_audit_append_only();
DROP TRIGGER IF EXISTS registry_claim_share_cap ON registry_ownershipclaim;
DROP FUNCTION IF EXISTS registry_claim_share_cap();
"""

SQLITE_FORWARD = [
    f"""
    CREATE TRIGGER registry_claim_share_cap_{event.lower()}
    AFTER {event} ON registry_ownershipclaim
    WHEN NEW.status = 'verified'
    BEGIN
        SELECT RAISE(ABORT, 'overclaim: verified shares of a work would exceed 10000 basis points')
        WHERE (SELECT SUM(share_bp) FROM registry_ownershipclaim
               WHERE work_id = NEW.work_id AND status = 'verified') > 10000;
    END;
    """
    for event in ("INSERT", "UPDATE")
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS registry_claim_share_cap_insert;",
    "DROP TRIGGER IF EXISTS registry_claim_share_cap_update;",
]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
