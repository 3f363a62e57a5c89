"""Documents' writes: queueing an export, rendering it in the background into default storage, and queueing it
again when storage has lost its file."""

from __future__ import annotations

import logging
import tempfile
from typing import IO

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from compensation.documents import exports
from compensation.documents.selectors import document_exporter
from compensation.models import EXPORT_JOB, Export, ExportStatus
from core.actors import Actor
from core.errors import NotFound
from core.jobs import job_finish, job_publish_on_commit, job_run

logger = logging.getLogger(__name__)


def export_request(*, actor: Actor, document: str, object_id: int, fmt: str, language: str) -> Export:
    """Queue the export of a document the actor may read; the same request while one is queued or done
    answers with that one (statements and invoices never change once written)."""
    document_exporter(actor=actor, document=document, object_id=object_id)
    with transaction.atomic():
        existing = (
            Export.objects.filter(document=document, object_id=object_id, format=fmt, language=language)
            .exclude(status=ExportStatus.FAILED)
            .order_by("-pk")
            .first()
        )
        if existing is not None:
            return existing
        export = Export.objects.create(
            document=document, object_id=object_id, format=fmt, language=language, requested_by=actor.person
        )
        # The outbox: published after commit; if the broker is down, the sweep publishes it later.
        job_publish_on_commit(kind=EXPORT_JOB, job_id=export.pk)
    return export


def export_file_open(*, export: Export) -> IO[bytes] | None:
    """A finished export's file, open for reading; ``None`` when storage has lost it, and then the export is
    queued again (``export`` is refreshed: it is waiting), so the reader follows it as the first time.

    Rendering again rather than answering 404: statements and invoices never change once written and their
    rows stay in the database, so the same document can always be made again, and a reader who was told
    the file is ready expects the file, not an error they cannot act on. Raises ``NotFound`` until it is done.
    """
    name = export.file.name if export.file else ""
    if export.status != ExportStatus.DONE or not name:
        raise NotFound(_("The export is not ready yet."), code="export_not_ready")
    try:
        return default_storage.open(name, "rb")
    except FileNotFoundError:
        logger.warning("Export %s: its file %s is missing from storage; rendering it again.", export.pk, name)
    with transaction.atomic():
        # Conditional on the lost file: of two readers finding it missing at once, one queues the export.
        queued = Export.objects.filter(pk=export.pk, status=ExportStatus.DONE, file=name).update(
            status=ExportStatus.PENDING,
            file="",
            started_at=None,
            finished_at=None,
            heartbeat_at=None,
            enqueued_at=None,
            attempts=0,
        )
        if queued:
            job_publish_on_commit(kind=EXPORT_JOB, job_id=export.pk)
    export.refresh_from_db()
    return None


def export_execute(*, export_id: int) -> Export | None:
    """Render a queued export into default storage. Runs again harmlessly: a finished export is left as it
    is, and when two runs race the second one's file is dropped. A failure is recorded on the export, with
    its code (the shared job lifecycle)."""
    job_run(kind=EXPORT_JOB, job_id=export_id, work=_export_render)
    return Export.objects.filter(pk=export_id).first()


def _export_render(export: Export) -> None:
    if export.object_id is None:
        raise NotFound(_("The exported document no longer exists."), code="document_missing")
    exporter = document_exporter(actor=Actor.system(), document=export.document, object_id=export.object_id)
    with translation.override(export.language), tempfile.TemporaryFile() as spool:
        exports.render(exporter, export.format, spool)
        spool.seek(0)
        name = default_storage.save(f"exports/{export.pk}/{exporter.filename(export.format)}", File(spool))
    if not job_finish(kind=EXPORT_JOB, job_id=export.pk, file=name, lines=exporter.line_count()):
        default_storage.delete(name)
