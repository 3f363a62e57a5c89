"""API views for formats other tools already speak.

- A verified domain's W3C TDMRep file and IETF aipref robots.txt lines, for its holder to publish.
- A Spawning-compatible bulk URL check (``POST`` newline-separated URLs, ``{"urls": [...]}`` back),
  so pipelines built on Spawning's API (datadiligence, img2dataset) can ask this registry instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.db import DatabaseError
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.views import RegistryAPIView
from core.errors import NotPermitted
from optout.api.serializers import MAX_LOOKUP_ITEMS
from optout.api.throttles import LookupPrincipalThrottle
from optout.errors import LookupUnavailable, TooManyItems
from optout.models import Purpose
from optout.selectors import LookupStatus, lookup_batch
from optout.signals import domain_rules_in_force, robots_txt, tdmrep_json
from registry.identifiers import Scheme
from registry.models import ApiScope
from registry.selectors import domain_get_for_actor


class PlainTextParser(BaseParser):
    """A ``text/plain`` body as one string (UTF-8 unless the request names another charset)."""

    media_type = "text/plain"

    # DRF takes whatever a parser returns as ``request.data`` (JSONParser returns lists too); the stubs say Mapping.
    def parse(  # type: ignore[override]
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> str:
        encoding = str((parser_context or {}).get("encoding") or "utf-8")
        body: bytes = stream.read()
        try:
            return body.decode(encoding).removeprefix("\ufeff")
        except (UnicodeDecodeError, LookupError):
            raise ParseError(_("The body is not text in the charset it names (UTF-8 by default).")) from None


class FirstRendererNegotiation(DefaultContentNegotiation):
    """Crawlers and scripts send all sorts of Accept headers; these views answer in one format whatever they ask."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        renderer: BaseRenderer = renderers[0]
        return renderer, renderer.media_type


def _download(content: str, *, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class DomainTdmrepView(RegistryAPIView):
    """The W3C TDMRep file for one of the holder's domains, to publish at ``/.well-known/tdmrep.json``."""

    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation
    pagination_class = None  # the whole file, as published

    @extend_schema(
        responses={
            200: OpenApiResponse(
                inline_serializer(
                    "TdmrepRule",
                    {"location": serializers.CharField(), "tdm-reservation": serializers.IntegerField()},
                    many=True,
                ),
                description="TDMRep array of {location, tdm-reservation}",
            )
        },
        summary="TDMRep file (tdmrep.json) of a verified domain's URL-prefix refusals",
    )
    def get(self, request: Request, domain_id: int) -> HttpResponse:
        domain = domain_get_for_actor(actor=self.actor(), domain_id=domain_id)
        rules = domain_rules_in_force(domain=domain, at=timezone.now())
        body = json.dumps(tdmrep_json(rules=rules), indent=2) + "\n"
        return _download(body, content_type="application/json", filename="tdmrep.json")


class DomainRobotsTxtView(RegistryAPIView):
    """Lines to add to one of the holder's domains' robots.txt: IETF aipref ``Content-Usage`` rules."""

    # The file is text/plain whatever is asked for; errors are JSON, like every other API error.
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="robots.txt lines")},
        summary="robots.txt Content-Usage lines (IETF aipref) of a verified domain's URL-prefix refusals",
    )
    def get(self, request: Request, domain_id: int) -> HttpResponse:
        domain = domain_get_for_actor(actor=self.actor(), domain_id=domain_id)
        rules = domain_rules_in_force(domain=domain, at=timezone.now())
        # RSL's global License: line, to the domain's public licence (served by compensation.terms).
        license_url = request.build_absolute_uri(reverse("domain-license", kwargs={"domain_id": domain.pk}))
        return _download(
            robots_txt(rules=rules, origin=domain.origin, license_url=license_url),
            content_type="text/plain; charset=utf-8",
            filename="robots.txt",
        )


class CompatUrlsView(RegistryAPIView):
    """Spawning-compatible bulk URL check: ``text/plain`` URLs in, one answer per URL in input order.

    Accepts ``Authorization: API <key>`` (Spawning's form) as well as ``Api-Key <key>``; the key needs
    the ``lookup`` scope. Blank lines are skipped; at most 10,000 URLs. Each answer echoes the line as
    given and says:

    - ``optOut``: true when training on the URL is not permitted now: refused for generative training
      (the broadest check: a refusal of any AI training refuses it too), or a work whose kind needs a
      licence. Spawning clients read ``not optOut`` as allowed, so a "no" never reads as a yes.
    - ``optIn``: always false. The registry records refusals, not explicit permissions; a URL without
      a refusal is permitted by the use-first rule, not because its owner opted in.
    - ``error``: only for a line that is not a valid http(s) URL, with the reason's code; ``optOut``
      is false there because nothing was checked, and the ``error`` key says so.

    One lookup for the whole batch; no receipt (use ``/api/v1/lookup`` for signed answers).
    """

    parser_classes = [PlainTextParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation
    throttle_classes = [LookupPrincipalThrottle]

    @extend_schema(
        request={"text/plain": {"type": "string", "description": "Newline-separated URLs"}},
        responses={
            200: inline_serializer(
                "CompatUrlsAnswer",
                {
                    "urls": inline_serializer(
                        "CompatUrlAnswer",
                        {
                            "url": serializers.CharField(),
                            "optOut": serializers.BooleanField(),
                            "optIn": serializers.BooleanField(),
                            "error": serializers.CharField(required=False),
                        },
                        many=True,
                    )
                },
            )
        },
        summary="Spawning-compatible bulk URL check (up to 10,000 URLs)",
    )
    def post(self, request: Request) -> Response:
        actor = self.actor()
        if not actor.has_scope(ApiScope.LOOKUP):
            raise NotPermitted(_("This API key lacks the scope “lookup”."), code="missing_scope")
        text = request.data if isinstance(request.data, str) else ""
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        urls = [line for line in lines if line.strip()]
        if len(urls) > MAX_LOOKUP_ITEMS:
            raise TooManyItems(
                _("A lookup holds at most %(max)s items; this one has %(count)s. Split it.")
                % {"max": f"{MAX_LOOKUP_ITEMS:,}", "count": f"{len(urls):,}"}
            )
        if not urls:
            return Response({"urls": []})
        items = [{"scheme": Scheme.URL.value, "value": url} for url in urls]
        try:
            answer = lookup_batch(items=items, purpose=Purpose.TRAIN_GENAI, as_of=timezone.now())
        except DatabaseError:
            # Never fail open: without the registry's answer, nothing is answered.
            raise LookupUnavailable() from None
        answers: list[dict[str, Any]] = []
        for url, result in zip(urls, answer.results, strict=True):
            entry: dict[str, Any] = {
                "url": url,
                "optOut": result["status"] in (LookupStatus.REFUSED, LookupStatus.LICENSE_REQUIRED),
                "optIn": False,
            }
            if result["status"] == LookupStatus.INVALID:
                entry["error"] = result["reason"]["code"]
            answers.append(entry)
        return Response({"urls": answers})
