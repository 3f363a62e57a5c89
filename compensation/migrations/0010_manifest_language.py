"""The uploader's language on usage manifests: outcome files are in it when their reader asks for none."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compensation", "0009_job_lifecycle"),
    ]

    operations = [
        migrations.AddField(
            model_name="usagemanifest",
            name="language",
            field=models.CharField(blank=True, db_default="", default="", max_length=8, verbose_name="language"),
        ),
    ]
