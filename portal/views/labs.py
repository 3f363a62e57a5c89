"""AI labs: API keys, lookups, usage manifests with outcomes, violations. Rights holders: earnings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from compensation.models import ManifestStatus, Outcome, UsageManifest
from compensation.settlement import selectors as settlement_selectors
from compensation.usage import selectors as usage_selectors
from compensation.usage.services import usage_manifest_submit_file
from core import spreadsheets
from core.errors import NotFound, RegistryError
from core.i18n import requested_language
from optout.selectors import lookup_answer_signed
from portal.access import Portal, holder_view, lab_view, password_confirm, portal_view
from portal.form_errors import error_to_form
from portal.forms import ApiKeyForm, LookupForm, ManifestForm
from portal.views.common import paginate
from registry import selectors, services
from registry.models import ApiScope

LOOKUP_MAX_ITEMS = 1000


_NEW_KEY = "portal_new_api_key"


@portal_view()
@require_http_methods(["GET", "POST"])
def apikey_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "password"}
        try:
            if ApiScope.PAYOUTS_WRITE in data["scopes"]:
                # A payouts:write key changes where money goes, as the payout form does: the password again.
                password_confirm(request, portal, form.cleaned_data["password"])
            key, raw_key = services.apikey_create(actor=portal.actor, party=portal.party, **data)
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            # Redirect-after-post, so reloading cannot create a second key; the secret rides in the session
            # until the next page shows it, once, and is then gone (the registry keeps only its hash).
            request.session[_NEW_KEY] = {"id": key.pk, "raw": raw_key}
            return redirect("portal:keys")
    created_key = request.session.pop(_NEW_KEY, None) if request.method == "GET" else None
    context = {
        "form": form,
        "created_key": created_key,
        "keys": selectors.apikey_list_for_actor(actor=portal.actor),
        "is_admin": portal.is_admin,
    }
    response = render(request, "portal/labs/keys.html", context)
    response["Cache-Control"] = "no-store"
    return response


@portal_view()
@require_POST
def apikey_revoke(request: HttpRequest, portal: Portal, key_id: int) -> HttpResponse:
    try:
        key = selectors.apikey_get_for_actor(actor=portal.actor, key_id=key_id)
        services.apikey_revoke(actor=portal.actor, api_key=key)
    except NotFound:
        raise Http404() from None
    except RegistryError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("The key %(prefix)s… is revoked.") % {"prefix": key.prefix})
    return redirect("portal:keys")


def _lookup_items(text: str) -> list[dict[str, str]]:
    items = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.lower().startswith(("http://", "https://")):
            items.append({"scheme": "url", "value": line})
        else:
            scheme, _sep, value = line.partition(":")
            items.append({"scheme": scheme.strip(), "value": value.strip()})
    return items


@lab_view
@require_http_methods(["GET", "POST"])
def lookup(request: HttpRequest, portal: Portal) -> HttpResponse:
    """The batch lookup of the API, signed the same way, for people at a lab."""
    form = LookupForm(request.POST or None)
    answer: dict[str, Any] | None = None
    if request.method == "POST" and form.is_valid():
        items = _lookup_items(form.cleaned_data["items"])
        if len(items) > LOOKUP_MAX_ITEMS:
            form.add_error(
                "items", _("At most %(max)s lines at once; use the API for more.") % {"max": LOOKUP_MAX_ITEMS}
            )
        elif not items:
            form.add_error("items", _("Enter at least one identifier."))
        else:
            try:
                answer = lookup_answer_signed(
                    actor=portal.actor, items=items, purpose=form.cleaned_data["purpose"], as_of=None
                )
            except DatabaseError:
                form.add_error(None, _("The registry could not be read; nothing was answered. Try again."))
    context: dict[str, Any] = {"form": form, "answer": answer}
    if answer is not None:
        context["answer_json"] = json.dumps(answer, ensure_ascii=False, indent=2)
    return render(request, "portal/labs/lookup.html", context)


# --- Manifests ------------------------------------------------------------------------------------------


@lab_view
@require_http_methods(["GET", "POST"])
def manifest_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    form = ManifestForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        upload = data.pop("file")
        fields = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items() if v not in (None, "")}
        try:
            manifest, created = usage_manifest_submit_file(
                actor=portal.actor, fields=fields, file=upload, filename=upload.name or ""
            )
        except RegistryError as exc:
            error_to_form(form, exc)
        else:
            if not created:
                messages.info(request, _("This manifest was submitted before; nothing changed."))
            return redirect("portal:manifest", manifest_pk=manifest.pk)
    manifests = usage_selectors.manifest_list_for_actor(actor=portal.actor)
    return render(request, "portal/labs/manifests.html", {"form": form, "page": paginate(request, manifests)})


def _manifest(portal: Portal, manifest_pk: int) -> UsageManifest:
    try:
        return usage_selectors.manifest_get_for_actor(actor=portal.actor, manifest_pk=manifest_pk)
    except NotFound:
        raise Http404() from None


def _manifest_state(manifest: UsageManifest) -> dict[str, Any]:
    finished = manifest.status in (ManifestStatus.PROCESSED, ManifestStatus.FAILED)
    total = manifest.lines_total or 0
    percent = 100 if finished else (int(100 * manifest.lines_done / total) if total else 0)
    return {
        "status": manifest.status,
        "status_label": str(manifest.get_status_display()),
        "finished": finished,
        "lines_total": manifest.lines_total,
        "lines_done": manifest.lines_done,
        "percent": percent,
        # In the reader's language where the failure's code has a message of its own (core.jobs).
        "failure_reason": manifest.failure_message,
        "failure_code": manifest.failure_code,
    }


@lab_view
@require_safe
def manifest_detail(request: HttpRequest, portal: Portal, manifest_pk: int) -> HttpResponse:
    manifest = _manifest(portal, manifest_pk)
    summary = usage_selectors.manifest_summary(manifest=manifest)
    outcomes = []
    if summary is not None:
        outcomes = [
            {"code": code, "label": Outcome(code).label, **values}
            for code, values in summary["outcomes"].items()
            # A split line's musical-work side adds an amount to its outcome but no line (``USE_ROW``).
            if values["lines"] or values["amount_micro"]
        ]
    context = {
        "manifest": manifest,
        "state": _manifest_state(manifest),
        "summary": summary,
        "outcomes": outcomes,
        "status_url": reverse("portal:manifest-status", kwargs={"manifest_pk": manifest.pk}),
    }
    return render(request, "portal/labs/manifest_detail.html", context)


@lab_view
@require_safe
def manifest_status(request: HttpRequest, portal: Portal, manifest_pk: int) -> JsonResponse:
    return JsonResponse(_manifest_state(_manifest(portal, manifest_pk)))


@lab_view
@require_safe
def manifest_outcomes(request: HttpRequest, portal: Portal, manifest_pk: int) -> StreamingHttpResponse:
    """The acknowledgement file, as the API serves it: CSV (default) or JSON Lines."""
    manifest = _manifest(portal, manifest_pk)
    # Reasons in the language the page is read in, else in the one the manifest was uploaded in.
    language = usage_selectors.manifest_outcome_language(manifest=manifest, asked=requested_language(request))
    rows = usage_selectors.manifest_outcome_rows(manifest=manifest, language=language)
    if request.GET.get("format") == "jsonl":
        body: Iterator[str] = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        response = StreamingHttpResponse(body, content_type="application/x-ndjson")
        extension = "jsonl"
    else:
        response = StreamingHttpResponse(
            spreadsheets.csv_stream(usage_selectors.outcome_csv_rows(rows)),
            content_type="text/csv; charset=utf-8",
        )
        extension = "csv"
    response["Content-Disposition"] = f'attachment; filename="manifest-{manifest.pk}-outcomes.{extension}"'
    response["Content-Language"] = language
    return response


@portal_view()
@require_safe
def violation_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    violations = usage_selectors.violation_list_for_actor(actor=portal.actor)
    return render(request, "portal/labs/violations.html", {"page": paginate(request, violations)})


@holder_view
@require_safe
def earnings(request: HttpRequest, portal: Portal) -> HttpResponse:
    return render(request, "portal/works/earnings.html", settlement_selectors.holder_earnings(party=portal.party))
