"""The API of money in and out to people: lab payments (staff record, labs read their own), bank statement imports,
overdue invoices, the holder's payout profile, and the bank transfer file of a settlement (staff)."""

from __future__ import annotations

import dataclasses

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from compensation.api.serializers import (
    LabPaymentInput,
    LabPaymentOutput,
    OverdueReportOutput,
    PaymentImportInput,
    PaymentImportOutput,
    PayoutProfileInput,
    PayoutProfileOutput,
)
from compensation.models import PaymentSource
from compensation.payments import selectors as payment_selectors
from compensation.payments import services as payment_services
from compensation.payouts import selectors as payout_selectors
from compensation.payouts import services as payout_services
from core import spreadsheets
from core.api.fields import ID_MAX
from core.api.schema import error_responses
from core.api.views import CSVRenderer, RegistryAPIView, acting_party
from core.errors import InvalidInput
from registry.models import Party, PartyKind

_LAB = OpenApiParameter("lab", {"type": "integer", "minimum": 1, "maximum": ID_MAX}, description="Only this lab's")


class LabPaymentListCreateView(RegistryAPIView):
    @extend_schema(parameters=[_LAB], responses=LabPaymentOutput(many=True), summary="Lab payments (a lab its own)")
    def get(self, request: Request) -> Response:
        lab = request.query_params.get("lab")
        lab_id = int(lab) if lab and lab.isdigit() and int(lab) <= ID_MAX else None
        return self.paginate(payment_selectors.lab_payment_list(actor=self.actor(), lab_id=lab_id), LabPaymentOutput)

    @extend_schema(
        request=LabPaymentInput,
        responses={201: LabPaymentOutput, 200: LabPaymentOutput, **error_responses(400, 403, 409)},
        summary="Record a lab's payment (staff): the same bank reference again answers 200 with the first",
    )
    def post(self, request: Request) -> Response:
        data = LabPaymentInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        lab = Party.objects.filter(pk=values["lab"], kind=PartyKind.LAB).first()
        if lab is None:
            raise InvalidInput(_("Payments are recorded for AI labs."), code="not_a_lab", field="lab")
        payment, created = payment_services.lab_payment_record(
            actor=self.actor(),
            lab=lab,
            amount_won=values["amount_won"],
            received_on=values["received_on"],
            bank_reference=values["bank_reference"],
            memo=values["memo"],
            source=PaymentSource.API,
        )
        payment = payment_selectors.lab_payment_get(actor=self.actor(), payment_pk=payment.pk)
        return Response(
            LabPaymentOutput(payment).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class LabPaymentImportView(RegistryAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": PaymentImportInput},
        responses={200: PaymentImportOutput, **error_responses(400, 403)},
        summary="Import a bank statement CSV of lab payments (staff): each line recorded on its own",
    )
    def post(self, request: Request) -> Response:
        data = PaymentImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        # Read at most one byte more than allowed: the service refuses anything larger.
        content = upload.read(settings.LAB_PAYMENT_IMPORT_MAX_BYTES + 1)
        result = payment_services.lab_payment_import(actor=self.actor(), data=content)
        return Response(PaymentImportOutput(dataclasses.asdict(result)).data)


class OverdueInvoiceListView(RegistryAPIView):
    pagination_class = None

    @extend_schema(
        responses={200: OverdueReportOutput, **error_responses(403)}, summary="Overdue invoices by age (staff)"
    )
    def get(self, request: Request) -> Response:
        rows = payment_selectors.overdue_invoices(actor=self.actor())
        report = {"bands": payment_selectors.overdue_by_band(rows), "invoices": rows}
        return Response(OverdueReportOutput(report).data)


class PayoutProfileView(RegistryAPIView):
    @extend_schema(
        responses={200: PayoutProfileOutput, **error_responses(404)},
        summary="The holder's payout profile, numbers masked",
    )
    def get(self, request: Request) -> Response:
        actor = self.actor()
        acting_party(actor)
        return Response(PayoutProfileOutput(payout_selectors.payout_profile_get_for_actor(actor=actor)).data)

    @extend_schema(
        request=PayoutProfileInput,
        responses={200: PayoutProfileOutput, **error_responses(400, 403)},
        summary="Set or change the payout profile (a key with payouts:write); it awaits staff verification again",
    )
    def put(self, request: Request) -> Response:
        actor = self.actor()
        holder = acting_party(actor)
        data = PayoutProfileInput(data=request.data)
        data.is_valid(raise_exception=True)
        profile = payout_services.payout_profile_set(
            actor=actor, holder=holder, details=payout_services.PayoutDetails(**data.validated_data)
        )
        return Response(PayoutProfileOutput(profile).data)


class PayoutExportView(RegistryAPIView):
    renderer_classes = [CSVRenderer]

    @extend_schema(
        responses={(200, "text/csv"): str, **error_responses(403, 404, 409)},
        summary="The bank transfer file of a settled period (staff), CSV",
    )
    def get(self, request: Request, settlement_pk: int) -> StreamingHttpResponse:
        rows = list(payout_selectors.payout_export_rows(actor=self.actor(), settlement_pk=settlement_pk))
        response = StreamingHttpResponse(
            spreadsheets.csv_stream([payout_selectors.PAYOUT_EXPORT_COLUMNS, *rows], byte_order_mark=True),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="payouts-settlement-{settlement_pk}.csv"'
        response["Cache-Control"] = "no-store"
        return response
