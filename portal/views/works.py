"""The dashboard and a rights holder's works: list, register one, import many, a work's page."""

from __future__ import annotations

from itertools import islice
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from core import spreadsheets
from core.errors import NotFound, RegistryError
from portal.access import Portal, holder_view, portal_parties, portal_view
from portal.form_errors import error_to_form
from portal.forms import (
    ClaimWithEvidenceForm,
    EvidenceForm,
    IdentifierAddForm,
    IdentifierFormSet,
    ImportForm,
    LicensingContactForm,
    WorkFileForm,
    WorkForm,
)
from portal.selectors import holder_dashboard, lab_dashboard, refusal_rows_for_work, work_status_now
from portal.views.common import paginate, query_without_page
from registry import selectors, services
from registry.embedded_rights import (
    CAWG_USE_LABELS,
    CAWG_VALUE_LABELS,
    IPTC_DATA_MINING_LABELS,
    refusal_purpose_offered,
)
from registry.errors import IdentifierTaken, InvalidIdentifier
from registry.identifiers import identifier_normalize
from registry.imports import work_import_create, work_import_rows
from registry.models import Identifier, ImportStatus, PartyKind, WorkFile, WorkImport, WorkKind
from registry.work_files import work_file_create

PREVIEW_ROWS = 5


@portal_view()
@require_safe
def dashboard(request: HttpRequest, portal: Portal) -> HttpResponse:
    if portal.party.kind == PartyKind.LAB:
        return render(request, "portal/labs/dashboard.html", lab_dashboard(actor=portal.actor, party=portal.party))
    if portal.party.kind == PartyKind.SOCIETY:
        # A society's work is its members' mandates: its dashboard is that page.
        return redirect("portal:mandates")
    return render(request, "portal/works/dashboard.html", holder_dashboard(actor=portal.actor, party=portal.party))


@holder_view
@require_safe
def work_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    try:
        works = selectors.work_search_for_holder(holder=portal.party, query=query)
    except RegistryError as exc:
        # A query over the length limit: say so and list nothing rather than everything.
        messages.error(request, str(exc.message))
        works = selectors.work_list_for_holder(holder=portal.party).none()
    context = {"page": paginate(request, works), "q": query, "query_string": query_without_page(request)}
    return render(request, "portal/works/list.html", context)


def _identifier_items(formset: Any) -> tuple[list[dict[str, str]], list[int]]:
    """The filled identifier rows, and for each the index of its form, so errors land on the right row."""
    items, indexes = [], []
    for index, form in enumerate(formset.forms):
        value = (form.cleaned_data.get("value") or "").strip()
        if value:
            items.append({"scheme": form.cleaned_data.get("scheme", ""), "value": value})
            indexes.append(index)
    return items, indexes


def _identifier_error_to_formset(formset: Any, exc: RegistryError, indexes: list[int]) -> bool:
    """Put ``identifiers[i].value`` (or ``.scheme``) errors on the row they came from."""
    field = exc.field or ""
    if field.startswith("identifiers[") and "]" in field:
        position = int(field[len("identifiers[") : field.index("]")])
        name = field.rsplit(".", 1)[-1] if "." in field else "value"
        form = formset.forms[indexes[position]]
        form.add_error(name if name in form.fields else "value", str(exc.message))
        return True
    return False


@holder_view
@require_http_methods(["GET", "POST"])
def work_create(request: HttpRequest, portal: Portal) -> HttpResponse:
    # "This is mine" on the unclaimed list opens this form filled with the row's identifier and kind.
    scheme, _sep, value = request.GET.get("identifier", "").partition(":")
    initial_kind = request.GET.get("kind", "")
    form = WorkForm(request.POST or None, initial={"kind": initial_kind} if initial_kind in WorkKind.values else None)
    formset = IdentifierFormSet(
        request.POST or None,
        prefix="identifiers",
        initial=[{"scheme": scheme, "value": value}] if request.method == "GET" and scheme and value else None,
    )
    taken_work = None
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        items, indexes = _identifier_items(formset)
        try:
            draft = services.work_draft_build(
                title=form.cleaned_data["title"],
                kind=form.cleaned_data["kind"],
                identifiers=items,
                creators=form.creators_list(),
                language=form.cleaned_data["language"],
                creation_year=form.cleaned_data["creation_year"],
                share_bp=form.share_bp(),
            )
            work, _claim = services.work_register(actor=portal.actor, holder=portal.party, draft=draft)
        except IdentifierTaken as exc:
            taken_work = exc.extra.get("existing_work_id")
            form.add_error(None, str(exc.message))
        except RegistryError as exc:
            if not _identifier_error_to_formset(formset, exc, indexes):
                error_to_form(form, exc, fields={"share_bp": "share_percent", "identifiers": "__all__"})
        else:
            messages.success(
                request,
                _("“%(title)s” is registered; your ownership claim awaits verification.") % {"title": work.title},
            )
            return redirect("portal:work", work_id=work.pk)
    context = {"form": form, "formset": formset, "taken_work": taken_work}
    return render(request, "portal/works/create.html", context)


@login_required
@require_safe
def identifier_check(request: HttpRequest) -> JsonResponse:
    """Validation as you type: the same normalization the services apply, with the reason when it fails."""
    scheme = request.GET.get("scheme", "")
    value = request.GET.get("value", "")
    if not value.strip():
        return JsonResponse({"valid": None, "message": ""})
    try:
        key = identifier_normalize(scheme=scheme, value=value)
    except InvalidIdentifier as exc:
        return JsonResponse({"valid": False, "code": exc.code, "message": str(exc.message)})
    existing = Identifier.objects.filter(scheme=key.scheme, value=key.value).values_list("work_id", flat=True).first()
    answer: dict[str, Any] = {"valid": True, "taken": existing is not None, "key": str(key)}
    answer["message"] = str(_("Valid: %(key)s") % {"key": str(key)})
    if existing is not None:
        answer["message"] = str(_("Valid, but already registered to another work: claim that work instead."))
        _memberships, active = portal_parties(request)
        if existing in selectors.work_ids_claimable(party=active.party if active else None, work_ids=[existing]):
            answer["claim_url"] = reverse("portal:work-claim", kwargs={"work_id": existing})
            answer["claim_label"] = str(_("Claim a share of it"))
    return JsonResponse(answer)


@holder_view
@require_safe
def work_detail(request: HttpRequest, portal: Portal, work_id: int) -> HttpResponse:
    try:
        work = selectors.work_get_for_actor(actor=portal.actor, work_id=work_id)
    except NotFound:
        raise Http404() from None
    return render(request, "portal/works/detail.html", _work_context(portal, work))


def _file_rights(work_file: WorkFile) -> dict[str, Any] | None:
    """What a work file declares about AI training, worded for the holder, and the refusal it offers to file."""
    embedded = work_file.embedded_rights
    if not embedded:
        return None
    c2pa = embedded.get("c2pa") or None
    xmp = embedded.get("xmp") or None
    purpose = refusal_purpose_offered(embedded)
    return {
        "c2pa": c2pa
        and {
            "assertion": c2pa.get("assertion"),
            "entries": [
                (CAWG_USE_LABELS.get(use, use), CAWG_VALUE_LABELS.get(value, value), value)
                for use, value in (c2pa.get("entries") or {}).items()
            ],
            "signer": (c2pa.get("signer") or {}).get("common_name") or "",
            "issuer": (c2pa.get("signer") or {}).get("issuer") or "",
            "signature_valid": c2pa.get("validation_state") in ("Valid", "Trusted"),
        },
        "xmp": xmp
        and xmp.get("data_mining")
        and {
            "value": xmp["data_mining"],
            "label": IPTC_DATA_MINING_LABELS.get(xmp["data_mining"], xmp["data_mining"]),
            "constraints": xmp.get("other_constraints") or "",
        },
        "offer_purpose": purpose,
        "offer_url": f"{reverse('portal:refusal-create')}?works={work_file.work_id}&purpose={purpose}"
        if purpose
        else "",
        "errors": embedded.get("errors") or [],
    }


def _work_context(portal: Portal, work: Any, *, identifier_form: Any = None, file_form: Any = None) -> dict[str, Any]:
    return {
        "work": work,
        "files": [(work_file, _file_rights(work_file)) for work_file in work.files.all()],
        "identifiers": sorted(work.identifiers.all(), key=lambda i: (i.scheme, i.value)),
        "claims": list(work.claims.all()),
        "refusals": refusal_rows_for_work(actor=portal.actor, work=work),
        "status_now": work_status_now(work=work),
        "identifier_form": identifier_form or IdentifierAddForm(),
        "file_form": file_form or WorkFileForm(),
    }


@holder_view
@require_POST
def work_file_upload(request: HttpRequest, portal: Portal, work_id: int) -> HttpResponse:
    try:
        work = selectors.work_get_for_actor(actor=portal.actor, work_id=work_id)
    except NotFound:
        raise Http404() from None
    form = WorkFileForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            work_file_create(
                actor=portal.actor, holder=portal.party, work=work, file=upload, filename=upload.name or ""
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("The file is uploaded; its fingerprints are being computed."))
            return redirect("portal:work", work_id=work.pk)
    return render(request, "portal/works/detail.html", _work_context(portal, work, file_form=form), status=400)


@holder_view
@require_POST
def work_identifier_add(request: HttpRequest, portal: Portal, work_id: int) -> HttpResponse:
    try:
        work = selectors.work_get_for_actor(actor=portal.actor, work_id=work_id)
    except NotFound:
        raise Http404() from None
    form = IdentifierAddForm(request.POST)
    if form.is_valid():
        try:
            services.work_identifier_add(actor=portal.actor, holder=portal.party, work=work, **form.cleaned_data)
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("The identifier is added."))
            return redirect("portal:work", work_id=work.pk)
    return render(request, "portal/works/detail.html", _work_context(portal, work, identifier_form=form), status=400)


@holder_view
@require_http_methods(["GET", "POST"])
def work_claim(request: HttpRequest, portal: Portal, work_id: int) -> HttpResponse:
    """Claim a share of a work someone already registered (the way out when an identifier is taken, and "This is
    mine" on the unclaimed list), with evidence. The share the claim names by default is shown first: the staff's
    default for the work's kind when others already claim it."""
    try:
        work = selectors.work_get(work_id=work_id)
    except NotFound:
        raise Http404() from None
    default = selectors.claim_share_default(work=work, holder=portal.party)
    form = ClaimWithEvidenceForm(
        request.POST or None, request.FILES or None, initial={"share_percent": default.share_bp / 100}
    )
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("evidence_file")
        try:
            with transaction.atomic():
                claim = services.claim_file(
                    actor=portal.actor,
                    holder=portal.party,
                    work=work,
                    share_bp=form.share_bp(),
                    valid_from=form.cleaned_data["valid_from"],
                )
                if form.cleaned_data.get("evidence_kind"):
                    services.claim_evidence_add(
                        actor=portal.actor,
                        claim=claim,
                        kind=form.cleaned_data["evidence_kind"],
                        file=upload,
                        filename=(upload.name or "") if upload is not None else "",
                        registration_number=form.cleaned_data.get("registration_number") or "",
                        party_identifier=form.cleaned_data.get("party_identifier") or "",
                        text=form.cleaned_data.get("evidence_text") or "",
                    )
        except RegistryError as exc:
            error_to_form(
                form,
                exc,
                fields={
                    "share_bp": "share_percent",
                    "file": "evidence_file",
                    "text": "evidence_text",
                    "kind": "evidence_kind",
                },
            )
        else:
            messages.success(request, _("Your claim is filed and awaits verification."))
            return redirect("portal:work-claim-detail", claim_id=claim.pk)
    return render(request, "portal/works/claim.html", {"work": work, "form": form, "default": default})


@holder_view
@require_http_methods(["GET", "POST"])
def claim_detail(request: HttpRequest, portal: Portal, claim_id: int) -> HttpResponse:
    """One of the party's claims: its status, the reason staff gave, its evidence, and a form to add more (during
    a dispute each side adds its own)."""
    try:
        claim = selectors.claim_get_for_actor(actor=portal.actor, claim_id=claim_id)
        evidence = list(selectors.claim_evidence_list_for_actor(actor=portal.actor, claim_id=claim_id))
    except NotFound:
        raise Http404() from None
    form = EvidenceForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("evidence_file")
        try:
            services.claim_evidence_add(
                actor=portal.actor,
                claim=claim,
                kind=form.cleaned_data["evidence_kind"],
                file=upload,
                filename=(upload.name or "") if upload is not None else "",
                registration_number=form.cleaned_data.get("registration_number") or "",
                party_identifier=form.cleaned_data.get("party_identifier") or "",
                text=form.cleaned_data.get("evidence_text") or "",
            )
        except RegistryError as exc:
            error_to_form(form, exc, fields={"file": "evidence_file", "text": "evidence_text", "kind": "evidence_kind"})
        else:
            messages.success(request, _("The evidence is added to your claim."))
            return redirect("portal:work-claim-detail", claim_id=claim.pk)
    context = {"claim": claim, "evidence": evidence, "form": form}
    return render(request, "portal/works/claim_detail.html", context, status=400 if form.errors else 200)


@holder_view
@require_safe
def claim_evidence_file(request: HttpRequest, portal: Portal, claim_id: int, evidence_id: int) -> FileResponse:
    try:
        evidence = selectors.claim_evidence_get_for_actor(
            actor=portal.actor, claim_id=claim_id, evidence_id=evidence_id
        )
    except NotFound:
        raise Http404() from None
    if not evidence.file:
        raise Http404()
    response = FileResponse(
        evidence.file.open("rb"),
        as_attachment=True,
        filename=evidence.original_name or f"evidence-{evidence.pk}",
        content_type="application/octet-stream",
    )
    response["Cache-Control"] = "private, no-store"
    return response


# --- Bulk import -------------------------------------------------------------------------------------


@holder_view
@require_http_methods(["GET", "POST"])
def import_create(request: HttpRequest, portal: Portal) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            work_import = work_import_create(
                actor=portal.actor, holder=portal.party, file=upload, filename=upload.name or ""
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            return redirect("portal:import", import_id=work_import.pk)
    return render(request, "portal/works/import.html", {"form": form})


def _import_for(portal: Portal, import_id: int) -> WorkImport:
    try:
        return selectors.work_import_get_for_actor(actor=portal.actor, import_id=import_id)
    except NotFound:
        raise Http404() from None


def _import_status(work_import: WorkImport) -> dict[str, Any]:
    total = work_import.rows_total or 0
    finished = work_import.status in (ImportStatus.PROCESSED, ImportStatus.FAILED)
    percent = 100 if finished else (int(100 * work_import.rows_done / total) if total else 0)
    errors = [
        {"row": e.row, "field": e.field, "code": e.code, "message": e.message, "existing_work": e.existing_work_id}
        for e in selectors.work_import_errors(work_import=work_import)[:100]
    ]
    return {
        "status": work_import.status,
        "status_label": str(work_import.get_status_display()),
        "finished": finished,
        "rows_total": work_import.rows_total,
        "rows_done": work_import.rows_done,
        "rows_registered": work_import.rows_registered,
        "rows_failed": work_import.rows_failed,
        "percent": percent,
        # In the reader's language where the failure's code has a message of its own (core.jobs).
        "failure_reason": work_import.failure_message,
        "failure_code": work_import.failure_code,
        "errors": errors,
    }


def _preview(work_import: WorkImport) -> tuple[list[str], list[dict[str, Any]]]:
    """The file's first rows as read for registration: columns, and per row its cells or why it cannot be read."""
    try:
        with work_import.file.storage.open(work_import.file.name or "", "rb") as binary:
            rows = list(islice(work_import_rows(path_or_file=binary, format=work_import.format), PREVIEW_ROWS))
    except (OSError, RegistryError):
        return [], []
    columns: list[str] = []
    for _number, values in rows:
        if isinstance(values, dict):
            columns.extend(c for c in values if c not in columns)
    preview = [
        {"row": number, "cells": [values.get(c, "") for c in columns]}
        if isinstance(values, dict)
        else {"row": number, "error": str(values.message)}
        for number, values in rows
    ]
    return columns, preview


@holder_view
@require_safe
def import_detail(request: HttpRequest, portal: Portal, import_id: int) -> HttpResponse:
    work_import = _import_for(portal, import_id)
    columns, preview = _preview(work_import)
    context = {
        "work_import": work_import,
        "state": _import_status(work_import),
        "preview": preview,
        "columns": columns,
        "status_url": reverse("portal:import-status", kwargs={"import_id": work_import.pk}),
    }
    return render(request, "portal/works/import_detail.html", context)


@holder_view
@require_safe
def import_status(request: HttpRequest, portal: Portal, import_id: int) -> JsonResponse:
    return JsonResponse(_import_status(_import_for(portal, import_id)))


@holder_view
@require_safe
def import_errors_csv(request: HttpRequest, portal: Portal, import_id: int) -> StreamingHttpResponse:
    work_import = _import_for(portal, import_id)
    rows = selectors.work_import_error_rows(errors=selectors.work_import_errors(work_import=work_import))
    response = StreamingHttpResponse(
        spreadsheets.csv_stream(rows, byte_order_mark=True), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="import-{work_import.pk}-errors.csv"'
    return response


# --- Licensing contacts ------------------------------------------------------------------------------


@holder_view
@require_http_methods(["GET", "POST"])
def licensing_contact(request: HttpRequest, portal: Portal) -> HttpResponse:
    """The holder's licensing contact, shown on the public page of each work it is verified to own."""
    party = portal.party
    initial = {"licensing_email": party.licensing_email, "licensing_url": party.licensing_url}
    form = LicensingContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.party_licensing_contact_set(
                actor=portal.actor,
                party=party,
                email=form.cleaned_data["licensing_email"],
                url=form.cleaned_data["licensing_url"],
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("Your licensing contact is saved."))
            return redirect("portal:licensing-contact")
    return render(request, "portal/party/licensing_contact.html", {"form": form, "work": None})


@holder_view
@require_http_methods(["GET", "POST"])
def work_licensing_contact(request: HttpRequest, portal: Portal, work_id: int) -> HttpResponse:
    """A work's own licensing contact, in place of its holders' (holders with a verified claim)."""
    try:
        work = selectors.work_get_for_actor(actor=portal.actor, work_id=work_id)
    except NotFound:
        raise Http404() from None
    initial = {"licensing_email": work.licensing_email, "licensing_url": work.licensing_url}
    form = LicensingContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.work_licensing_contact_set(
                actor=portal.actor,
                holder=portal.party,
                work=work,
                email=form.cleaned_data["licensing_email"],
                url=form.cleaned_data["licensing_url"],
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            messages.success(request, _("The work's licensing contact is saved."))
            return redirect("portal:work", work_id=work.pk)
    return render(request, "portal/party/licensing_contact.html", {"form": form, "work": work})
