"""URL-prefix refusals are keyed by the canonical URL form (issue 15), as registry 0006 re-keyed the identifiers.

Each URL-prefix refusal's ``url_prefix`` and ``url_host`` take their canonical form (``url_canonical`` of the
stored, already normalized prefix); the change is audited per refusal (``optout.refusal.rekeyed``, with the prefix
before and after), since refusals are otherwise never edited: PostgreSQL's append-only trigger is set aside for
these updates only, inside this migration's transaction. Then the status projection is rebuilt from the events
(today's code, as migration 0003 does): the old keys' and prefixes' segments close and the canonical ones open, each
with its change in the feed, so ``status_check`` reports no difference. Undoing it keeps the canonical prefixes.
"""

from typing import Any
from urllib.parse import urlsplit

from django.db import migrations
from django.utils import timezone

MIGRATION = "optout.0008_canonical_url_prefixes"


def _rekey_prefixes(apps: Any, schema_editor: Any) -> None:
    from registry.identifiers import url_canonical

    refusal_model = apps.get_model("optout", "Refusal")
    event_model = apps.get_model("registry", "AuditEvent")
    changed = []
    for pk, prefix, host in refusal_model.objects.filter(scope="url_prefix").values_list(
        "pk", "url_prefix", "url_host"
    ):
        canonical = url_canonical(prefix)
        canonical_host = urlsplit(canonical).hostname or ""
        if (canonical, canonical_host) != (prefix, host):
            changed.append((pk, prefix, host, canonical, canonical_host))
    if changed:
        postgres = schema_editor.connection.vendor == "postgresql"
        if postgres:
            schema_editor.execute("ALTER TABLE optout_refusal DISABLE TRIGGER optout_refusal_append_only")
        for pk, _prefix, _host, canonical, canonical_host in changed:
            refusal_model.objects.filter(pk=pk).update(url_prefix=canonical, url_host=canonical_host)
        if postgres:
            schema_editor.execute("ALTER TABLE optout_refusal ENABLE TRIGGER optout_refusal_append_only")
        now = timezone.now()
        event_model.objects.bulk_create(
            [
                event_model(
                    code="optout.refusal.rekeyed",
                    created_at=now,
                    object_type="optout.refusal",
                    object_id=str(pk),
                    data={
                        "url_prefix_before": prefix,
                        "url_prefix": canonical,
                        "url_host": canonical_host,
                        "migration": MIGRATION,
                    },
                )
                for pk, prefix, _host, canonical, canonical_host in changed
            ]
        )
    # The projection is derived state: rebuilt when there is anything to project (as migration 0003 does).
    if not (apps.get_model("registry", "Work").objects.exists() or refusal_model.objects.exists()):
        return
    from optout.status.services import status_rebuild

    status_rebuild()


class Migration(migrations.Migration):
    dependencies = [
        ("optout", "0007_segment_work_brief"),
        ("registry", "0009_canonical_urls"),
    ]

    operations = [migrations.RunPython(_rekey_prefixes, migrations.RunPython.noop)]
