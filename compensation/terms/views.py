"""Public terms documents, for anyone (crawlers, labs) without an account:

- ``GET /works/{id}/license.xml``: the RSL licence of a work (what the registry says about it now);
- ``GET /domains/{id}/license.xml``: the RSL licence of a verified domain's pages (its refused URL prefixes, and
  the use-first terms for the rest), which the domain's robots.txt ``License:`` line points to;
- ``GET /terms/{kind}.jsonld``: a work kind's ODRL offer with the tariffs in force (TDMRep's ``tdm-policy``).
"""

from __future__ import annotations

import json
import math

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe
from rest_framework.request import Request
from rest_framework.views import APIView

from compensation.terms.odrl import odrl_offer
from compensation.terms.rsl import Content, TermsLinks, rsl_document
from compensation.terms.selectors import terms_in_force
from optout.api.throttles import LookupAnonymousThrottle
from optout.models import Purpose
from optout.signals import domain_rules_in_force, signal_status
from optout.vocabularies import RSL_MEDIA_TYPE, Stance, stance_for
from registry.identifiers import Scheme
from registry.models import DomainStatus, VerifiedDomain, Work, WorkKind

JSON_LD = "application/ld+json"


def _links(request: HttpRequest) -> TermsLinks:
    return TermsLinks(
        policy=lambda kind: request.build_absolute_uri(reverse("terms-policy", kwargs={"kind": kind})),
        usage_report=request.build_absolute_uri(reverse("api:usage-manifests")),
    )


def _throttled(request: HttpRequest) -> HttpResponse | None:
    """The anonymous lookup rate, as on the public work page: a work's licence costs the same two lookups."""
    throttle = LookupAnonymousThrottle()
    if throttle.allow_request(Request(request), APIView()):
        return None
    response = HttpResponse(
        _("Too many requests. Try again in a minute."), status=429, content_type="text/plain; charset=utf-8"
    )
    if (wait := throttle.wait()) is not None:
        response["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def _xml(body: bytes) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{RSL_MEDIA_TYPE}; charset=utf-8")
    # Terms follow refusals and tariffs, which change at any time: caches keep them briefly.
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_safe
def work_license(request: HttpRequest, work_id: int) -> HttpResponse:
    if (limited := _throttled(request)) is not None:
        return limited
    work = Work.objects.prefetch_related("identifiers").filter(pk=work_id).first()
    if work is None:
        raise Http404()
    now = timezone.now()
    identifiers = sorted(work.identifiers.all(), key=lambda i: (i.scheme, i.value))
    signal = signal_status(items=[{"scheme": i.scheme, "value": i.value} for i in identifiers], as_of=now)
    stance = signal.stance
    if stance is None:
        # Never fail open: what could not be checked gets no licence that might read as a permission.
        raise Http404()
    page = request.build_absolute_uri(reverse("work-public", kwargs={"work_id": work.pk}))
    urls = [i.value for i in identifiers if i.scheme == Scheme.URL] or [page]
    kinds = [terms_in_force(at=now, kinds=[work.kind])[work.kind]]
    contents = [Content(url=url, stance=stance, kinds=kinds, terms=page) for url in urls]
    return _xml(rsl_document(contents=contents, links=_links(request)))


@require_safe
def domain_license(request: HttpRequest, domain_id: int) -> HttpResponse:
    domain = VerifiedDomain.objects.filter(pk=domain_id, status=DomainStatus.VERIFIED).first()
    if domain is None:
        raise Http404()
    now = timezone.now()
    refused: dict[str, set[str]] = {}
    for rule in domain_rules_in_force(domain=domain, at=now):
        refused.setdefault(rule.path, set()).add(rule.purpose)
    contents: list[Content] = []
    for path in sorted(refused):
        stance = stance_for(
            refused_train_ai=Purpose.TRAIN_AI in refused[path],
            refused_train_genai=Purpose.TRAIN_GENAI in refused[path],
            license_required=False,
        )
        contents.append(Content(url=f"{domain.origin}{path}", stance=stance, kinds=()))
    if "/" not in refused:
        # The rest of the site: unregistered pages are used first and paid for into escrow, by their kind's terms.
        terms = terms_in_force(at=now)
        contents.append(Content(url=f"{domain.origin}/", stance=Stance.USE_FIRST, kinds=list(terms.values())))
    return _xml(rsl_document(contents=contents, links=_links(request)))


@require_safe
def terms_policy(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in WorkKind.values:
        raise Http404()
    terms = terms_in_force(at=timezone.now(), kinds=[kind])[kind]
    offer = odrl_offer(
        terms=terms,
        uid=request.build_absolute_uri(reverse("terms-policy", kwargs={"kind": kind})),
        assigner=request.build_absolute_uri("/"),
        usage_report=request.build_absolute_uri(reverse("api:usage-manifests")),
    )
    response = HttpResponse(json.dumps(offer, indent=2, ensure_ascii=False) + "\n", content_type=JSON_LD)
    response["Cache-Control"] = "public, max-age=300"
    return response
