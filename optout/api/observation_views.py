"""A verified domain's site signals as the registry observed them: ask for an observation now, read them back."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.views import RegistryAPIView
from optout.models.observations import SignalObservation
from optout.observations import domain_observe_for_actor, observation_list_for_actor


class ObservationOutput(serializers.ModelSerializer[SignalObservation]):
    class Meta:
        model = SignalObservation
        fields = [
            "id",
            "source",
            "url",
            "trigger",
            "observed_at",
            "http_status",
            "error",
            "sha256",
            "size",
            "truncated",
            "said",
            "signals",
        ]


class DomainObserveView(RegistryAPIView):
    @extend_schema(
        request=None,
        responses={202: inline_serializer("ObservationQueued", {"domain": serializers.IntegerField()})},
        summary="Fetch and record the domain's robots.txt, tdmrep.json, ai.txt and URL headers now (holder, staff)",
    )
    def post(self, request: Request, domain_id: int) -> Response:
        from optout.models.observations import ObservationTrigger
        from optout.tasks import domain_signals_observe

        domain = domain_observe_for_actor(actor=self.actor(), domain_id=domain_id)
        transaction.on_commit(lambda: domain_signals_observe.delay(domain.pk, ObservationTrigger.ON_DEMAND))
        return Response({"domain": domain.pk}, status=status.HTTP_202_ACCEPTED)


class DomainObservationListView(RegistryAPIView):
    @extend_schema(responses=ObservationOutput(many=True), summary="What the domain's own signals said, newest first")
    def get(self, request: Request, domain_id: int) -> Response:
        return self.paginate(observation_list_for_actor(actor=self.actor(), domain_id=domain_id), ObservationOutput)
