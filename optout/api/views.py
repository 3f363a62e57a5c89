"""Refusal and lookup API views: translate HTTP to services and selectors."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.fastjson import OrjsonParser, OrjsonRenderer
from core.api.schema import error_responses
from core.api.views import RegistryAPIView
from core.errors import NotPermitted
from optout import selectors, services
from optout.api.serializers import (
    MAX_LOOKUP_ITEMS,
    LookupInput,
    LookupResponse,
    LookupSingleInput,
    RefusalCreateInput,
    RefusalOutput,
    RefusalWithdrawInput,
    RegimeInput,
    plain_single_lookup,
)
from optout.api.throttles import LookupAnonymousThrottle, LookupPrincipalThrottle
from optout.errors import LookupUnavailable, TooManyItems
from registry.mandates import acting_holder
from registry.models import ApiScope
from registry.selectors import work_get


class RefusalListCreateView(RegistryAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("on_behalf_of", int, description="A society or agent: a member's refusals.")],
        responses=RefusalOutput(many=True),
        summary="The holder's refusals with their history",
    )
    def get(self, request: Request) -> Response:
        actor = self.actor()
        if request.query_params.get("on_behalf_of"):
            actor, _member = acting_holder(actor=actor, member_id=request.query_params["on_behalf_of"])
        return self.paginate(selectors.refusal_list_for_actor(actor=actor), RefusalOutput)

    @extend_schema(
        request=RefusalCreateInput, responses={201: RefusalOutput, **error_responses(404)}, summary="Refuse AI training"
    )
    def post(self, request: Request) -> Response:
        data = RefusalCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        actor, holder = acting_holder(actor=self.actor(), member_id=values.pop("on_behalf_of"))
        work_id = values.pop("work")
        refusal = services.refusal_file(
            actor=actor, holder=holder, work=work_get(work_id=work_id) if work_id is not None else None, **values
        )
        refusal = selectors.refusal_get_for_actor(actor=actor, refusal_id=refusal.pk)
        return Response(RefusalOutput(refusal).data, status=status.HTTP_201_CREATED)


class RefusalWithdrawView(RegistryAPIView):
    @extend_schema(request=RefusalWithdrawInput, responses=RefusalOutput, summary="Withdraw a refusal (opt back in)")
    def post(self, request: Request, refusal_id: int) -> Response:
        data = RefusalWithdrawInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor()
        refusal = selectors.refusal_get_for_actor(actor=actor, refusal_id=refusal_id)
        member_id = data.validated_data["on_behalf_of"]
        if member_id is None and actor.party is not None and actor.party.is_society and not actor.is_staff:
            # A refusal the agent filed (or can see) is withdrawn for its holder.
            member_id = refusal.holder_id
        if member_id is not None:
            actor, _member = acting_holder(actor=actor, member_id=member_id)
            refusal = selectors.refusal_get_for_actor(actor=actor, refusal_id=refusal_id)
        services.refusal_withdraw(actor=actor, refusal=refusal, effective_at=data.validated_data["effective_at"])
        return Response(RefusalOutput(selectors.refusal_get_for_actor(actor=actor, refusal_id=refusal_id)).data)


class RegimeCreateView(RegistryAPIView):
    @extend_schema(request=RegimeInput, responses={201: RegimeInput}, summary="Set a work kind's regime (staff)")
    def post(self, request: Request) -> Response:
        data = RegimeInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.regime_set(actor=self.actor(), **data.validated_data)
        return Response(
            {"kind": row.kind, "regime": row.regime, "effective_from": row.effective_from.isoformat()},
            status=status.HTTP_201_CREATED,
        )


class LookupView(RegistryAPIView):
    """Batch lookups for keys with the lookup scope (and signed-in people); single lookups for anyone."""

    throttle_classes = [LookupPrincipalThrottle, LookupAnonymousThrottle]
    parser_classes = [OrjsonParser]
    renderer_classes = [OrjsonRenderer]

    def get_permissions(self) -> Any:
        if self.request.method == "GET":
            return [AllowAny()]
        return super().get_permissions()

    def _answer(self, *, items: list[dict[str, Any]], purpose: str, as_of: Any) -> HttpResponse:
        actor = self.actor()
        if actor.api_key is not None and not actor.has_scope(ApiScope.LOOKUP):
            raise NotPermitted(_("This API key lacks the scope “lookup”."), code="missing_scope")
        try:
            body = selectors.lookup_answer_signed_json(actor=actor, items=items, purpose=purpose, as_of=as_of)
        except DatabaseError:
            # Never fail open: without the registry's answer, nothing is answered.
            raise LookupUnavailable() from None
        # Already JSON: the bytes that were signed, with the receipt (no second serialization by a renderer).
        return HttpResponse(body, content_type="application/json")

    @extend_schema(parameters=[LookupSingleInput], responses=LookupResponse, summary="Look up one work")
    def get(self, request: Request) -> HttpResponse:
        item_and_purpose = plain_single_lookup(request.query_params)
        if item_and_purpose is not None:
            return self._answer(items=[item_and_purpose[0]], purpose=item_and_purpose[1], as_of=None)
        data = LookupSingleInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        item = {"scheme": data.validated_data["scheme"], "value": data.validated_data["value"]}
        return self._answer(items=[item], purpose=data.validated_data["purpose"], as_of=data.validated_data["as_of"])

    @extend_schema(request=LookupInput, responses=LookupResponse, summary="Look up 1 to 10,000 works")
    def post(self, request: Request) -> HttpResponse:
        items = request.data.get("items") if isinstance(request.data, dict) else None
        if isinstance(items, list) and len(items) > MAX_LOOKUP_ITEMS:
            raise TooManyItems(
                _("A lookup holds at most %(max)s items; this one has %(count)s. Split it.")
                % {"max": f"{MAX_LOOKUP_ITEMS:,}", "count": f"{len(items):,}"},
                field="items",
            )
        data = LookupInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._answer(
            items=data.validated_data["items"],
            purpose=data.validated_data["purpose"],
            as_of=data.validated_data["as_of"],
        )
