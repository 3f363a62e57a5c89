"""Webhook endpoints and their delivery log over HTTP: translate to the webhook services and selectors."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.fields import ID_MAX
from core.api.views import RegistryAPIView, acting_party
from core.errors import InvalidInput
from optout.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from optout.webhooks import selectors, services


class WebhookEndpointInput(serializers.Serializer[dict[str, Any]]):
    url = serializers.CharField(
        max_length=2000, help_text=_("Where the registry POSTs the changes: an http or https URL on a public address.")
    )
    description = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    after = serializers.IntegerField(
        min_value=0,
        max_value=ID_MAX,
        required=False,
        allow_null=True,
        default=None,
        help_text=_(
            "Deliver the changes after this cursor (a snapshot's, or the feed's last next_cursor); by default, "
            "the changes from now on."
        ),
    )


class WebhookEndpointOutput(serializers.ModelSerializer[WebhookEndpoint]):
    active = serializers.BooleanField(source="is_active", read_only=True)
    cursor = serializers.IntegerField(
        read_only=True, help_text=_("The last change of the feed put into a delivery to this endpoint.")
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "active", "cursor", "created_at", "disabled_at"]
        read_only_fields = fields


class WebhookEndpointCreatedOutput(WebhookEndpointOutput):
    secret = serializers.CharField(
        read_only=True,
        help_text=_(
            "The signing secret (whsec_ + base64), shown this once: verify each delivery's webhook-signature with it."
        ),
    )

    class Meta(WebhookEndpointOutput.Meta):
        fields = [*WebhookEndpointOutput.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookAttemptOutput(serializers.ModelSerializer[WebhookAttempt]):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "duration_ms", "response_status", "response_body", "error"]
        read_only_fields = fields


class WebhookDeliveryOutput(serializers.ModelSerializer[WebhookDelivery]):
    message_id = serializers.CharField(read_only=True, help_text=_("The webhook-id header of every try."))
    cursor_from = serializers.IntegerField(
        read_only=True, help_text=_("The delivery holds the changes after this cursor ...")
    )
    cursor_to = serializers.IntegerField(read_only=True, help_text=_("... up to and including this one."))
    attempts = serializers.IntegerField(read_only=True, help_text=_("Tries in all."))
    next_attempt_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("While pending: when the next try may start.")
    )
    attempt_log = WebhookAttemptOutput(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "message_id",
            "status",
            "cursor_from",
            "cursor_to",
            "change_count",
            "attempts",
            "next_attempt_at",
            "last_response_status",
            "last_error",
            "created_at",
            "delivered_at",
            "attempt_log",
        ]
        read_only_fields = fields


class WebhookListCreateView(RegistryAPIView):
    @extend_schema(responses=WebhookEndpointOutput(many=True), summary="The party's webhook endpoints")
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.webhook_endpoint_list_for_actor(actor=self.actor()), WebhookEndpointOutput)

    @extend_schema(
        request=WebhookEndpointInput,
        responses={201: WebhookEndpointCreatedOutput},
        summary="Register a webhook endpoint (its secret is shown once)",
    )
    def post(self, request: Request) -> Response:
        actor = self.actor()
        data = WebhookEndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_create(actor=actor, party=acting_party(actor), **data.validated_data)
        response = Response(WebhookEndpointCreatedOutput(endpoint).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/webhooks/{endpoint.pk}"
        return response


class WebhookDetailView(RegistryAPIView):
    @extend_schema(responses=WebhookEndpointOutput, summary="A webhook endpoint")
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.webhook_endpoint_get_for_actor(actor=self.actor(), endpoint_id=endpoint_id)
        return Response(WebhookEndpointOutput(endpoint).data)

    @extend_schema(responses=WebhookEndpointOutput, summary="Disable a webhook endpoint (no more deliveries)")
    def delete(self, request: Request, endpoint_id: int) -> Response:
        actor = self.actor()
        endpoint = selectors.webhook_endpoint_get_for_actor(actor=actor, endpoint_id=endpoint_id)
        endpoint = services.webhook_endpoint_disable(actor=actor, endpoint=endpoint)
        return Response(WebhookEndpointOutput(endpoint).data)


class WebhookDeliveryListView(RegistryAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=DeliveryStatus.values, description="Only these deliveries")],
        responses=WebhookDeliveryOutput(many=True),
        summary="A webhook endpoint's delivery log, newest first",
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = selectors.webhook_endpoint_get_for_actor(actor=self.actor(), endpoint_id=endpoint_id)
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in DeliveryStatus.values:
            raise InvalidInput(
                _("status is one of: %(values)s.") % {"values": ", ".join(DeliveryStatus.values)},
                code="invalid_status",
                field="status",
            )
        return self.paginate(selectors.webhook_delivery_list(endpoint=endpoint, status=wanted), WebhookDeliveryOutput)


class WebhookDeliveryReplayView(RegistryAPIView):
    @extend_schema(request=None, responses={202: WebhookDeliveryOutput}, summary="Send a delivery again")
    def post(self, request: Request, endpoint_id: int, delivery_id: int) -> Response:
        actor = self.actor()
        endpoint = selectors.webhook_endpoint_get_for_actor(actor=actor, endpoint_id=endpoint_id)
        delivery = selectors.webhook_delivery_get(endpoint=endpoint, delivery_id=delivery_id)
        delivery = services.webhook_delivery_replay(actor=actor, delivery=delivery)
        delivery = selectors.webhook_delivery_get(endpoint=endpoint, delivery_id=delivery.pk)
        return Response(WebhookDeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)
