"""Registry API views: translate HTTP to services and selectors, nothing more."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.http import FileResponse, HttpRequest, JsonResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core import spreadsheets
from core.api.fastjson import JSONParser
from core.api.schema import error_responses
from core.api.views import CSVRenderer, RegistryAPIView, acting_party
from core.errors import NotFound
from core.jobs import job_retry
from registry import selectors, services
from registry.api.serializers import (
    ApiKeyCreateInput,
    ApiKeyOutput,
    BulkImportInput,
    ClaimCreateInput,
    ClaimDecisionInput,
    ClaimEvidenceInput,
    ClaimEvidenceOutput,
    ClaimListFilter,
    ClaimOutput,
    ClaimShareDefaultOutput,
    DomainCreateInput,
    DomainOutput,
    ImportOutput,
    ImportRowErrorOutput,
    LicensingContactInput,
    LicensingContactOutput,
    MandateCreateInput,
    MandateEndInput,
    MandateOutput,
    MeOutput,
    WorkClaimOutput,
    WorkCreateInput,
    WorkFileInput,
    WorkFileOutput,
    WorkListFilter,
    WorkOutput,
)
from registry.imports import work_import_create
from registry.mandates import (
    acting_holder,
    mandate_accept,
    mandate_end,
    mandate_get_for_actor,
    mandate_invite,
    mandate_list_for_actor,
)
from registry.models import WORK_FILE_JOB, WORK_IMPORT_JOB, OwnershipClaim, Party
from registry.search import search_query_clean
from registry.work_files import work_file_create, work_register_with_file


class MeView(RegistryAPIView):
    @extend_schema(responses=MeOutput, summary="Who the caller is and what it may do")
    def get(self, request: Request) -> Response:
        actor = self.actor()
        scopes = actor.api_key.scopes if actor.api_key else ["session"]
        user = None
        if actor.user is not None and actor.user.is_authenticated:
            user = {"id": actor.user.pk, "email": getattr(actor.user, "email", "")}
        return Response(
            MeOutput({"user": user, "party": actor.party, "scopes": scopes, "is_staff": actor.is_staff}).data
        )


class WorkListCreateView(RegistryAPIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        parameters=[WorkListFilter],
        responses=WorkOutput(many=True),
        summary="The caller's works; with q, those a search finds, best first",
    )
    def get(self, request: Request) -> Response:
        filters = WorkListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = dict(filters.validated_data)
        query = values.pop("q", None)
        _actor, holder = acting_holder(actor=self.actor(), member_id=values.pop("on_behalf_of", None))
        if query is None:
            return self.paginate(selectors.work_list_for_holder(holder=holder, **values), WorkOutput)
        works = selectors.work_search_for_holder(holder=holder, query=search_query_clean(query), **values)
        return self.paginate(works, WorkOutput)

    @extend_schema(
        request=WorkCreateInput,
        responses={201: WorkOutput, 202: WorkOutput, **error_responses(413)},
        summary="Register a work",
        description=(
            "201 with the work. With a file (multipart), 202: the work is registered and its file queued for "
            "fingerprinting; Location is the file's job (GET it for status and progress), whose SHA-256 and "
            "ISCC-CODE are added to the work's identifiers when it is done."
        ),
    )
    def post(self, request: Request) -> Response:
        data = WorkCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        actor, holder = acting_holder(actor=self.actor(), member_id=values.pop("on_behalf_of", None))
        upload = values.pop("file", None)
        musical_work_id = values.pop("musical_work")
        if musical_work_id is not None:
            values["musical_work"] = selectors.work_get(work_id=musical_work_id)
        draft = services.work_draft_build(file_pending=upload is not None, **values)
        if upload is None:
            work, claim = services.work_register(actor=actor, holder=holder, draft=draft)
        else:
            # Stored, not read: a worker fingerprints it and adds its SHA-256 and ISCC-CODE to the work.
            work, claim, work_file = work_register_with_file(
                actor=actor, holder=holder, draft=draft, file=upload, filename=upload.name or ""
            )
        work = selectors.work_get_for_actor(actor=actor, work_id=work.pk)
        body = dict(WorkOutput(work).data)
        body["claim"] = WorkClaimOutput(claim).data
        if upload is None:
            return Response(body, status=status.HTTP_201_CREATED)
        response = Response(body, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/works/{work.pk}/files/{work_file.pk}"
        return response


class WorkDetailView(RegistryAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("on_behalf_of", int, description="A society or agent: a member's work.")],
        responses=WorkOutput,
        summary="One of the caller's works",
    )
    def get(self, request: Request, work_id: int) -> Response:
        actor = self.actor()
        if request.query_params.get("on_behalf_of"):
            actor, _holder = acting_holder(actor=actor, member_id=request.query_params["on_behalf_of"])
        work = selectors.work_get_for_actor(actor=actor, work_id=work_id)
        return Response(WorkOutput(work).data)


class WorkFileCreateView(RegistryAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request=WorkFileInput,
        responses={202: WorkFileOutput, **error_responses(403, 404, 413)},
        summary="Add a file to a work: a worker fingerprints it (SHA-256, ISCC-CODE) and adds them as identifiers",
    )
    def post(self, request: Request, work_id: int) -> Response:
        actor = self.actor()
        holder = acting_party(actor)
        work = selectors.work_get_for_actor(actor=actor, work_id=work_id)
        data = WorkFileInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        work_file = work_file_create(actor=actor, holder=holder, work=work, file=upload, filename=upload.name or "")
        response = Response(WorkFileOutput(work_file).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/works/{work.pk}/files/{work_file.pk}"
        return response


class WorkFileDetailView(RegistryAPIView):
    @extend_schema(responses=WorkFileOutput, summary="A work file's fingerprinting: status, progress, outcome")
    def get(self, request: Request, work_id: int, file_id: int) -> Response:
        work_file = selectors.work_file_get_for_actor(actor=self.actor(), work_id=work_id, file_id=file_id)
        return Response(WorkFileOutput(work_file).data)


class WorkFileRetryView(RegistryAPIView):
    @extend_schema(request=None, responses={202: WorkFileOutput}, summary="Queue a failed work file again (staff)")
    def post(self, request: Request, work_id: int, file_id: int) -> Response:
        work_file = selectors.work_file_get_for_actor(actor=self.actor(), work_id=work_id, file_id=file_id)
        work_file = job_retry(actor=self.actor(), kind=WORK_FILE_JOB, job_id=work_file.pk)
        return Response(WorkFileOutput(work_file).data, status=status.HTTP_202_ACCEPTED)


class WorkLicensingContactView(RegistryAPIView):
    @extend_schema(
        request=LicensingContactInput,
        responses=WorkOutput,
        summary="Set a work's own licensing contact (holders with a verified claim); empty values use the holders'",
    )
    def put(self, request: Request, work_id: int) -> Response:
        actor = self.actor()
        holder = acting_party(actor)
        work = selectors.work_get_for_actor(actor=actor, work_id=work_id)
        data = LicensingContactInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.work_licensing_contact_set(
            actor=actor,
            holder=holder,
            work=work,
            email=data.validated_data["licensing_email"],
            url=data.validated_data["licensing_url"],
        )
        return Response(WorkOutput(selectors.work_get_for_actor(actor=actor, work_id=work_id)).data)


def _licensing_contact(party: Party) -> dict[str, str]:
    return {"licensing_email": party.licensing_email, "licensing_url": party.licensing_url}


class LicensingContactView(RegistryAPIView):
    """The acting holder's licensing contact: shown on the public page of each work it is verified to own."""

    @extend_schema(responses=LicensingContactOutput, summary="The caller's licensing contact")
    def get(self, request: Request) -> Response:
        party = acting_party(self.actor())
        return Response(LicensingContactOutput(_licensing_contact(party)).data)

    @extend_schema(
        request=LicensingContactInput, responses=LicensingContactOutput, summary="Set the caller's licensing contact"
    )
    def put(self, request: Request) -> Response:
        actor = self.actor()
        party = acting_party(actor)
        data = LicensingContactInput(data=request.data)
        data.is_valid(raise_exception=True)
        party = services.party_licensing_contact_set(
            actor=actor,
            party=party,
            email=data.validated_data["licensing_email"],
            url=data.validated_data["licensing_url"],
        )
        return Response(LicensingContactOutput(_licensing_contact(party)).data)


class WorkBulkView(RegistryAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request=BulkImportInput, responses={202: ImportOutput}, summary="Register many works from a file")
    def post(self, request: Request) -> Response:
        data = BulkImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor, holder = acting_holder(actor=self.actor(), member_id=data.validated_data.get("on_behalf_of"))
        upload = data.validated_data["file"]
        work_import = work_import_create(actor=actor, holder=holder, file=upload, filename=upload.name or "")
        response = Response(ImportOutput(work_import).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/imports/{work_import.pk}"
        return response


class ImportDetailView(RegistryAPIView):
    @extend_schema(responses=ImportOutput, summary="Progress and errors of a bulk import")
    def get(self, request: Request, import_id: int) -> Response:
        work_import = selectors.work_import_get_for_actor(actor=self.actor(), import_id=import_id)
        return Response(ImportOutput(work_import).data)


class ImportRetryView(RegistryAPIView):
    @extend_schema(request=None, responses={202: ImportOutput}, summary="Queue a failed bulk import again (staff)")
    def post(self, request: Request, import_id: int) -> Response:
        work_import = job_retry(actor=self.actor(), kind=WORK_IMPORT_JOB, job_id=import_id)
        return Response(ImportOutput(work_import).data, status=status.HTTP_202_ACCEPTED)


class ImportErrorsView(RegistryAPIView):
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"])],
        responses={(200, "application/json"): ImportRowErrorOutput(many=True), (200, "text/csv"): str},
        summary="Every row error of a bulk import (JSON pages or one CSV file)",
    )
    def get(self, request: Request, import_id: int) -> Response | StreamingHttpResponse:
        work_import = selectors.work_import_get_for_actor(actor=self.actor(), import_id=import_id)
        errors = selectors.work_import_errors(work_import=work_import)
        if request.accepted_renderer.format != "csv":
            return self.paginate(errors, ImportRowErrorOutput)

        response = StreamingHttpResponse(
            spreadsheets.csv_stream(selectors.work_import_error_rows(errors=errors)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="import-{work_import.pk}-errors.csv"'
        return response


class ClaimListCreateView(RegistryAPIView):
    @extend_schema(parameters=[ClaimListFilter], responses=ClaimOutput(many=True), summary="Ownership claims")
    def get(self, request: Request) -> Response:
        filters = ClaimListFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        claims = selectors.claim_list_for_actor(
            actor=self.actor(), status=filters.validated_data.get("status"), work_id=filters.validated_data.get("work")
        )
        return self.paginate(claims, ClaimOutput)

    @extend_schema(
        request=ClaimCreateInput,
        responses={201: ClaimOutput, **error_responses(404)},
        summary="Claim a share of a work",
    )
    def post(self, request: Request) -> Response:
        data = ClaimCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor, holder = acting_holder(actor=self.actor(), member_id=data.validated_data.get("on_behalf_of"))
        work = selectors.work_get(work_id=data.validated_data["work"])
        claim = services.claim_file(
            actor=actor,
            holder=holder,
            work=work,
            share_bp=data.validated_data["share_bp"],
            valid_from=data.validated_data["valid_from"],
        )
        return Response(ClaimOutput(claim).data, status=status.HTTP_201_CREATED)


class _ClaimDecisionView(RegistryAPIView):
    """A staff decision on one claim, with its reason: each view names the service that makes it."""

    def decide(self, request: Request, claim_id: int, decision: Callable[..., OwnershipClaim]) -> Response:
        actor = self.actor()
        data = ClaimDecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        claim = selectors.claim_get_for_actor(actor=actor, claim_id=claim_id)
        claim = decision(actor=actor, claim=claim, reason=data.validated_data["reason"])
        return Response(ClaimOutput(claim).data)


class ClaimVerifyView(_ClaimDecisionView):
    @extend_schema(request=ClaimDecisionInput, responses=ClaimOutput, summary="Verify a claim (staff)")
    def post(self, request: Request, claim_id: int) -> Response:
        return self.decide(request, claim_id, services.claim_verify)


class ClaimAcceptForReviewView(_ClaimDecisionView):
    @extend_schema(
        request=ClaimDecisionInput,
        responses=ClaimOutput,
        summary="Accept a claim for review (staff)",
        description=(
            "A pending claim changes nothing until staff accept it for review. Then, if it and the verified "
            "shares pass 100%, the work is disputed and its uses are held in escrow until the claim is verified "
            "or rejected."
        ),
    )
    def post(self, request: Request, claim_id: int) -> Response:
        return self.decide(request, claim_id, services.claim_accept_for_review)


class ClaimRejectView(_ClaimDecisionView):
    @extend_schema(request=ClaimDecisionInput, responses=ClaimOutput, summary="Reject a claim (staff)")
    def post(self, request: Request, claim_id: int) -> Response:
        return self.decide(request, claim_id, services.claim_reject)


class DomainListCreateView(RegistryAPIView):
    @extend_schema(responses=DomainOutput(many=True), summary="The caller's domains")
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.domain_list_for_actor(actor=self.actor()), DomainOutput)

    @extend_schema(request=DomainCreateInput, responses={201: DomainOutput}, summary="Start verifying a domain")
    def post(self, request: Request) -> Response:
        actor = self.actor()
        holder = acting_party(actor)
        data = DomainCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        domain = services.domain_add(actor=actor, holder=holder, **data.validated_data)
        return Response(DomainOutput(domain).data, status=status.HTTP_201_CREATED)


class DomainDetailView(RegistryAPIView):
    @extend_schema(responses=DomainOutput, summary="One domain and how to verify it")
    def get(self, request: Request, domain_id: int) -> Response:
        return Response(DomainOutput(selectors.domain_get_for_actor(actor=self.actor(), domain_id=domain_id)).data)


class DomainCheckView(RegistryAPIView):
    @extend_schema(request=None, responses=DomainOutput, summary="Check the domain's proof now")
    def post(self, request: Request, domain_id: int) -> Response:
        actor = self.actor()
        domain = selectors.domain_get_for_actor(actor=actor, domain_id=domain_id)
        domain = services.domain_check(actor=actor, domain=domain)
        return Response(DomainOutput(domain).data)


class ApiKeyListCreateView(RegistryAPIView):
    @extend_schema(responses=ApiKeyOutput(many=True), summary="The party's API keys (never the secrets)")
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.apikey_list_for_actor(actor=self.actor()), ApiKeyOutput)

    @extend_schema(request=ApiKeyCreateInput, responses={201: ApiKeyOutput}, summary="Create a key, shown once")
    def post(self, request: Request) -> Response:
        actor = self.actor()
        party = acting_party(actor)
        data = ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw_key = services.apikey_create(actor=actor, party=party, **data.validated_data)
        body = dict(ApiKeyOutput(key).data)
        body["key"] = raw_key
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(RegistryAPIView):
    @extend_schema(request=None, responses=ApiKeyOutput, summary="Revoke a key")
    def post(self, request: Request, key_id: int) -> Response:
        actor = self.actor()
        key = selectors.apikey_get_for_actor(actor=actor, key_id=key_id)
        return Response(ApiKeyOutput(services.apikey_revoke(actor=actor, api_key=key)).data)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and database reachability, for load balancers and compose health checks."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "ok"})
    except Exception as exc:  # any database failure means unhealthy
        return JsonResponse({"status": "error", "error": exc.__class__.__name__}, status=503)


class ClaimEvidenceListCreateView(RegistryAPIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(
        responses={200: ClaimEvidenceOutput(many=True), **error_responses(401, 404)},
        summary="A claim's evidence (its claimant and staff)",
    )
    def get(self, request: Request, claim_id: int) -> Response:
        evidence = selectors.claim_evidence_list_for_actor(actor=self.actor(), claim_id=claim_id)
        return self.paginate(evidence, ClaimEvidenceOutput)

    @extend_schema(
        request={"multipart/form-data": ClaimEvidenceInput, "application/json": ClaimEvidenceInput},
        responses={201: ClaimEvidenceOutput, **error_responses(401, 404, 409, 413)},
        summary="Add evidence to a claim: a registration certificate, contract, publication record, ISNI/IPI or text",
    )
    def post(self, request: Request, claim_id: int) -> Response:
        actor = self.actor()
        claim = selectors.claim_get_for_actor(actor=actor, claim_id=claim_id)
        data = ClaimEvidenceInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        upload = values.get("file")
        evidence = services.claim_evidence_add(
            actor=actor,
            claim=claim,
            kind=values["kind"],
            file=upload,
            filename=(upload.name or "") if upload is not None else "",
            registration_number=values["registration_number"],
            party_identifier=values["party_identifier"],
            text=values["text"],
        )
        return Response(ClaimEvidenceOutput(evidence).data, status=status.HTTP_201_CREATED)


class ClaimEvidenceFileView(RegistryAPIView):
    @extend_schema(
        responses={(200, "application/octet-stream"): bytes, **error_responses(401, 404)},
        summary="Download an evidence file (its claimant and staff; anyone else 404)",
    )
    def get(self, request: Request, claim_id: int, evidence_id: int) -> FileResponse:
        evidence = selectors.claim_evidence_get_for_actor(
            actor=self.actor(), claim_id=claim_id, evidence_id=evidence_id
        )
        if not evidence.file:
            raise NotFound()
        # Always an attachment, never rendered inline: a claimant's HTML or SVG must not run in the registry's origin.
        response = FileResponse(
            evidence.file.open("rb"),
            as_attachment=True,
            filename=evidence.original_name or f"evidence-{evidence.pk}",
            content_type="application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response


class WorkClaimShareView(RegistryAPIView):
    @extend_schema(
        responses={200: ClaimShareDefaultOutput, **error_responses(401, 404)},
        summary="The share a claim to this work names when it gives none (shown before confirming)",
    )
    def get(self, request: Request, work_id: int) -> Response:
        actor = self.actor()
        work = selectors.work_get(work_id=work_id)
        default = selectors.claim_share_default(work=work, holder=actor.party)
        return Response(
            ClaimShareDefaultOutput(
                {
                    "share_bp": default.share_bp,
                    "from_default": default.from_default,
                    "co_claimants": default.co_claimants,
                }
            ).data
        )


class MandateListCreateView(RegistryAPIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses=MandateOutput(many=True), summary="Mandates the caller holds or gave, and invitations")
    def get(self, request: Request) -> Response:
        return self.paginate(mandate_list_for_actor(actor=self.actor()), MandateOutput)

    @extend_schema(
        request=MandateCreateInput,
        responses={201: MandateOutput, **error_responses(403, 404)},
        summary="A society or agent invites a member to give it a mandate",
    )
    def post(self, request: Request) -> Response:
        actor = self.actor()
        agent = acting_party(actor)
        data = MandateCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        member_id = values.pop("member")
        work_ids = values.pop("works")
        mandate = mandate_invite(
            actor=actor,
            agent=agent,
            member=selectors.party_get(party_id=member_id) if member_id is not None else None,
            works=selectors.works_get(work_ids=work_ids),
            **values,
        )
        mandate = mandate_get_for_actor(actor=actor, mandate_id=mandate.pk)
        return Response(MandateOutput(mandate).data, status=status.HTTP_201_CREATED)


class MandateAcceptView(RegistryAPIView):
    @extend_schema(request=None, responses=MandateOutput, summary="The member accepts a mandate (or staff verify it)")
    def post(self, request: Request, mandate_id: int) -> Response:
        actor = self.actor()
        mandate = mandate_get_for_actor(actor=actor, mandate_id=mandate_id)
        mandate_accept(actor=actor, mandate=mandate)
        return Response(MandateOutput(mandate_get_for_actor(actor=actor, mandate_id=mandate_id)).data)


class MandateEndView(RegistryAPIView):
    @extend_schema(request=MandateEndInput, responses=MandateOutput, summary="End a mandate (either side)")
    def post(self, request: Request, mandate_id: int) -> Response:
        actor = self.actor()
        data = MandateEndInput(data=request.data)
        data.is_valid(raise_exception=True)
        mandate = mandate_get_for_actor(actor=actor, mandate_id=mandate_id)
        mandate_end(actor=actor, mandate=mandate, reason=data.validated_data["reason"])
        return Response(MandateOutput(mandate_get_for_actor(actor=actor, mandate_id=mandate_id)).data)
