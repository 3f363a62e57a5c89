"""Leaves queued in their events' transactions and numbered afterwards by the sequencer (issue 16).

Numbering a leaf inside its event's transaction held the log head's row lock until commit, so every status change
waited for the one before it. Now the event's transaction only inserts into ``optout_logqueuedleaf``; the sequencer
moves queued leaves into ``optout_logentry`` under the checkpoint lock.

PostgreSQL holds the queue to that: a queued leaf is never changed, leaves the queue only once the log holds the
same leaf (same event, kind and bytes), and the queue is never truncated (the test suite's
``compensation.allow_truncate`` hatch aside). So an accepted event's leaf is never lost on its way into the log.
"""

from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

PG_FORWARD = """
CREATE FUNCTION optout_logqueuedleaf_into_log() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'a queued log leaf is never changed' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM optout_logentry
        WHERE event_id = OLD.event_id AND kind = OLD.kind AND data = OLD.data
    ) THEN
        RAISE EXCEPTION 'a queued log leaf leaves the queue only into the log' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER optout_logqueuedleaf_into_log BEFORE UPDATE OR DELETE ON optout_logqueuedleaf
    FOR EACH ROW EXECUTE FUNCTION optout_logqueuedleaf_into_log();
CREATE TRIGGER optout_logqueuedleaf_no_truncate BEFORE TRUNCATE ON optout_logqueuedleaf
    FOR EACH STATEMENT EXECUTE FUNCTION optout_log_no_truncate();
"""

PG_BACKWARD = """
DROP TRIGGER IF EXISTS optout_logqueuedleaf_no_truncate ON optout_logqueuedleaf;
DROP TRIGGER IF EXISTS optout_logqueuedleaf_into_log ON optout_logqueuedleaf;
DROP FUNCTION IF EXISTS optout_logqueuedleaf_into_log();
"""


def _guards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)


def _guards_undo(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("optout", "0010_mandates_music"),
        ("registry", "0014_default_share_kinds"),
    ]

    operations = [
        migrations.CreateModel(
            name="LogQueuedLeaf",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("kind", models.CharField(max_length=40, verbose_name="kind")),
                ("data", models.BinaryField(verbose_name="canonical JSON")),
                ("due_at", models.DateTimeField(blank=True, null=True, verbose_name="takes effect at")),
                ("queued_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="queued at")),
                (
                    "event",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="registry.auditevent",
                        verbose_name="event",
                    ),
                ),
            ],
            options={
                "verbose_name": "queued log leaf",
                "verbose_name_plural": "queued log leaves",
                "constraints": [
                    models.UniqueConstraint(fields=("event", "kind"), name="logqueuedleaf_one_per_event_kind")
                ],
            },
        ),
        migrations.RunPython(_guards, _guards_undo),
    ]
