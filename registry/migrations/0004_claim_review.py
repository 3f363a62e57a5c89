"""Claims gain the state ``in_review``: only claims staff accepted for review can dispute a work (issue 12).

Until now every pending claim counted, so anyone's unreviewed claim on someone else's verified work disputed
it at once and sent its next uses to escrow. The data step changes no work's status and moves no money: the
pending claims of works disputed today are the ones those disputes rest on, so they become ``in_review``
(recorded as ``registry.claim.review_opened`` by this migration) and the disputes stay open until staff verify
or reject, as before. Pending claims of other works stay pending.
"""

from typing import Any

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


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
                code="registry.claim.review_opened",
                created_at=now,
                object_type="registry.ownershipclaim",
                object_id=str(pk),
                data={"work": work, "holder": holder, "migration": "registry.0004_claim_review"},
            )
            for pk, work, holder in claims
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_work_import_language"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
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
        migrations.RunPython(_disputed_claims_in_review, migrations.RunPython.noop),
    ]
