"""The compensation API: tariffs and balances, usage manifests with their outcomes and violations, settlements with
their statements and invoices, and market-share distributions. Each view translates HTTP to the services and
selectors of one part (``compensation.ledger``, ``usage`` or ``settlement``); exports are ``export_views``.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.http import StreamingHttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from compensation.api.serializers import (
    BalanceFilter,
    BalanceOutput,
    ConsolidatedMemberOutput,
    ConsolidatedStatementOutput,
    DistributionInput,
    DistributionOutput,
    InvoiceLineOutput,
    InvoiceOutput,
    ManifestInput,
    ManifestOutput,
    ManifestUploadInput,
    OutcomeRowOutput,
    RecordingSplitInput,
    RecordingSplitOutput,
    SettlementInput,
    SettlementOutput,
    StatementLineOutput,
    StatementOutput,
    TariffInput,
    TariffListFilter,
    TariffOutput,
    ViolationOutput,
)
from compensation.ledger import selectors as ledger_selectors
from compensation.models import DISTRIBUTION_JOB, MANIFEST_JOB, SETTLEMENT_JOB
from compensation.settlement import distribution
from compensation.settlement import selectors as settlement_selectors
from compensation.settlement import services as settlement_services
from compensation.usage import selectors as usage_selectors
from compensation.usage import services as usage_services
from compensation.usage import splits, tariffs
from core import spreadsheets
from core.api.fastjson import OrjsonParser
from core.api.fields import ID_MAX
from core.api.schema import error_responses
from core.api.views import CSVRenderer, RegistryAPIView, acting_party
from core.errors import InvalidInput, NotFound, NotPermitted
from core.i18n import requested_language
from core.jobs import job_retry
from registry.models import Party


class TariffListCreateView(RegistryAPIView):
    @extend_schema(parameters=[TariffListFilter], responses=TariffOutput(many=True), summary="Tariffs, past and future")
    def get(self, request: Request) -> Response:
        filters = TariffListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return self.paginate(usage_selectors.tariff_list(**filters.validated_data), TariffOutput)

    @extend_schema(request=TariffInput, responses={201: TariffOutput}, summary="Set a tariff from now or later (staff)")
    def post(self, request: Request) -> Response:
        data = TariffInput(data=request.data)
        data.is_valid(raise_exception=True)
        tariff = tariffs.tariff_set(actor=self.actor(), **data.validated_data)
        return Response(TariffOutput(tariff).data, status=status.HTTP_201_CREATED)


class RecordingSplitListCreateView(RegistryAPIView):
    @extend_schema(responses=RecordingSplitOutput(many=True), summary="Recording splits, past and future")
    def get(self, request: Request) -> Response:
        return self.paginate(usage_selectors.recording_split_list(), RecordingSplitOutput)

    @extend_schema(
        request=RecordingSplitInput,
        responses={201: RecordingSplitOutput},
        summary="Set the musical work's share of a recording's use from now or later (staff)",
    )
    def post(self, request: Request) -> Response:
        data = RecordingSplitInput(data=request.data)
        data.is_valid(raise_exception=True)
        split = splits.recording_split_set(actor=self.actor(), **data.validated_data)
        return Response(RecordingSplitOutput(split).data, status=status.HTTP_201_CREATED)


class BalanceView(RegistryAPIView):
    @extend_schema(
        parameters=[BalanceFilter],
        responses={200: BalanceOutput, **error_responses(404)},
        summary="The party's balances by account and month",
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
        balances = ledger_selectors.party_balances(
            party=party,
            period_start=filters.validated_data["period_start"],
            period_end=filters.validated_data["period_end"],
        )
        return Response(BalanceOutput({**balances, "party_name": party.name, "unit": "micro_won"}).data)


class JSONLinesRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept ``?format=jsonl``; the views stream the body themselves."""

    media_type = "application/x-ndjson"
    format = "jsonl"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return orjson.dumps(data)


_UPLOAD_FIELDS = ("manifest_id", "model", "model_version", "purpose", "period_start", "period_end", "format")


class ManifestListCreateView(RegistryAPIView):
    parser_classes = [OrjsonParser, MultiPartParser, FormParser]

    @extend_schema(responses=ManifestOutput(many=True), summary="The lab's usage manifests")
    def get(self, request: Request) -> Response:
        return self.paginate(usage_selectors.manifest_list_for_actor(actor=self.actor()), ManifestOutput)

    @extend_schema(
        request={"application/json": ManifestInput, "multipart/form-data": ManifestUploadInput},
        responses={202: ManifestOutput, 200: ManifestOutput},
        summary="Submit a usage manifest (JSON up to 10,000 lines, or a CSV/JSON Lines file, gzip allowed)",
    )
    def post(self, request: Request) -> Response:
        actor = self.actor()
        upload = request.FILES.get("file")
        if upload is not None:
            form: Any = request.data
            fields = {name: form.get(name) for name in _UPLOAD_FIELDS}
            manifest, created = usage_services.usage_manifest_submit_file(
                actor=actor, fields=fields, file=upload, filename=upload.name or ""
            )
        else:
            if request.content_type.startswith("multipart/"):
                raise InvalidInput(_("Attach the manifest as the file field."), code="required", field="file")
            data = request.data if isinstance(request.data, dict) else {}
            manifest, created = usage_services.usage_manifest_submit_json(actor=actor, data=data)
        body = ManifestOutput(manifest).data
        response = Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)
        response["Location"] = body["url"]
        return response


class ManifestDetailView(RegistryAPIView):
    @extend_schema(
        responses=ManifestOutput,
        summary="A manifest's status, progress and outcomes",
        description=(
            "`summary.outcomes` gives lines and amounts per outcome, `summary.totals` the lines the lab sent and where "
            "the money went. A use of a recording split with its musical work is two rows in the acknowledgement "
            "file but one line here: it counts under its recording side's outcome, while its musical-work side adds "
            "its amount to its own outcome's (which may then show an amount with no lines). The outcomes' lines sum "
            "to `totals.lines`, their amounts to `totals.amount_micro`."
        ),
    )
    def get(self, request: Request, manifest_pk: int) -> Response:
        manifest = usage_selectors.manifest_get_for_actor(actor=self.actor(), manifest_pk=manifest_pk)
        return Response(ManifestOutput(manifest, context={"with_summary": True}).data)


class ManifestRetryView(RegistryAPIView):
    @extend_schema(request=None, responses={202: ManifestOutput}, summary="Queue a failed manifest again (staff)")
    def post(self, request: Request, manifest_pk: int) -> Response:
        manifest = job_retry(actor=self.actor(), kind=MANIFEST_JOB, job_id=manifest_pk)
        return Response(ManifestOutput(manifest).data, status=status.HTTP_202_ACCEPTED)


class ManifestOutcomesView(RegistryAPIView):
    renderer_classes = [renderers.JSONRenderer, CSVRenderer, JSONLinesRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl"])],
        responses={
            (200, "application/json"): OutcomeRowOutput(many=True),
            (200, "text/csv"): str,
            (200, "application/x-ndjson"): str,
        },
        summary="The acknowledgement file: one row per line with its outcome, work, amount and destination",
        description=(
            "A use of a recording split with its musical work has two rows, one per `side`; the JSON pages' `count` "
            "counts rows. The lines the lab sent are the manifest's `summary.totals.lines`."
        ),
    )
    def get(self, request: Request, manifest_pk: int) -> StreamingHttpResponse | Response:
        manifest = usage_selectors.manifest_get_for_actor(actor=self.actor(), manifest_pk=manifest_pk)
        # Reasons in the language asked for now, else in the one the manifest was uploaded in.
        language = usage_selectors.manifest_outcome_language(manifest=manifest, asked=requested_language(request))
        if request.accepted_renderer.format == "json":
            # JSON (the default): pages of rows, like every other list; ?format=csv|jsonl for the whole file.
            paginator = (self.pagination_class or PageNumberPagination)()
            page = paginator.paginate_queryset(
                usage_selectors.manifest_outcome_lines(manifest=manifest), request, view=self
            )
            json_rows = [usage_selectors.outcome_row(values, language=language) for values in page or []]
            paged = paginator.get_paginated_response(json_rows)
            paged["Content-Language"] = language
            return paged
        rows = usage_selectors.manifest_outcome_rows(manifest=manifest, language=language)
        if request.accepted_renderer.format == "jsonl":
            response = StreamingHttpResponse(
                (orjson.dumps(row) + b"\n" for row in rows), content_type="application/x-ndjson"
            )
            extension = "jsonl"
        else:
            response = StreamingHttpResponse(
                spreadsheets.csv_stream(usage_selectors.outcome_csv_rows(rows)), content_type="text/csv; charset=utf-8"
            )
            extension = "csv"
        filename = f"manifest-{manifest.pk}-outcomes.{extension}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Content-Language"] = language
        return response


class ViolationListView(RegistryAPIView):
    @extend_schema(
        responses=ViolationOutput(many=True),
        summary="Uses of refused works: a lab's own, those of a holder's works, or all (staff)",
    )
    def get(self, request: Request) -> Response:
        return self.paginate(usage_selectors.violation_list_for_actor(actor=self.actor()), ViolationOutput)


# --- Settlements, statements and invoices ---------------------------------------------------------


class SettlementListCreateView(RegistryAPIView):
    @extend_schema(responses=SettlementOutput(many=True), summary="Settlement runs (staff)")
    def get(self, request: Request) -> Response:
        return self.paginate(settlement_selectors.settlement_list(actor=self.actor()), SettlementOutput)

    @extend_schema(
        request=SettlementInput,
        responses={202: SettlementOutput, 200: SettlementOutput},
        summary="Settle a period (staff): the same period again answers with the existing settlement",
    )
    def post(self, request: Request) -> Response:
        data = SettlementInput(data=request.data)
        data.is_valid(raise_exception=True)
        settlement, created = settlement_services.settlement_create(
            actor=self.actor(),
            first_day=data.validated_data["period_start"],
            last_day=data.validated_data["period_end"],
        )
        settlement.refresh_from_db()
        response = Response(
            SettlementOutput(settlement).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        )
        response["Location"] = f"/api/v1/settlements/{settlement.pk}"
        return response


class SettlementDetailView(RegistryAPIView):
    @extend_schema(responses=SettlementOutput, summary="A settlement's status, progress and totals (staff)")
    def get(self, request: Request, settlement_pk: int) -> Response:
        settlement = settlement_selectors.settlement_get(actor=self.actor(), settlement_pk=settlement_pk)
        return Response(SettlementOutput(settlement).data)


class SettlementRetryView(RegistryAPIView):
    @extend_schema(
        request=None,
        responses={202: SettlementOutput},
        summary="Queue a failed settlement again (staff): it continues after its last finished step",
    )
    def post(self, request: Request, settlement_pk: int) -> Response:
        settlement = job_retry(actor=self.actor(), kind=SETTLEMENT_JOB, job_id=settlement_pk)
        return Response(SettlementOutput(settlement).data, status=status.HTTP_202_ACCEPTED)


_SETTLEMENT = OpenApiParameter(
    "settlement", {"type": "integer", "minimum": 1, "maximum": ID_MAX}, description="Only this settlement's"
)


_MEMBER = OpenApiParameter(
    "member", {"type": "integer", "minimum": 1, "maximum": ID_MAX}, description="Only this member's (holder's)"
)


class StatementListView(RegistryAPIView):
    @extend_schema(
        parameters=[_SETTLEMENT, _MEMBER],
        responses=StatementOutput(many=True),
        summary=(
            "Statements of settled periods: a rights holder's own, an agent's members' sent to it under their "
            "mandates, or all (staff)"
        ),
    )
    def get(self, request: Request) -> Response:
        statements = settlement_selectors.statement_list_for_actor(
            actor=self.actor(), settlement_pk=_int_param(request, "settlement"), member_pk=_int_param(request, "member")
        )
        return self.paginate(statements.prefetch_related("recipients__party"), StatementOutput)


class StatementDetailView(RegistryAPIView):
    @extend_schema(responses=StatementOutput, summary="A statement's balances, payout and what is carried forward")
    def get(self, request: Request, statement_pk: int) -> Response:
        statement = settlement_selectors.statement_get_for_actor(actor=self.actor(), statement_pk=statement_pk)
        return Response(StatementOutput(statement).data)


class StatementLinesView(RegistryAPIView):
    @extend_schema(responses=StatementLineOutput(many=True), summary="A statement's lines: by work, lab and manifest")
    def get(self, request: Request, statement_pk: int) -> Response:
        statement = settlement_selectors.statement_get_for_actor(actor=self.actor(), statement_pk=statement_pk)
        return self.paginate(settlement_selectors.statement_lines(statement=statement), StatementLineOutput)


class ConsolidatedStatementListView(RegistryAPIView):
    @extend_schema(
        parameters=[_SETTLEMENT],
        responses=ConsolidatedStatementOutput(many=True),
        summary="Consolidated statements: an agent's own, one per settled period, or all (staff)",
    )
    def get(self, request: Request) -> Response:
        consolidated = settlement_selectors.consolidated_list_for_actor(
            actor=self.actor(), settlement_pk=_int_param(request, "settlement")
        )
        return self.paginate(consolidated, ConsolidatedStatementOutput)


class ConsolidatedStatementDetailView(RegistryAPIView):
    @extend_schema(
        responses=ConsolidatedStatementOutput,
        summary="A consolidated statement's grand totals: the sums of its members' statements",
    )
    def get(self, request: Request, consolidated_pk: int) -> Response:
        consolidated = settlement_selectors.consolidated_get_for_actor(
            actor=self.actor(), consolidated_pk=consolidated_pk
        )
        return Response(ConsolidatedStatementOutput(consolidated).data)


class ConsolidatedStatementMembersView(RegistryAPIView):
    @extend_schema(
        responses=ConsolidatedMemberOutput(many=True),
        summary="A consolidated statement's sections: each member's subtotal, withholding and net, by member name",
    )
    def get(self, request: Request, consolidated_pk: int) -> Response:
        consolidated = settlement_selectors.consolidated_get_for_actor(
            actor=self.actor(), consolidated_pk=consolidated_pk
        )
        return self.paginate(
            settlement_selectors.consolidated_members(consolidated=consolidated), ConsolidatedMemberOutput
        )


class InvoiceListView(RegistryAPIView):
    @extend_schema(
        parameters=[_SETTLEMENT],
        responses=InvoiceOutput(many=True),
        summary="Invoices: a lab's own of settled periods, or all (staff)",
    )
    def get(self, request: Request) -> Response:
        settlement = _int_param(request, "settlement")
        return self.paginate(
            settlement_selectors.invoice_list_for_actor(actor=self.actor(), settlement_pk=settlement), InvoiceOutput
        )


class InvoiceDetailView(RegistryAPIView):
    @extend_schema(responses=InvoiceOutput, summary="An invoice's totals")
    def get(self, request: Request, invoice_pk: int) -> Response:
        invoice = settlement_selectors.invoice_get_for_actor(actor=self.actor(), invoice_pk=invoice_pk)
        return Response(InvoiceOutput(invoice).data)


class InvoiceLinesView(RegistryAPIView):
    @extend_schema(
        responses=InvoiceLineOutput(many=True),
        summary="An invoice's lines: usage by manifest and outcome, violations by work, adjustments",
        description=(
            "A usage line's `lines` counts uses (manifest lines), not rows: a use of a recording split with its "
            "musical work counts once, under its recording side's outcome; `amount_micro` sums both sides exactly, "
            "so a musical-work side whose outcome differs adds an amount with no line to its own outcome."
        ),
    )
    def get(self, request: Request, invoice_pk: int) -> Response:
        invoice = settlement_selectors.invoice_get_for_actor(actor=self.actor(), invoice_pk=invoice_pk)
        return self.paginate(settlement_selectors.invoice_lines(invoice=invoice), InvoiceLineOutput)


class DistributionListCreateView(RegistryAPIView):
    @extend_schema(responses=DistributionOutput(many=True), summary="Market-share distributions (staff)")
    def get(self, request: Request) -> Response:
        return self.paginate(settlement_selectors.distribution_list(actor=self.actor()), DistributionOutput)

    @extend_schema(
        request=DistributionInput,
        responses={202: DistributionOutput, 200: DistributionOutput},
        summary="Distribute a hold month's unclaimed escrow by market share, once (staff)",
    )
    def post(self, request: Request) -> Response:
        data = DistributionInput(data=request.data)
        data.is_valid(raise_exception=True)
        found, created = distribution.distribution_start(
            actor=self.actor(), hold_month=data.validated_data["hold_month"]
        )
        found.refresh_from_db()
        return Response(
            DistributionOutput(found).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        )


class DistributionRetryView(RegistryAPIView):
    @extend_schema(
        request=None, responses={202: DistributionOutput}, summary="Queue a failed distribution again (staff)"
    )
    def post(self, request: Request, distribution_pk: int) -> Response:
        found = job_retry(actor=self.actor(), kind=DISTRIBUTION_JOB, job_id=distribution_pk)
        return Response(DistributionOutput(found).data, status=status.HTTP_202_ACCEPTED)


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(_("Expected a whole number."), code="invalid", field=name) from None
    if not 1 <= number <= ID_MAX:
        raise InvalidInput(_("No such id: ids are whole numbers from 1."), code="out_of_range", field=name)
    return number
