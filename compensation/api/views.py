"""Tariff and balance API views: translate HTTP to services and selectors."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from compensation import selectors, services
from compensation.api.serializers import BalanceFilter, BalanceOutput, TariffInput, TariffListFilter, TariffOutput
from registry.api.views import RegistryAPIView, acting_party
from registry.errors import NotFound, NotPermitted
from registry.models import Party


class TariffListCreateView(RegistryAPIView):
    @extend_schema(parameters=[TariffListFilter], responses=TariffOutput(many=True), summary="Tariffs, past and future")
    def get(self, request: Request) -> Response:
        filters = TariffListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return self.paginate(selectors.tariff_list(**filters.validated_data), TariffOutput)

    @extend_schema(request=TariffInput, responses={201: TariffOutput}, summary="Set a tariff from now or later (staff)")
    def post(self, request: Request) -> Response:
        data = TariffInput(data=request.data)
        data.is_valid(raise_exception=True)
        tariff = services.tariff_set(actor=self.actor(), **data.validated_data)
        return Response(TariffOutput(tariff).data, status=status.HTTP_201_CREATED)


class BalanceView(RegistryAPIView):
    @extend_schema(
        parameters=[BalanceFilter], responses=BalanceOutput, summary="The party's balances by account and month"
    )
    def get(self, request: Request) -> Response:
        filters = BalanceFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        actor = self.actor()
        party_id = filters.validated_data.get("party")
        if party_id is None:
            party = acting_party(actor)
        elif actor.is_staff:
            found = Party.objects.filter(pk=party_id).first()
            if found is None:
                raise NotFound(_("No such party."), field="party")
            party = found
        elif actor.party is not None and actor.party.pk == party_id:
            party = actor.party
        else:
            raise NotPermitted(_("Only staff may read another party's balance."))
        balances = selectors.party_balances(
            party=party,
            period_start=filters.validated_data["period_start"],
            period_end=filters.validated_data["period_end"],
        )
        return Response(BalanceOutput({**balances, "party_name": party.name, "unit": "micro_won"}).data)
