"""Near-duplicate thresholds: public to read (labs must know what "similar" means), staff to set."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.fields import RegistryDateTimeField
from core.api.schema import error_responses
from core.api.views import RegistryAPIView
from registry import services
from registry.models import ContentModality
from registry.similarity import MAX_THRESHOLD, similarity_thresholds_list


class ThresholdInput(serializers.Serializer[dict[str, Any]]):
    modality = serializers.ChoiceField(choices=ContentModality.choices)
    max_distance = serializers.IntegerField(
        min_value=0, max_value=MAX_THRESHOLD, help_text=_("Bits of the 64-bit Content-Code.")
    )
    effective_from = RegistryDateTimeField(required=False, allow_null=True, default=None)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ScheduledThresholdOutput(serializers.Serializer[dict[str, Any]]):
    max_distance = serializers.IntegerField()
    effective_from = serializers.DateTimeField()


class ThresholdOutput(serializers.Serializer[dict[str, Any]]):
    modality = serializers.CharField()
    max_distance = serializers.IntegerField()
    effective_from = serializers.DateTimeField(allow_null=True)
    # Named as the API shows it; DRF fields have a ``source`` attribute of their own, which this shadows on the class.
    source = serializers.ChoiceField(choices=["default", "staff"])  # type: ignore[assignment]
    reason = serializers.CharField()
    scheduled = ScheduledThresholdOutput(many=True)


class ThresholdListOutput(serializers.Serializer[dict[str, Any]]):
    thresholds = ThresholdOutput(many=True)


def _listed() -> dict[str, Any]:
    return ThresholdListOutput({"thresholds": similarity_thresholds_list(at=timezone.now())}).data


class SimilarityThresholdsView(RegistryAPIView):
    # One row per modality: a short, fixed list, not a page.
    pagination_class = None

    def get_permissions(self) -> Any:
        if self.request.method == "GET":
            return [AllowAny()]
        return super().get_permissions()

    @extend_schema(
        responses=ThresholdListOutput,
        summary="The similarity thresholds in force per modality, and those scheduled",
    )
    def get(self, request: Request) -> Response:
        return Response(_listed())

    @extend_schema(
        request=ThresholdInput,
        responses={201: ThresholdListOutput, **error_responses(400, 403, 409)},
        summary="Set a modality's similarity threshold from now or a later instant (staff)",
    )
    def post(self, request: Request) -> Response:
        data = ThresholdInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.similarity_threshold_set(actor=self.actor(), **data.validated_data)
        return Response(_listed(), status=status.HTTP_201_CREATED)
