"""Input and output shapes of the registry API, one pair per operation where they differ."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.fields import ID_MAX, RegistryDateField, RegistryDateTimeField, failure_reason_field
from registry.domains import dns_record_name, dns_record_value, file_url
from registry.embedded_rights import refusal_purpose_offered
from registry.identifiers import Scheme
from registry.models import (
    ApiKey,
    ApiScope,
    ClaimEvidence,
    ClaimStatus,
    ContributorRole,
    DomainMethod,
    EvidenceKind,
    FileIdentifierOutcome,
    Identifier,
    Mandate,
    MandatePower,
    MandateScope,
    MusicalWorkContributor,
    OwnershipClaim,
    Party,
    StatementsTo,
    VerifiedDomain,
    Work,
    WorkFile,
    WorkFileStatus,
    WorkImport,
    WorkImportRowError,
    WorkKind,
    WorkStatus,
)

# --- inputs ---------------------------------------------------------------------------

ON_BEHALF_OF_HELP = _(
    "A society or agent acting for a member: the member party's id. Allowed within a mandate in force; "
    "otherwise 403 no_mandate."
)


class IdentifierInput(serializers.Serializer[dict[str, Any]]):
    scheme = serializers.CharField(max_length=16, help_text=", ".join(Scheme.values))
    value = serializers.CharField(max_length=2000, trim_whitespace=True)


class IdentifierListField(serializers.ListField):
    """A list of ``{scheme, value}``; multipart forms may send it as JSON or as ``scheme:value`` strings."""

    child = serializers.JSONField()

    def to_internal_value(self, data: Any) -> list[dict[str, str]]:
        if hasattr(data, "getlist"):
            data = data.getlist(self.field_name)
        if isinstance(data, str):
            data = [data]
        items: list[Any] = []
        for item in data:
            if isinstance(item, str) and item.strip().startswith(("[", "{")):
                try:
                    parsed = json.loads(item)
                except json.JSONDecodeError:
                    raise serializers.ValidationError(_("Not valid JSON."), code="invalid_json") from None
                items.extend(parsed if isinstance(parsed, list) else [parsed])
            else:
                items.append(item)
        result: list[dict[str, str]] = []
        for index, item in enumerate(items):
            if isinstance(item, str):
                scheme, sep, value = item.partition(":")
                if not sep:
                    raise serializers.ValidationError(
                        {str(index): _("Write an identifier as scheme:value, e.g. isbn:9788937460449.")},
                        code="invalid_format",
                    )
                item = {"scheme": scheme, "value": value}
            serializer = IdentifierInput(data=item)
            if not serializer.is_valid():
                raise serializers.ValidationError({str(index): serializer.errors})
            result.append(dict(serializer.validated_data))
        return result

    def get_value(self, dictionary: Any) -> Any:
        if hasattr(dictionary, "getlist") and self.field_name in dictionary:
            return dictionary
        return super().get_value(dictionary)


class ContributorInput(serializers.Serializer[dict[str, Any]]):
    role = serializers.ChoiceField(choices=ContributorRole.choices)
    name = serializers.CharField(max_length=200)
    ipi = serializers.CharField(max_length=13, required=False, allow_blank=True, default="")
    share_bp = serializers.IntegerField(min_value=0, max_value=10000, required=False, default=0)
    designation = serializers.CharField(max_length=2, required=False, allow_blank=True, default="")


class WorkCreateInput(serializers.Serializer[dict[str, Any]]):
    title = serializers.CharField(max_length=500)
    kind = serializers.ChoiceField(choices=WorkKind.choices)
    musical_work = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=ID_MAX,
        help_text=_("A recording's (kind audio) musical work: its id."),
    )
    contributors = ContributorInput(
        many=True, required=False, default=list, help_text=_("A musical work's writers and publishers.")
    )
    identifiers = IdentifierListField(required=False, default=list)
    creators = serializers.ListField(child=serializers.CharField(max_length=200), required=False, default=list)
    language = serializers.CharField(max_length=35, required=False, allow_blank=True, default="")
    creation_year = serializers.IntegerField(required=False, allow_null=True, default=None)
    share_bp = serializers.IntegerField(required=False, min_value=1, max_value=10000, default=10000)
    valid_from = RegistryDateField(required=False, allow_null=True, default=None)
    on_behalf_of = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX, help_text=ON_BEHALF_OF_HELP
    )
    file = serializers.FileField(
        required=False,
        write_only=True,
        help_text=_(
            "The work's file, fingerprinted by a worker: its SHA-256 and ISCC-CODE become identifiers of the work. "
            "The file is deleted once fingerprinted."
        ),
    )


class WorkFileInput(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField(
        help_text=_("The work's file: its SHA-256 and ISCC-CODE become identifiers of the work; the file is deleted.")
    )


class WorkListFilter(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=WorkKind.choices, required=False)
    status = serializers.ChoiceField(choices=WorkStatus.choices, required=False)
    identifier = serializers.CharField(required=False, help_text=_("scheme:value, e.g. isbn:9788937460449"))
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=_(
            "Search the caller's works by title, creator's name or identifier (up to 200 characters), best "
            "matches first; spaces and case are ignored."
        ),
    )
    on_behalf_of = serializers.IntegerField(
        required=False, min_value=1, max_value=ID_MAX, help_text=_("A society or agent: a member's works.")
    )


class SearchInput(serializers.Serializer[dict[str, Any]]):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=_(
            "A title or part of one, a creator's name, or an identifier in any spelling (up to 200 characters); "
            "spaces and case are ignored."
        ),
    )


class BulkImportInput(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField(help_text=_("CSV, XLSX or JSON Lines; up to 100,000 works."))
    on_behalf_of = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX, help_text=ON_BEHALF_OF_HELP
    )


class ClaimCreateInput(serializers.Serializer[dict[str, Any]]):
    work = serializers.IntegerField(min_value=1, max_value=ID_MAX, help_text=_("The id of the work to claim."))
    share_bp = serializers.IntegerField(
        min_value=1,
        max_value=10000,
        required=False,
        allow_null=True,
        default=None,
        help_text=_(
            "Your share in basis points. Left out: the staff's default share for the work's kind when others "
            "already claim it (GET /api/v1/works/{id}/claim-share), else 10000."
        ),
    )
    valid_from = RegistryDateField(required=False, allow_null=True, default=None)
    on_behalf_of = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX, help_text=ON_BEHALF_OF_HELP
    )


class ClaimListFilter(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(choices=ClaimStatus.choices, required=False)
    work = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class ClaimDecisionInput(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class DomainCreateInput(serializers.Serializer[dict[str, Any]]):
    origin = serializers.CharField(max_length=300)
    method = serializers.ChoiceField(choices=DomainMethod.choices)


class MandateCreateInput(serializers.Serializer[dict[str, Any]]):
    member = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=ID_MAX,
        help_text=_("The member party's id."),
    )
    member_email = serializers.EmailField(
        required=False,
        allow_blank=True,
        default="",
        help_text=_("Or the e-mail the member's owner signs in with: the invitation waits in their portal."),
    )
    scope = serializers.ChoiceField(choices=MandateScope.choices)
    works = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX), required=False, default=list, max_length=10_000
    )
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=WorkKind.choices), required=False, default=list)
    powers = serializers.ListField(child=serializers.ChoiceField(choices=MandatePower.choices), min_length=1)
    statements_to = serializers.ChoiceField(choices=StatementsTo.choices, default=StatementsTo.MEMBER)
    starts_at = RegistryDateTimeField(required=False, allow_null=True, default=None)
    ends_at = RegistryDateTimeField(required=False, allow_null=True, default=None)
    document = serializers.FileField(
        required=False,
        write_only=True,
        help_text=_("The member's signed mandate (PDF): staff verifying it starts the mandate without the member."),
    )


class MandateEndInput(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ApiKeyCreateInput(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiScope.choices), min_length=1)


# --- outputs --------------------------------------------------------------------------


class PartyBriefOutput(serializers.ModelSerializer[Party]):
    class Meta:
        model = Party
        fields = ["id", "kind", "name"]


class IdentifierOutput(serializers.ModelSerializer[Identifier]):
    spelling = serializers.SerializerMethodField(
        help_text=_(
            "The identifier as it was registered (a URL with its www., parameters or trailing slash); "
            "value is the key it is matched by."
        )
    )

    class Meta:
        model = Identifier
        fields = ["scheme", "value", "spelling"]

    def get_spelling(self, obj: Identifier) -> str:
        return obj.spelling or obj.value


class ClaimOutput(serializers.ModelSerializer[OwnershipClaim]):
    holder = PartyBriefOutput()
    work = serializers.SerializerMethodField()
    filed_by_agent = PartyBriefOutput(allow_null=True, help_text=_("The society or agent that filed it, if any."))

    class Meta:
        model = OwnershipClaim
        fields = [
            "id",
            "work",
            "holder",
            "share_bp",
            "valid_from",
            "status",
            "decision_reason",
            "decided_at",
            "verified_by_domain",
            "filed_by_agent",
            "created_at",
        ]

    def get_work(self, claim: OwnershipClaim) -> dict[str, Any]:
        return {"id": claim.work_id, "title": claim.work.title, "kind": claim.work.kind, "status": claim.work.status}


class WorkClaimOutput(serializers.ModelSerializer[OwnershipClaim]):
    holder = PartyBriefOutput()

    class Meta:
        model = OwnershipClaim
        fields = ["id", "holder", "share_bp", "valid_from", "status", "created_at"]


class WorkFileIdentifierOutput(serializers.Serializer[dict[str, Any]]):
    scheme = serializers.CharField()
    value = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=FileIdentifierOutcome.choices,
        help_text=_("added: the work holds it now; taken: another work (work_id) holds it, so it was not added."),
    )
    work_id = serializers.IntegerField(allow_null=True, help_text=_("The work that holds the identifier."))


class RefusalOfferOutput(serializers.Serializer[dict[str, Any]]):
    purpose = serializers.CharField(
        help_text=_("The broadest purpose the file declares refused: train-ai or train-genai.")
    )
    method = serializers.CharField(help_text=_("How to file the refusal: POST"))
    url = serializers.CharField(help_text=_("Where to file it: the refusals endpoint"))
    body = serializers.DictField(help_text=_("The request body that files it: this work, this purpose, from now"))
    portal_url = serializers.CharField(help_text=_("The portal's refusal form, filled in with this work and purpose"))


class EmbeddedRightsOutput(serializers.Serializer[dict[str, Any]]):
    read = serializers.ListField(
        child=serializers.CharField(),
        help_text=_(
            "The refusals the file declares, e.g. cawg:ai_training=notAllowed (C2PA cawg.training-mining) or "
            "iptc:DMI-PROHIBITED-AIMLTRAINING (XMP plus:DataMining)."
        ),
    )
    said = serializers.DictField(
        child=serializers.BooleanField(), help_text=_("Per registry purpose, whether the file declares it refused.")
    )
    c2pa = serializers.JSONField(
        allow_null=True,
        help_text=_(
            "The C2PA manifest's training-mining assertion: assertion, entries (use: allowed, notAllowed or "
            "constrained), signer, validation_state and failures; null when the file has no C2PA manifest."
        ),
    )
    xmp = serializers.JSONField(
        allow_null=True,
        help_text=_("The XMP packet's plus:DataMining and plus:OtherConstraints; null when the file has no XMP."),
    )
    # Only describes the answer (it is never validated), so shadowing Serializer.errors is harmless: DRF's
    # metaclass takes declared fields off the class.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(), help_text=_("What could not be read, and why.")
    )
    refusal_offer = RefusalOfferOutput(
        allow_null=True, help_text=_("When the file declares a refusal: how to file it in the registry.")
    )


class WorkFileOutput(serializers.ModelSerializer[WorkFile]):
    url = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    failure_reason = failure_reason_field()
    identifiers = WorkFileIdentifierOutput(many=True, read_only=True)
    audio_code_missing_reason = serializers.CharField(source="audio_code_missing_message", read_only=True)
    embedded_rights = serializers.SerializerMethodField()

    class Meta:
        model = WorkFile
        fields = [
            "id",
            "url",
            "work",
            "status",
            "kind",
            "original_name",
            "size",
            "bytes_done",
            "progress",
            "sha256",
            "iscc",
            "audio_code_missing",
            "audio_code_missing_reason",
            "identifiers",
            "embedded_rights",
            "failure_code",
            "failure_reason",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_url(self, work_file: WorkFile) -> str:
        return f"/api/v1/works/{work_file.work_id}/files/{work_file.pk}"

    @extend_schema_field(EmbeddedRightsOutput(allow_null=True))
    def get_embedded_rights(self, work_file: WorkFile) -> dict[str, Any] | None:
        """What the file declares (null until fingerprinted), and how to file the refusal it declares."""
        embedded = work_file.embedded_rights
        if not embedded:
            return None
        purpose = refusal_purpose_offered(embedded)
        offer = None
        if purpose is not None:
            offer = {
                "purpose": purpose,
                "method": "POST",
                "url": reverse("api:refusals"),
                "body": {"scope": "work", "work": work_file.work_id, "purposes": [purpose]},
                "portal_url": f"{reverse('portal:refusal-create')}?works={work_file.work_id}&purpose={purpose}",
            }
        return {**embedded, "refusal_offer": offer}

    def get_progress(self, work_file: WorkFile) -> float:
        if work_file.status == WorkFileStatus.DONE:
            return 1.0
        if not work_file.size:
            return 0.0
        return round(min(work_file.bytes_done / work_file.size, 1.0), 4)


class ContributorOutput(serializers.ModelSerializer[MusicalWorkContributor]):
    class Meta:
        model = MusicalWorkContributor
        fields = ["role", "designation", "name", "ipi", "share_bp"]


class WorkOutput(serializers.ModelSerializer[Work]):
    identifiers = IdentifierOutput(many=True)
    contributors = ContributorOutput(many=True, read_only=True)
    musical_work: serializers.PrimaryKeyRelatedField[Work] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    claims = WorkClaimOutput(many=True)
    files = WorkFileOutput(many=True, read_only=True)
    licensing_email = serializers.CharField(read_only=True, help_text=_("The work's own licensing e-mail, or empty"))
    licensing_url = serializers.CharField(read_only=True, help_text=_("The work's own licensing page, or empty"))

    class Meta:
        model = Work
        fields = [
            "id",
            "kind",
            "title",
            "creators",
            "language",
            "creation_year",
            "status",
            "identifiers",
            "claims",
            "files",
            "musical_work",
            "contributors",
            "licensing_email",
            "licensing_url",
            "created_at",
        ]


class SearchResultOutput(serializers.ModelSerializer[Work]):
    """A work as the public search shows it: never who owns it or in what shares."""

    status = serializers.SerializerMethodField(
        help_text=_("The lookup's status now for generative training (refused, permitted, license_required)")
    )
    refused = serializers.SerializerMethodField(help_text=_("Whether a refusal of AI training is in force now"))
    url = serializers.SerializerMethodField(help_text=_("The work's public page"))

    class Meta:
        model = Work
        fields = ["id", "title", "creators", "kind", "status", "refused", "url"]

    def get_status(self, work: Work) -> str | None:
        status = self.context.get("statuses", {}).get(work.pk)
        return str(status) if status is not None else None

    def get_refused(self, work: Work) -> bool | None:
        status = self.get_status(work)
        return None if status is None else status == "refused"

    def get_url(self, work: Work) -> str:
        request = self.context.get("request")
        path = reverse("work-public", args=[work.pk])
        return request.build_absolute_uri(path) if request is not None else path


class LicensingContactInput(serializers.Serializer[dict[str, Any]]):
    licensing_email = serializers.EmailField(required=False, allow_blank=True, default="", max_length=254)
    licensing_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=500)


class LicensingContactOutput(serializers.Serializer[dict[str, Any]]):
    # Plain strings: an empty one means none was given.
    licensing_email = serializers.CharField(help_text=_("An e-mail address, or empty"))
    licensing_url = serializers.CharField(help_text=_("An http(s) web page, or empty"))


class DomainOutput(serializers.ModelSerializer[VerifiedDomain]):
    instructions = serializers.SerializerMethodField()

    class Meta:
        model = VerifiedDomain
        fields = [
            "id",
            "origin",
            "host",
            "method",
            "status",
            "token",
            "instructions",
            "last_checked_at",
            "last_error",
            "verified_at",
            "created_at",
        ]

    def get_instructions(self, domain: VerifiedDomain) -> dict[str, str]:
        if domain.method == DomainMethod.DNS:
            return {"record_type": "TXT", "name": dns_record_name(domain.host), "value": dns_record_value(domain.token)}
        return {"url": file_url(domain.origin), "content": domain.token}


class ImportOutput(serializers.ModelSerializer[WorkImport]):
    progress = serializers.SerializerMethodField()
    failure_reason = failure_reason_field()
    row_errors = serializers.SerializerMethodField()
    errors_url = serializers.SerializerMethodField()

    class Meta:
        model = WorkImport
        fields = [
            "id",
            "status",
            "format",
            "original_name",
            "rows_total",
            "rows_done",
            "rows_registered",
            "rows_failed",
            "progress",
            "failure_code",
            "failure_reason",
            "attempts",
            "row_errors",
            "errors_url",
            "created_at",
            "finished_at",
        ]

    def get_progress(self, work_import: WorkImport) -> float:
        if not work_import.rows_total:
            return 1.0 if work_import.status == "processed" else 0.0
        return round(min(work_import.rows_done / work_import.rows_total, 1.0), 4)

    def get_row_errors(self, work_import: WorkImport) -> Any:
        # The first hundred; the whole report is at errors_url.
        return ImportRowErrorOutput(work_import.row_errors.order_by("row", "pk")[:100], many=True).data

    def get_errors_url(self, work_import: WorkImport) -> str:
        return f"/api/v1/imports/{work_import.pk}/errors"


class ImportRowErrorOutput(serializers.ModelSerializer[WorkImportRowError]):
    class Meta:
        model = WorkImportRowError
        fields = ["row", "field", "code", "message", "existing_work"]


class ApiKeyOutput(serializers.ModelSerializer[ApiKey]):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]


class MandateOutput(serializers.ModelSerializer[Mandate]):
    agent = PartyBriefOutput()
    member = PartyBriefOutput(allow_null=True)
    works = serializers.SerializerMethodField()
    powers = serializers.ListField(child=serializers.CharField())
    in_force = serializers.SerializerMethodField()
    has_document = serializers.SerializerMethodField()

    class Meta:
        model = Mandate
        fields = [
            "id",
            "agent",
            "member",
            "invited_email",
            "scope",
            "works",
            "kinds",
            "powers",
            "statements_to",
            "starts_at",
            "ends_at",
            "status",
            "in_force",
            "has_document",
            "created_at",
            "accepted_at",
            "accepted_via",
            "ended_at",
            "end_reason",
        ]

    def get_works(self, mandate: Mandate) -> list[int]:
        return sorted(listed.work_id for listed in mandate.listed.all())

    def get_in_force(self, mandate: Mandate) -> bool:
        return mandate.in_force()

    def get_has_document(self, mandate: Mandate) -> bool:
        return bool(mandate.document)


class MeOutput(serializers.Serializer[dict[str, Any]]):
    user = serializers.DictField(allow_null=True)
    party = PartyBriefOutput(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    is_staff = serializers.BooleanField()


class ClaimEvidenceInput(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=EvidenceKind.choices)
    file = serializers.FileField(required=False, allow_empty_file=False)
    registration_number = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=40, help_text=_("KCC number, C-YYYY-NNNNNN.")
    )
    party_identifier = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=40, help_text=_("An ISNI or an IPI name number.")
    )
    text = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)


class ClaimEvidenceOutput(serializers.ModelSerializer[ClaimEvidence]):
    file = serializers.SerializerMethodField(help_text=_("Where the file downloads (claimant and staff only)."))

    class Meta:
        model = ClaimEvidence
        fields = [
            "id",
            "kind",
            "file",
            "original_name",
            "content_type",
            "size",
            "registration_number",
            "party_identifier",
            "text",
            "added_by_staff",
            "created_at",
        ]

    def get_file(self, evidence: ClaimEvidence) -> str | None:
        if not evidence.file:
            return None
        return f"/api/v1/claims/{evidence.claim_id}/evidence/{evidence.pk}/file"


class ClaimShareDefaultOutput(serializers.Serializer[dict[str, Any]]):
    share_bp = serializers.IntegerField()
    from_default = serializers.BooleanField(
        help_text=_("True when the staff's default share for the work's kind applies.")
    )
    co_claimants = serializers.IntegerField()
