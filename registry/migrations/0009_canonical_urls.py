"""URL identifiers are keyed by their canonical form (issue 15): the data step re-keys the stored ones.

Each URL identifier keeps its stored spelling in ``spelling`` and takes its canonical key
(``registry.identifiers.url_canonical``, a function of the text alone: the stored values are already normalized).
Where several works' URLs become one key, the earliest registered keeps it and each later one becomes an
``IdentifierConflict`` holding its spelling: nothing is deleted without being kept there, the key stays unique,
both works are marked disputed (``registry.work.disputed``), and each conflict is audited
(``registry.identifier.conflict_opened``), for staff to resolve in the admin. Undoing the migration keeps the
canonical keys (the previous normalizer reads them as the same pages) and drops the conflicts' table.
"""

from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

MIGRATION = "registry.0009_canonical_urls"


def _rekey(apps: Any, schema_editor: Any) -> None:
    from registry.identifiers import url_canonical

    identifier_model = apps.get_model("registry", "Identifier")
    conflict_model = apps.get_model("registry", "IdentifierConflict")
    work_model = apps.get_model("registry", "Work")
    event_model = apps.get_model("registry", "AuditEvent")
    rows = list(
        identifier_model.objects.filter(scheme="url")
        .order_by("created_at", "pk")
        .values_list("pk", "work_id", "value", "spelling", "created_at")
    )
    if not rows:
        return
    now = timezone.now()
    holder: dict[str, tuple[int, int]] = {}  # canonical key -> (identifier pk, work id) of its earliest registration
    rekeyed: list[tuple[int, str, str]] = []
    losers: list[tuple[int, int, str, str, Any]] = []
    for pk, work_id, value, spelling, created_at in rows:
        key = url_canonical(value)
        if key not in holder:
            holder[key] = (pk, work_id)
            rekeyed.append((pk, key, spelling or value))
        elif holder[key][1] == work_id:
            # Two spellings of one page on the same work: one identifier is enough, the other is only a spelling.
            losers.append((pk, work_id, key, spelling or value, None))
        else:
            losers.append((pk, work_id, key, spelling or value, created_at))
    conflicts = [
        conflict_model(
            scheme="url",
            value=key,
            work_id=work_id,
            kept_by_id=holder[key][1],
            spelling=spelling,
            registered_at=created_at,
            created_at=now,
        )
        for _pk, work_id, key, spelling, created_at in losers
        if created_at is not None
    ]
    # The losers go first, so that a winner's new key is free when it is written.
    identifier_model.objects.filter(pk__in=[loser[0] for loser in losers]).delete()
    for pk, key, spelling in rekeyed:
        identifier_model.objects.filter(pk=pk).update(value=key, spelling=spelling)
    created = conflict_model.objects.bulk_create(conflicts)
    disputed = sorted({c.work_id for c in conflicts} | {c.kept_by_id for c in conflicts})
    previous = dict(work_model.objects.filter(pk__in=disputed).values_list("pk", "status"))
    work_model.objects.filter(pk__in=disputed).update(status="disputed")
    events = [
        event_model(
            code="registry.identifier.conflict_opened",
            created_at=now,
            object_type="registry.identifierconflict",
            object_id=str(conflict.pk),
            data={
                "identifier": f"url:{conflict.value}",
                "work": conflict.work_id,
                "kept_by": conflict.kept_by_id,
                "spelling": conflict.spelling,
                "migration": MIGRATION,
            },
        )
        for conflict in created
    ]
    events += [
        event_model(
            code="registry.work.disputed",
            created_at=now,
            object_type="registry.work",
            object_id=str(work_id),
            data={"identifier_conflict": True, "previous_status": previous.get(work_id), "migration": MIGRATION},
        )
        for work_id in disputed
        if previous.get(work_id) != "disputed"
    ]
    events += [
        event_model(
            code="registry.work.identifier_merged",
            created_at=now,
            object_type="registry.work",
            object_id=str(work_id),
            data={"identifier": f"url:{key}", "spelling": spelling, "migration": MIGRATION},
        )
        for _pk, work_id, key, spelling, created_at in losers
        if created_at is None
    ]
    event_model.objects.bulk_create(events)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0008_work_search"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="identifier",
            name="spelling",
            field=models.CharField(blank=True, default="", max_length=2000, verbose_name="original spelling"),
        ),
        migrations.CreateModel(
            name="IdentifierConflict",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "scheme",
                    models.CharField(
                        choices=[
                            ("isbn", "ISBN"),
                            ("issn", "ISSN"),
                            ("ismn", "ISMN"),
                            ("isrc", "ISRC"),
                            ("iswc", "ISWC"),
                            ("isan", "ISAN"),
                            ("doi", "DOI"),
                            ("url", "URL"),
                            ("sha256", "SHA-256"),
                            ("iscc", "ISCC"),
                            ("uci", "UCI"),
                            ("kcc", "Korea Copyright Commission registration number"),
                        ],
                        max_length=16,
                        verbose_name="scheme",
                    ),
                ),
                ("value", models.CharField(max_length=2000, verbose_name="key")),
                (
                    "spelling",
                    models.CharField(
                        help_text="The identifier as the work had it.", max_length=2000, verbose_name="its spelling"
                    ),
                ),
                ("registered_at", models.DateTimeField(verbose_name="registered at")),
                (
                    "status",
                    models.CharField(
                        choices=[("open", "Open"), ("resolved", "Resolved")],
                        default="open",
                        max_length=16,
                        verbose_name="status",
                    ),
                ),
                (
                    "resolution",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("kept", "Key kept by the work that holds it"),
                            ("moved", "Key moved to the other work"),
                        ],
                        max_length=16,
                        verbose_name="resolution",
                    ),
                ),
                ("reason", models.TextField(blank=True, verbose_name="reason")),
                ("decided_at", models.DateTimeField(blank=True, null=True, verbose_name="decided at")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="created at")),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="decided by",
                    ),
                ),
                (
                    "kept_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="registry.work",
                        verbose_name="work that holds the key",
                    ),
                ),
                (
                    "work",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="identifier_conflicts",
                        to="registry.work",
                        verbose_name="work that lost the key",
                    ),
                ),
            ],
            options={
                "verbose_name": "identifier conflict",
                "verbose_name_plural": "identifier conflicts",
                "ordering": ["-created_at", "-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("status__in", ["open", "resolved"])), name="conflict_status_valid"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("resolution", ""), ("status", "open")),
                            models.Q(("status", "resolved"), models.Q(("resolution", ""), _negated=True)),
                            _connector="OR",
                        ),
                        name="conflict_resolution_with_status",
                    ),
                ],
            },
        ),
        migrations.RunPython(_rekey, migrations.RunPython.noop),
    ]
