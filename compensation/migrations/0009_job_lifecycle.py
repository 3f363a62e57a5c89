"""The shared job lifecycle (registry.jobs) on manifests, settlements, distributions and exports.

A settlement that fails after its statements are written keeps its period closed (they stand for the
period's frozen entries), so the books are closed by every settlement that is running, settled or past its
statements step, whatever its status.
"""

from django.conf import settings
from django.db import migrations, models

_PERIOD_OPEN = """
CREATE OR REPLACE FUNCTION compensation_period_open() RETURNS trigger AS $$
DECLARE
    closed record;
BEGIN
    SELECT id, status, period_start, period_end INTO closed FROM compensation_settlement
     WHERE status IN ('running', 'settled') OR step <> ''
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
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_PERIOD_OPEN, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            _PERIOD_OPEN.replace("WHERE status IN ('running', 'settled') OR step <> ''", "WHERE status IN ('running', 'settled')"),
            params=None,
        )


class Migration(migrations.Migration):

    dependencies = [
        ('compensation', '0008_manifest_line_cheaper_writes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='export',
            name='claimed_by',
            field=models.CharField(blank=True, db_default='', default='', max_length=200, verbose_name='worker'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='claimed_by',
            field=models.CharField(blank=True, db_default='', default='', max_length=200, verbose_name='worker'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='claimed_by',
            field=models.CharField(blank=True, db_default='', default='', max_length=200, verbose_name='worker'),
        ),
        migrations.AddField(
            model_name='usagemanifest',
            name='claimed_by',
            field=models.CharField(blank=True, db_default='', default='', max_length=200, verbose_name='worker'),
        ),
        migrations.RemoveConstraint(
            model_name='marketsharedistribution',
            name='distribution_status',
        ),
        migrations.AddField(
            model_name='export',
            name='attempts',
            field=models.PositiveIntegerField(db_default=0, default=0, verbose_name='attempts'),
        ),
        migrations.AddField(
            model_name='export',
            name='enqueued_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='queued at'),
        ),
        migrations.AddField(
            model_name='export',
            name='failure_code',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='failure code'),
        ),
        migrations.AddField(
            model_name='export',
            name='failure_detail',
            field=models.TextField(blank=True, db_default='', default='', help_text='For staff: the error behind the failure.', verbose_name='failure detail'),
        ),
        migrations.AddField(
            model_name='export',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='last heartbeat'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='attempts',
            field=models.PositiveIntegerField(db_default=0, default=0, verbose_name='attempts'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='enqueued_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='queued at'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='failure_code',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='failure code'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='failure_detail',
            field=models.TextField(blank=True, db_default='', default='', help_text='For staff: the error behind the failure.', verbose_name='failure detail'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='failure_reason',
            field=models.TextField(blank=True, verbose_name='failure reason'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='last heartbeat'),
        ),
        migrations.AddField(
            model_name='marketsharedistribution',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='started at'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='attempts',
            field=models.PositiveIntegerField(db_default=0, default=0, verbose_name='attempts'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='enqueued_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='queued at'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='failure_code',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='failure code'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='failure_detail',
            field=models.TextField(blank=True, db_default='', default='', help_text='For staff: the error behind the failure.', verbose_name='failure detail'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='finished_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='finished at'),
        ),
        migrations.AddField(
            model_name='settlement',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='last heartbeat'),
        ),
        migrations.AddField(
            model_name='usagemanifest',
            name='attempts',
            field=models.PositiveIntegerField(db_default=0, default=0, verbose_name='attempts'),
        ),
        migrations.AddField(
            model_name='usagemanifest',
            name='enqueued_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='queued at'),
        ),
        migrations.AddField(
            model_name='usagemanifest',
            name='failure_code',
            field=models.CharField(blank=True, db_default='', default='', max_length=64, verbose_name='failure code'),
        ),
        migrations.AddField(
            model_name='usagemanifest',
            name='failure_detail',
            field=models.TextField(blank=True, db_default='', default='', help_text='For staff: the error behind the failure.', verbose_name='failure detail'),
        ),
        migrations.AddField(
            model_name='usagemanifest',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True, verbose_name='last heartbeat'),
        ),
        migrations.AlterField(
            model_name='marketsharedistribution',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=16, verbose_name='status'),
        ),
        migrations.AddConstraint(
            model_name='marketsharedistribution',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'running', 'done', 'failed'])), name='distribution_status'),
        ),
        migrations.RunPython(forward, backward),
    ]
