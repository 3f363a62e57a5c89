"""Statements (rights holders, and agents for their members), agents' consolidated statements and invoices (labs) of
settled periods, with their CSV, XLSX and PDF files."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_safe

from compensation.documents import exports
from compensation.documents import selectors as documents_selectors
from compensation.documents import services as documents_services
from compensation.models import ConsolidatedStatement, Export, ExportStatus, Invoice, PayoutProfile, Statement
from compensation.payments import selectors as payment_selectors
from compensation.payouts import services as payout_services
from compensation.payouts.services import PayoutDetails
from compensation.settlement import selectors as settlement_selectors
from core.errors import InvalidInput, NotFound, RegistryError
from portal.access import Portal, lab_view, password_confirm, payee_view, portal_view
from portal.form_errors import error_to_form
from portal.forms import PayoutProfileForm
from portal.views.common import paginate

FORMATS = ("pdf", "xlsx", "csv")


@payee_view
@require_safe
def statement_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    """A holder's own statements; an agent's, those of its members sent to it (a column names the member)."""
    statements = settlement_selectors.statement_list_for_actor(actor=portal.actor)
    context = {
        "page": paginate(request, statements),
        "is_agent": portal.party.is_society,
        "consolidated": settlement_selectors.consolidated_list_for_actor(actor=portal.actor).exists(),
    }
    return render(request, "portal/settlements/statements.html", context)


def _statement(portal: Portal, statement_pk: int) -> Statement:
    try:
        return settlement_selectors.statement_get_for_actor(actor=portal.actor, statement_pk=statement_pk)
    except NotFound:
        raise Http404() from None


@payee_view
@require_safe
def statement_detail(request: HttpRequest, portal: Portal, statement_pk: int) -> HttpResponse:
    statement = _statement(portal, statement_pk)
    lines = settlement_selectors.statement_lines(statement=statement).order_by("kind", "-amount_micro", "pk")
    context = {
        "statement": statement,
        "page": paginate(request, lines, per_page=50),
        "formats": FORMATS,
        "recipients": list(settlement_selectors.statement_recipients(statement=statement)),
        "own": statement.holder_id == portal.party.pk,
    }
    return render(request, "portal/settlements/statement.html", context)


# Lines shown per member on a consolidated statement's page; the member's statement page and the files have all.
CONSOLIDATED_LINES_SHOWN = 50


@payee_view
@require_safe
def consolidated_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    consolidated = settlement_selectors.consolidated_list_for_actor(actor=portal.actor)
    return render(request, "portal/settlements/consolidated_list.html", {"page": paginate(request, consolidated)})


def _consolidated(portal: Portal, consolidated_pk: int) -> ConsolidatedStatement:
    try:
        return settlement_selectors.consolidated_get_for_actor(actor=portal.actor, consolidated_pk=consolidated_pk)
    except NotFound:
        raise Http404() from None


@payee_view
@require_safe
def consolidated_detail(request: HttpRequest, portal: Portal, consolidated_pk: int) -> HttpResponse:
    """The grand totals, then a section per member (ten members a page): its lines, subtotal, withholding, net."""
    consolidated = _consolidated(portal, consolidated_pk)
    page = paginate(request, settlement_selectors.consolidated_members(consolidated=consolidated), per_page=10)
    sections = []
    for statement in page:
        lines = settlement_selectors.statement_lines(statement=statement).order_by("kind", "-amount_micro", "pk")
        shown = list(lines[: CONSOLIDATED_LINES_SHOWN + 1])
        sections.append(
            {
                "statement": statement,
                "lines": shown[:CONSOLIDATED_LINES_SHOWN],
                "more": len(shown) > CONSOLIDATED_LINES_SHOWN,
                "subtotal_micro": statement.due_micro - statement.opening_micro,
            }
        )
    context = {"consolidated": consolidated, "page": page, "sections": sections, "formats": FORMATS}
    return render(request, "portal/settlements/consolidated.html", context)


@lab_view
@require_safe
def invoice_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    invoices = payment_selectors.invoices_with_payments(settlement_selectors.invoice_list_for_actor(actor=portal.actor))
    page = paginate(request, invoices)
    rows = [(invoice, payment_selectors.invoice_amounts(invoice)) for invoice in page]
    return render(request, "portal/settlements/invoices.html", {"page": page, "rows": rows})


def _invoice(portal: Portal, invoice_pk: int) -> Invoice:
    try:
        return settlement_selectors.invoice_get_for_actor(actor=portal.actor, invoice_pk=invoice_pk)
    except NotFound:
        raise Http404() from None


@lab_view
@require_safe
def invoice_detail(request: HttpRequest, portal: Portal, invoice_pk: int) -> HttpResponse:
    invoice = _invoice(portal, invoice_pk)
    lines = settlement_selectors.invoice_lines(invoice=invoice).order_by("section", "-amount_micro", "pk")
    context = {
        "invoice": invoice,
        "amounts": payment_selectors.invoice_amounts(invoice),
        "payments": invoice.allocations.select_related("payment").order_by("payment__received_on", "pk"),
        "page": paginate(request, lines, per_page=50),
        "formats": FORMATS,
    }
    return render(request, "portal/settlements/invoice.html", context)


@portal_view()
@require_safe
def document_download(request: HttpRequest, portal: Portal, document: str, object_id: int) -> HttpResponse:
    """A statement or invoice file in the reader's language: rendered now if small, else queued and followed."""
    try:
        fmt = exports.export_format_parse(request.GET.get("format"))
        exporter = documents_selectors.document_exporter(actor=portal.actor, document=document, object_id=object_id)
    except (NotFound, InvalidInput):
        raise Http404() from None
    language = get_language() or settings.LANGUAGE_CODE
    if exporter.line_count() <= settings.EXPORT_SYNC_MAX_LINES:
        response = HttpResponse(exports.render_bytes(exporter, fmt), content_type=exports.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{exporter.filename(fmt)}"'
        response["Content-Language"] = language
        return response
    export = documents_services.export_request(
        actor=portal.actor, document=document, object_id=object_id, fmt=fmt, language=language
    )
    return redirect("portal:export", export_pk=export.pk)


def _export(portal: Portal, export_pk: int) -> Export:
    try:
        return documents_selectors.export_get_for_actor(actor=portal.actor, export_pk=export_pk)
    except NotFound:
        raise Http404() from None


def _export_state(export: Export) -> dict[str, Any]:
    finished = export.status in (ExportStatus.DONE, ExportStatus.FAILED)
    return {
        "status": export.status,
        "status_label": str(export.get_status_display()),
        "finished": finished,
        "percent": 100 if finished else (50 if export.status == ExportStatus.RUNNING else 0),
        # In the reader's language where the failure's code has a message of its own (core.jobs).
        "failure_reason": export.failure_message,
        "failure_code": export.failure_code,
    }


@portal_view()
@require_safe
def export_detail(request: HttpRequest, portal: Portal, export_pk: int) -> HttpResponse:
    export = _export(portal, export_pk)
    context = {
        "export": export,
        "state": _export_state(export),
        "status_url": reverse("portal:export-status", kwargs={"export_pk": export.pk}),
    }
    return render(request, "portal/settlements/export.html", context)


@portal_view()
@require_safe
def export_status(request: HttpRequest, portal: Portal, export_pk: int) -> JsonResponse:
    return JsonResponse(_export_state(_export(portal, export_pk)))


@portal_view()
@require_safe
def export_file(request: HttpRequest, portal: Portal, export_pk: int) -> HttpResponseBase:
    export = _export(portal, export_pk)
    name = export.file.name or ""
    try:
        handle = documents_services.export_file_open(export=export)
    except NotFound:
        raise Http404() from None
    if handle is None:
        # Storage lost the file: it is being made again; the export's page follows it to the download.
        messages.info(request, _("The file was no longer stored, so it is being prepared again."))
        return redirect("portal:export", export_pk=export.pk)
    return FileResponse(handle, as_attachment=True, filename=name.rsplit("/", 1)[-1])


@portal_view(kind=("holder", "society"), admin=True)
@require_http_methods(["GET", "POST"])
def payout_profile(request: HttpRequest, portal: Portal) -> HttpResponse:
    """The holder's (or agent's) payout profile, masked; owners and admins change it with their password again."""
    profile = PayoutProfile.objects.filter(holder=portal.party).first()
    initial = {}
    if profile is not None:
        initial = {
            "payee_name": profile.payee_name,
            "bank_name": profile.bank_name,
            "tax_id_kind": profile.tax_id_kind,
            "tax_status": profile.tax_status,
        }
    form = PayoutProfileForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        details = PayoutDetails(**{k: v for k, v in data.items() if k != "password"})
        try:
            password_confirm(request, portal, data["password"])
            payout_services.payout_profile_set(actor=portal.actor, holder=portal.party, details=details)
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("Your payout details are saved. Staff verify them before the next payout."))
            return redirect("portal:payout-profile")
    return render(request, "portal/settlements/payout_profile.html", {"form": form, "profile": profile})
