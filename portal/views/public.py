"""Pages for anyone: home with the public search, search results, and the receipt checker."""

from __future__ import annotations

import json
import math
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_safe
from rest_framework.request import Request
from rest_framework.views import APIView

from compensation.unclaimed.selectors import unclaimed_notices, unclaimed_rows
from core.api.errors import RETRY_AFTER_SECONDS
from optout.api.throttles import LookupAnonymousThrottle
from optout.receipts import receipt_verify
from optout.status.selectors import work_statuses_now
from portal.forms import ReceiptForm
from portal.selectors import public_search, search_key_parse
from portal.views.common import paginate, query_without_page
from registry.errors import InvalidIdentifier
from registry.identifiers import Scheme
from registry.search import InvalidSearch, search_query_clean
from registry.selectors import registry_figures, work_search


def _throttled(request: HttpRequest) -> HttpResponse | None:
    """The public lookup's per-address limit: anyone may search, at the anonymous lookup rate."""
    if request.user.is_authenticated:
        return None
    throttle = LookupAnonymousThrottle()
    if throttle.allow_request(Request(request), APIView()):
        return None
    wait = throttle.wait()
    response = render(request, "portal/public/throttled.html", status=429)
    if wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/public/home.html", registry_figures())


def _explicit_scheme(query: str) -> bool:
    scheme, sep, _value = query.partition(":")
    return bool(sep) and scheme.strip().lower() in Scheme.values


@require_safe
def search(request: HttpRequest) -> HttpResponse:
    """An identifier's lookup answer now, and the works a title, a creator's name or an identifier finds."""
    query = request.GET.get("q", "").strip()
    context: dict[str, Any] = {"q": query}
    if query:
        throttled = _throttled(request)
        if throttled is not None:
            return throttled
        key = None
        try:
            query = search_query_clean(query)
            key = search_key_parse(text=query)
        except InvalidSearch as exc:
            context["error"] = exc.message
        except InvalidIdentifier as exc:
            # Only what was written as an identifier is one; anything else is searched as a title or a name.
            if _explicit_scheme(query):
                context["error"] = exc.message
        if "error" not in context:
            try:
                if key is not None:
                    context["answer"] = public_search(key=key)
                page = paginate(request, work_search(query=query), per_page=25)
                context["page"], context["searched"] = page, True
                statuses = work_statuses_now(works=list(page.object_list))
                context["rows"] = [(work, statuses.get(work.pk)) for work in page.object_list]
                context["query_string"] = query_without_page(request)
            except DatabaseError:
                # Never fail open: without the registry's answer, nothing is answered (503, as everywhere).
                context["error"] = _("The registry could not be read; nothing was answered. Try again.")
                response = render(request, "portal/public/search.html", context, status=503)
                response["Retry-After"] = str(RETRY_AFTER_SECONDS)
                return response
    status = 200 if "error" not in context else 400
    return render(request, "portal/public/search.html", context, status=status if query else 200)


@require_safe
def unclaimed(request: HttpRequest) -> HttpResponse:
    """The registry's notice of undistributed compensation: what escrow holds per work and unregistered identifier,
    banded, with its hold month and the day its hold ends; searchable, paginated, live."""
    query = request.GET.get("q", "").strip()
    context: dict[str, Any] = {"q": query}
    if query:
        throttled = _throttled(request)
        if throttled is not None:
            return throttled
        try:
            query = search_query_clean(query)
        except InvalidSearch as exc:
            context["error"] = exc.message
            return render(request, "portal/public/unclaimed.html", context, status=400)
    page = paginate(request, unclaimed_notices(query=query), per_page=50)
    context["page"] = page
    context["rows"] = unclaimed_rows(notices=list(page.object_list))
    context["query_string"] = query_without_page(request)
    return render(request, "portal/public/unclaimed.html", context)


@require_http_methods(["GET", "POST"])
def receipt_check(request: HttpRequest) -> HttpResponse:
    """Anyone pastes a lookup response; the registry says whether its receipt is valid."""
    form = ReceiptForm(request.POST or None)
    check = None
    if request.method == "POST" and form.is_valid():
        try:
            body = json.loads(form.cleaned_data["receipt"])
        except json.JSONDecodeError as exc:
            form.add_error("receipt", _("This is not valid JSON (line %(line)s).") % {"line": exc.lineno})
        else:
            if isinstance(body, dict) and isinstance(body.get("receipt"), dict):
                if "payload" in body and isinstance(body["payload"], dict):
                    payload = body["payload"]
                else:
                    payload = {k: v for k, v in body.items() if k != "receipt"}
                check = receipt_verify(payload=payload, receipt=body["receipt"])
            else:
                form.add_error(
                    "receipt", _('Paste a lookup response with its "receipt", or {"payload": ..., "receipt": ...}.')
                )
    return render(request, "portal/public/receipt_check.html", {"form": form, "check": check})
