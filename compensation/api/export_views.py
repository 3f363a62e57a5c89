"""Downloads of statements, consolidated statements and invoices (CSV, XLSX, PDF): small ones in the request, large
ones queued."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.utils.translation import get_language
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from compensation.documents import exports
from compensation.documents import selectors as documents_selectors
from compensation.documents import services as documents_services
from compensation.models import EXPORT_JOB, Export, ExportStatus
from core.api.fields import failure_reason_field
from core.api.views import RegistryAPIView
from core.jobs import job_retry


class ExportOutput(serializers.ModelSerializer[Export]):
    url = serializers.SerializerMethodField()
    download = serializers.SerializerMethodField()
    failure_reason = failure_reason_field()

    class Meta:
        model = Export
        fields = [
            "id",
            "url",
            "document",
            "object_id",
            "format",
            "language",
            "status",
            "lines",
            "download",
            "failure_code",
            "failure_reason",
        ]
        read_only_fields = fields

    def get_url(self, obj: Export) -> str:
        return f"/api/v1/exports/{obj.pk}"

    def get_download(self, obj: Export) -> str | None:
        return f"/api/v1/exports/{obj.pk}/file" if obj.status == ExportStatus.DONE else None


def _attachment(body: bytes, *, fmt: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=exports.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Language"] = get_language() or settings.LANGUAGE_CODE
    return response


class _DocumentExportView(RegistryAPIView):
    document: str = ""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        # ?format= names the file format, which the view renders itself: DRF's negotiation must not read it
        # as a renderer (it would answer 404). Errors and the 202 body are JSON.
        return renderers.JSONRenderer(), "application/json"

    def export(self, request: Request, object_id: int) -> HttpResponse | Response:
        actor = self.actor()
        fmt = exports.export_format_parse(request.query_params.get("format"))
        exporter = documents_selectors.document_exporter(actor=actor, document=self.document, object_id=object_id)
        if exporter.line_count() <= settings.EXPORT_SYNC_MAX_LINES:
            return _attachment(exports.render_bytes(exporter, fmt), fmt=fmt, filename=exporter.filename(fmt))
        export = documents_services.export_request(
            actor=actor,
            document=self.document,
            object_id=object_id,
            fmt=fmt,
            language=get_language() or settings.LANGUAGE_CODE,
        )
        export.refresh_from_db()
        response = Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/exports/{export.pk}"
        return response


_FORMAT = OpenApiParameter("format", str, enum=["csv", "xlsx", "pdf"], required=True)
# The file in each format, as its media type (without parameters: the schema names the media type alone).
_FILES: dict[Any, Any] = {
    (200, content_type.split(";")[0]): OpenApiTypes.BINARY for content_type in exports.CONTENT_TYPES.values()
}


class StatementExportView(_DocumentExportView):
    document = exports.ExportDocument.STATEMENT

    @extend_schema(
        parameters=[_FORMAT],
        responses={**_FILES, 202: ExportOutput},
        summary="A statement as CSV, XLSX or PDF in the reader's language; a large one is queued (202)",
    )
    def get(self, request: Request, statement_pk: int) -> HttpResponse | Response:
        return self.export(request, statement_pk)


class ConsolidatedStatementExportView(_DocumentExportView):
    document = exports.ExportDocument.CONSOLIDATED

    @extend_schema(
        parameters=[_FORMAT],
        responses={**_FILES, 202: ExportOutput},
        summary=(
            "A consolidated statement as CSV, XLSX or PDF in the reader's language, a section per member; a large "
            "one is queued (202)"
        ),
    )
    def get(self, request: Request, consolidated_pk: int) -> HttpResponse | Response:
        return self.export(request, consolidated_pk)


class InvoiceExportView(_DocumentExportView):
    document = exports.ExportDocument.INVOICE

    @extend_schema(
        parameters=[_FORMAT],
        responses={**_FILES, 202: ExportOutput},
        summary="An invoice as CSV, XLSX or PDF in the reader's language; a large one is queued (202)",
    )
    def get(self, request: Request, invoice_pk: int) -> HttpResponse | Response:
        return self.export(request, invoice_pk)


class ExportDetailView(RegistryAPIView):
    @extend_schema(responses=ExportOutput, summary="A queued export's status, and its download once done")
    def get(self, request: Request, export_pk: int) -> Response:
        export = documents_selectors.export_get_for_actor(actor=self.actor(), export_pk=export_pk)
        return Response(ExportOutput(export).data)


class ExportRetryView(RegistryAPIView):
    @extend_schema(request=None, responses={202: ExportOutput}, summary="Queue a failed export again (staff)")
    def post(self, request: Request, export_pk: int) -> Response:
        export = job_retry(actor=self.actor(), kind=EXPORT_JOB, job_id=export_pk)
        return Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)


class ExportFileView(RegistryAPIView):
    @extend_schema(
        responses={**_FILES, 202: ExportOutput},
        summary="A finished export's file; if storage lost it, the export is made again (202, poll it)",
    )
    def get(self, request: Request, export_pk: int) -> FileResponse | Response:
        export = documents_selectors.export_get_for_actor(actor=self.actor(), export_pk=export_pk)
        name = export.file.name or ""
        handle = documents_services.export_file_open(export=export)
        if handle is None:
            response = Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)
            response["Location"] = f"/api/v1/exports/{export.pk}"
            return response
        return FileResponse(
            handle,
            as_attachment=True,
            filename=name.rsplit("/", 1)[-1],
            content_type=exports.CONTENT_TYPES[export.format],
        )
