"""Claims gain the state ``in_review``: only claims staff accepted for review can dispute a work (issue 12).

Until now every pending claim counted, so anyone's unreviewed claim on someone else's verified work disputed
it at once and sent its next uses to escrow. The data step changes no work's status and moves no money: the
pending claims of works disputed today are the ones those disputes rest on, so they become ``in_review``
(recorded as ``registry.claim.accepted_for_review`` by this migration) and the disputes stay open until staff verify
or reject, as before. Pending claims of other works stay pending.
"""

from importlib import import_module
from typing import Any

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

_GUARDS = import_module("registry.migrations.0002_database_guards")


def _sqlite_share_cap_again(apps: Any, schema_editor: Any) -> None:
    # SQLite changes a check constraint by rebuilding the table, which drops the table's triggers: the
    # share cap of migration 0002 is created again on the new table. PostgreSQL alters the table in place.
    if schema_editor.connection.vendor == "sqlite":
        for statement in [*_GUARDS.SQLITE_BACKWARD, *_GUARDS.SQLITE_FORWARD]:
            schema_editor.execute(statement)


def _disputed_claims_in_review(apps: Any, schema_editor: Any) -> None:
    claim_model = apps.get_model("registry", "OwnershipClaim")
    event_model = apps.get_model("registry", "AuditEvent")
    claims = list(
        claim_model.objects.filter(status="pending", work__status="disputed").values_list("pk", "work_id", "holder_id")
    )
    if not claims:
        return
    claim_model.objects.filter(pk__in=[pk for pk, _work, _holder in claims]).update(status="in_review")
    now = timezone.now()
    event_model.objects.bulk_create(
        [
            event_model(
                code="registry.claim.accepted_for_review",
                created_at=now,
                object_type="registry.ownershipclaim",
                object_id=str(pk),
                data={"work": work, "holder": holder, "migration": "registry.0004_claim_review"},
            )
            for pk, work, holder in claims
        ]
    )


def _claims_in_review_pending(apps: Any, schema_editor: Any) -> None:
    # Undone, the state does not exist: claims under review are pending again (their works stay disputed).
    apps.get_model("registry", "OwnershipClaim").objects.filter(status="in_review").update(status="pending")


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_work_import_language"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Undoing this migration rebuilds the SQLite table once more, last: the share cap is restored after it.
        migrations.RunPython(migrations.RunPython.noop, _sqlite_share_cap_again),
        migrations.RemoveConstraint(
            model_name="ownershipclaim",
            name="claim_status_valid",
        ),
        migrations.AlterField(
            model_name="ownershipclaim",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("in_review", "Under review"),
                    ("verified", "Verified"),
                    ("rejected", "Rejected"),
                ],
                default="pending",
                max_length=16,
                verbose_name="status",
            ),
        ),
        migrations.AddConstraint(
            model_name="ownershipclaim",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["pending", "in_review", "verified", "rejected"])),
                name="claim_status_valid",
            ),
        ),
        migrations.RunPython(_sqlite_share_cap_again, _sqlite_share_cap_again),
        migrations.RunPython(_disputed_claims_in_review, _claims_in_review_pending),
    ]
