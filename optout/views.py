"""Public pages of refusals: what anyone may read without an account, as anyone can read a robots.txt.

Both answer with the refusal headers of ``optout.signals`` when something is refused, so a crawler
that fetches the page or the status learns the refusal in the formats it already reads.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidInput
from optout.api.compat import FirstRendererNegotiation
from optout.api.throttles import LookupAnonymousThrottle, LookupPrincipalThrottle
from optout.errors import LookupUnavailable
from optout.models import Purpose, RefusalScope, Regime
from optout.selectors import LookupStatus
from optout.signals import SignalStatus, signal_status
from optout.vocabularies import XMP_MEDIA_TYPE, meta_tags_for, xmp_packet_for
from registry.errors import InvalidIdentifier
from registry.identifiers import Scheme, identifier_normalize
from registry.models import Work
from registry.selectors import registry_name, work_licensing_contacts

_STATUS_LABELS = {
    LookupStatus.REFUSED: _("Refused"),
    LookupStatus.PERMITTED: _("Permitted"),
    LookupStatus.LICENSE_REQUIRED: _("Licence required"),
}
_STATUS_EXPLANATIONS = {
    LookupStatus.REFUSED: _("A rights holder has refused AI training of this work. Do not use it to train AI models."),
    LookupStatus.PERMITTED: _(
        "No refusal is in force. The work may be used for AI training, and its owners are compensated afterwards."
    ),
    LookupStatus.LICENSE_REQUIRED: _(
        "Works of this kind are outside the use-first regime: training needs a licence from their owners."
    ),
}
_UNCHECKED_LABEL = _("Not checked")
_UNCHECKED_EXPLANATION = _("The registry could not check this work. Do not treat it as permitted.")


def _signal_links(request: HttpRequest, signal: SignalStatus) -> tuple[str | None, str | None]:
    """The absolute URLs of the TDMRep policy (for a licence-required kind) and of the RSL licence of the work
    that decided ``signal``, when there is one."""
    work = (signal.result or {}).get("work")
    if signal.stance is None or not work:
        return None, None
    policy = request.build_absolute_uri(reverse("terms-policy", kwargs={"kind": work["kind"]}))
    return policy, request.build_absolute_uri(reverse("work-license", kwargs={"work_id": work["id"]}))


def _throttled(request: HttpRequest) -> HttpResponse | None:
    throttle = LookupAnonymousThrottle()
    person = request.user
    allowed = throttle.allow_request(Request(request), APIView())
    # DRF's Request, authenticating no one here, wrote an anonymous user onto the request: the signed-in
    # person comes back, so the page can offer them the claim form.
    request.user = person
    if allowed:
        return None
    wait = throttle.wait()
    response = HttpResponse(
        _("Too many requests. Try again in a minute."), status=429, content_type="text/plain; charset=utf-8"
    )
    if wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@require_safe
def work_rights_xmp(request: HttpRequest, work_id: int) -> HttpResponse:
    """``GET /works/{id}/rights.xmp``: the work's IPTC ``plus:DataMining`` (and a link to its RSL licence) as an XMP
    sidecar, for the publisher to embed in the work's files; public, as the work's page."""
    if (limited := _throttled(request)) is not None:
        return limited
    work = Work.objects.prefetch_related("identifiers").filter(pk=work_id).first()
    if work is None:
        raise Http404()
    items = [{"scheme": i.scheme, "value": i.value} for i in work.identifiers.all()]
    signal = signal_status(items=items, as_of=timezone.now())
    if signal.stance is None:
        # Never fail open: what could not be checked gets no metadata that might read as a permission.
        raise Http404()
    _policy, license_url = _signal_links(request, signal)
    response = HttpResponse(
        xmp_packet_for(stance=signal.stance, license_url=license_url), content_type=f"{XMP_MEDIA_TYPE}; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="work-{work.pk}-rights.xmp"'
    # Follows refusals, which change at any time: caches keep it briefly, as the licence.
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_safe
def work_public(request: HttpRequest, work_id: int) -> HttpResponse:
    """A work's status now, for anyone: never who filed a refusal, who owns what, or in what shares."""
    # Each view costs two lookups; anyone may look, at the anonymous lookup rate (per address).
    if (limited := _throttled(request)) is not None:
        return limited
    work = Work.objects.prefetch_related("identifiers").filter(pk=work_id).first()
    if work is None:
        raise Http404()
    identifiers = sorted(work.identifiers.all(), key=lambda i: (i.scheme, i.value))
    checked_at = timezone.now()
    signal = signal_status(items=[{"scheme": i.scheme, "value": i.value} for i in identifiers], as_of=checked_at)
    result = signal.result or {}
    refusal = result.get("refusal") if signal.status == LookupStatus.REFUSED else None
    refused_purposes = []
    if signal.refused_train_ai:
        refused_purposes.append(Purpose.TRAIN_AI.label)
    elif signal.refused_train_genai:
        refused_purposes.append(Purpose.TRAIN_GENAI.label)
    tdm_policy_url, license_url = _signal_links(request, signal)
    stance = signal.stance
    context: dict[str, Any] = {
        "meta_tags": meta_tags_for(stance=stance, tdm_policy_url=tdm_policy_url) if stance else [],
        "license_url": license_url,
        "registry_name": registry_name(),
        "work": work,
        "creators": [str(name) for name in work.creators] if isinstance(work.creators, list) else [],
        "licensing_contacts": work_licensing_contacts(work=work),
        "identifiers": identifiers,
        "status": signal.status,
        "status_class": signal.status if signal.status in _STATUS_LABELS else "unchecked",
        "status_label": _STATUS_LABELS.get(signal.status, _UNCHECKED_LABEL),
        "status_explanation": _STATUS_EXPLANATIONS.get(signal.status, _UNCHECKED_EXPLANATION),
        "regime_label": Regime(result["regime"]).label if result.get("regime") else None,
        "refused_purposes": refused_purposes,
        "refusal_scope_label": RefusalScope(refusal["scope"]).label if refusal else None,
        "refusal_effective_from": datetime.fromisoformat(refusal["effective_from"]) if refusal else None,
        "pending_refusal": signal.pending_refusal and signal.status != LookupStatus.REFUSED,
        "checked_at": checked_at,
    }
    response = render(request, "optout/work_public.html", context)
    for name, value in signal.headers(tdm_policy_url=tdm_policy_url, license_url=license_url).items():
        response[name] = value
    return response


class StatusView(APIView):
    """``GET|HEAD /status?url=…``: whether AI training of one URL is refused now, for anyone.

    ``status`` and ``may_train`` answer for generative training, the strictest purpose (any refusal
    refuses it); ``train_ai`` and ``train_genai`` say which purposes are refused. The refusal headers
    come with the answer, so a HEAD request is enough.
    """

    permission_classes = [AllowAny]
    throttle_classes = [LookupPrincipalThrottle, LookupAnonymousThrottle]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        parameters=[OpenApiParameter("url", str, required=True, description="The http(s) URL to check")],
        responses=inline_serializer(
            "UrlStatus",
            {
                "url": serializers.CharField(),
                "status": serializers.CharField(),
                "may_train": serializers.BooleanField(),
                "train_ai": serializers.BooleanField(help_text="Whether any AI training is refused"),
                "train_genai": serializers.BooleanField(help_text="Whether generative AI training is refused"),
            },
        ),
        summary="Whether AI training of one URL is refused now (no account needed)",
    )
    def get(self, request: Request) -> Response:
        raw = str(request.query_params.get("url", ""))
        if not raw.strip():
            raise InvalidInput(
                _("Give the URL to check, e.g. /status?url=https://example.kr/page"), code="required", field="url"
            )
        try:
            key = identifier_normalize(scheme=Scheme.URL, value=raw)
        except InvalidIdentifier as exc:
            raise InvalidInput(exc.message, code=exc.code, field="url") from None
        try:
            signal = signal_status(items=[{"scheme": key.scheme, "value": key.value}], as_of=timezone.now())
        except DatabaseError:
            # Never fail open: without the registry's answer, nothing is answered.
            raise LookupUnavailable() from None
        body = {
            "url": key.value,
            "status": signal.status,
            "may_train": signal.may_train,
            "train_ai": signal.refused_train_ai,
            "train_genai": signal.refused_train_genai,
        }
        tdm_policy_url, license_url = _signal_links(request, signal)
        return Response(body, headers=signal.headers(tdm_policy_url=tdm_policy_url, license_url=license_url))
