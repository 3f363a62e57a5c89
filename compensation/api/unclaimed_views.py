"""``GET /api/v1/unclaimed``: the public notice of undistributed compensation, for anyone; and the staff's hold
policies."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compensation.models import HoldEndAction, HoldPolicy
from compensation.unclaimed.selectors import unclaimed_notices, unclaimed_rows
from compensation.unclaimed.services import hold_policy_set
from core.actors import require_staff
from core.api.fields import RegistryDateField
from core.api.schema import error_responses
from core.api.views import RegistryAPIView
from optout.api.throttles import LookupAnonymousThrottle, LookupPrincipalThrottle
from registry.api.serializers import SearchInput
from registry.search import search_query_clean


class AmountBandOutput(serializers.Serializer[dict[str, Any]]):
    min_krw = serializers.IntegerField()
    max_krw = serializers.IntegerField(allow_null=True, help_text="Exclusive; null for the top band.")


class UnclaimedWorkOutput(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    creators = serializers.ListField(child=serializers.CharField())
    identifiers = serializers.ListField(child=serializers.CharField())


class UnclaimedOutput(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField(help_text="The notice's id.")
    held_for = serializers.ChoiceField(choices=["work", "identifier"])
    work = UnclaimedWorkOutput(allow_null=True)
    identifier = serializers.CharField(allow_null=True, help_text="The unregistered identifier (scheme:value).")
    title = serializers.CharField()
    kind = serializers.CharField(allow_blank=True)
    amount_band = AmountBandOutput()
    amount_band_label = serializers.CharField()
    hold_month = serializers.CharField(help_text="YYYY-MM")
    noticed_on = serializers.DateField()
    hold_ends_on = serializers.DateField()


class UnclaimedListView(APIView):
    """Anyone may read the list, at the lookup rates, as anyone may look a work up."""

    permission_classes = [AllowAny]
    throttle_classes = [LookupPrincipalThrottle, LookupAnonymousThrottle]
    pagination_class = PageNumberPagination

    @extend_schema(
        parameters=[SearchInput],
        responses=UnclaimedOutput(many=True),
        summary="What escrow holds per work and unregistered identifier: banded amounts, hold month, hold end",
    )
    def get(self, request: Request) -> Response:
        data = SearchInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        query = search_query_clean(data.validated_data.get("q")) if data.validated_data.get("q") else ""
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(unclaimed_notices(query=query), request, view=self) or []
        rows = unclaimed_rows(notices=page)
        return paginator.get_paginated_response(UnclaimedOutput(rows, many=True).data)  # type: ignore[arg-type]


class HoldPolicyInput(serializers.Serializer[dict[str, Any]]):
    effective_from = RegistryDateField()
    period_days = serializers.IntegerField(min_value=0, max_value=36_500)
    end_action = serializers.ChoiceField(choices=HoldEndAction.choices)
    public_interest_account = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class HoldPolicyOutput(serializers.ModelSerializer[HoldPolicy]):
    class Meta:
        model = HoldPolicy
        fields = [
            "id",
            "effective_from",
            "period_days",
            "end_action",
            "public_interest_account",
            "reason",
            "created_at",
        ]


class HoldPolicyListCreateView(RegistryAPIView):
    @extend_schema(responses=HoldPolicyOutput(many=True), summary="Hold policies, latest first (staff)")
    def get(self, request: Request) -> Response:
        require_staff(self.actor())
        return self.paginate(HoldPolicy.objects.order_by("-effective_from"), HoldPolicyOutput)

    @extend_schema(
        request=HoldPolicyInput,
        responses={201: HoldPolicyOutput, **error_responses(403, 409)},
        summary="Set the hold policy from a day on (staff)",
    )
    def post(self, request: Request) -> Response:
        data = HoldPolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        policy = hold_policy_set(actor=self.actor(), **data.validated_data)
        return Response(HoldPolicyOutput(policy).data, status=status.HTTP_201_CREATED)
