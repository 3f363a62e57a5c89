"""Cheaper outcome rows: the (manifest, dedupe) index goes, and the manifest's foreign key is checked per statement.

- The index served only the check "was this use reported by an earlier chunk", and kept a random-order B-tree
  up to date for every outcome row. The SQL engine keeps the dedupe keys it has seen in a session-local table
  instead (``compensation/usage_sql.py``), rebuilt from the outcome rows when a task resumes.
- The foreign key to the manifest ran a query (and took a row lock) for every outcome row. On PostgreSQL
  triggers keep the same rule once per statement: rows must name existing manifests, which they lock FOR KEY
  SHARE as the foreign key did; a row never moves to another manifest; a manifest with rows is neither deleted,
  renumbered nor truncated away from them.
"""

import django.db.models.deletion
from django.db import migrations, models

PG_FORWARD = """
CREATE FUNCTION compensation_manifestline_manifest_exists() RETURNS trigger AS $$
DECLARE
    named bigint;
    found bigint;
BEGIN
    SELECT count(DISTINCT manifest_id) INTO named FROM new_lines;
    SELECT count(*) INTO found FROM (
        SELECT m.id FROM compensation_usagemanifest m
         WHERE m.id IN (SELECT manifest_id FROM new_lines)
           FOR KEY SHARE OF m
    ) locked;
    IF found <> named THEN
        RAISE EXCEPTION 'a manifest line names a manifest that does not exist'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'compensation_manifestline_manifest';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_manifestline_manifest_exists AFTER INSERT ON compensation_manifestline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION compensation_manifestline_manifest_exists();

CREATE FUNCTION compensation_manifestline_manifest_kept() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'compensation_manifestline' THEN
        RAISE EXCEPTION 'a manifest line stays with its manifest'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'compensation_manifestline_manifest';
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        -- After the statement: fine if the outcome rows were truncated with their manifests.
        IF EXISTS (SELECT 1 FROM compensation_manifestline) THEN
            RAISE EXCEPTION 'compensation_usagemanifest has outcome rows: TRUNCATE refused'
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'compensation_manifestline_manifest';
        END IF;
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM compensation_manifestline WHERE manifest_id = OLD.id) THEN
        RAISE EXCEPTION 'manifest % has outcome rows: % refused', OLD.id, TG_OP
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'compensation_manifestline_manifest';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_manifestline_manifest_fixed BEFORE UPDATE OF manifest_id ON compensation_manifestline
    FOR EACH ROW WHEN (NEW.manifest_id IS DISTINCT FROM OLD.manifest_id)
    EXECUTE FUNCTION compensation_manifestline_manifest_kept();
CREATE TRIGGER compensation_usagemanifest_lines_kept BEFORE DELETE ON compensation_usagemanifest
    FOR EACH ROW EXECUTE FUNCTION compensation_manifestline_manifest_kept();
CREATE TRIGGER compensation_usagemanifest_lines_renumbered BEFORE UPDATE OF id ON compensation_usagemanifest
    FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id) EXECUTE FUNCTION compensation_manifestline_manifest_kept();
CREATE TRIGGER compensation_usagemanifest_lines_truncated AFTER TRUNCATE ON compensation_usagemanifest
    FOR EACH STATEMENT EXECUTE FUNCTION compensation_manifestline_manifest_kept();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS compensation_usagemanifest_lines_truncated ON compensation_usagemanifest;
DROP TRIGGER IF EXISTS compensation_usagemanifest_lines_renumbered ON compensation_usagemanifest;
DROP TRIGGER IF EXISTS compensation_usagemanifest_lines_kept ON compensation_usagemanifest;
DROP TRIGGER IF EXISTS compensation_manifestline_manifest_fixed ON compensation_manifestline;
DROP FUNCTION IF EXISTS compensation_manifestline_manifest_kept();
DROP TRIGGER IF EXISTS compensation_manifestline_manifest_exists ON compensation_manifestline;
DROP FUNCTION IF EXISTS compensation_manifestline_manifest_exists();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("compensation", "0007_exports")]

    operations = [
        migrations.RemoveIndex(model_name="manifestline", name="manifest_line_dedupe_idx"),
        migrations.AlterField(
            model_name="manifestline",
            name="manifest",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lines",
                to="compensation.usagemanifest",
                verbose_name="manifest",
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
