"""Documents' reads: the exporter of a document an actor may read, and the exports of those documents.

The staff reports, also reads, are ``compensation.documents.reports``.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from compensation.documents.exports import (
    ConsolidatedStatementExporter,
    ExportDocument,
    Exporter,
    InvoiceExporter,
    StatementExporter,
)
from compensation.models import Export
from compensation.settlement import selectors as settlement_selectors
from core.actors import Actor
from core.errors import NotFound


def document_exporter(*, actor: Actor, document: str, object_id: int) -> Exporter:
    """The exporter of a statement, consolidated statement or invoice the actor may read (the selectors decide;
    otherwise 404)."""
    if document == ExportDocument.STATEMENT:
        return StatementExporter(
            statement=settlement_selectors.statement_get_for_actor(actor=actor, statement_pk=object_id)
        )
    if document == ExportDocument.CONSOLIDATED:
        return ConsolidatedStatementExporter(
            consolidated=settlement_selectors.consolidated_get_for_actor(actor=actor, consolidated_pk=object_id)
        )
    if document == ExportDocument.INVOICE:
        return InvoiceExporter(invoice=settlement_selectors.invoice_get_for_actor(actor=actor, invoice_pk=object_id))
    raise NotFound(_("No such document."))


def export_get_for_actor(*, actor: Actor, export_pk: int) -> Export:
    """An export whose document the actor may read."""
    export = Export.objects.filter(pk=export_pk).first()
    if export is None or export.object_id is None:
        raise NotFound(_("No such export."))
    document_exporter(actor=actor, document=export.document, object_id=export.object_id)
    return export
