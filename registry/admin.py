"""Django admin for every registry model; the verification queues call the same services as the API."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.actors import Actor
from core.admin import JOB_FIELDS, AddOnlyAdminMixin, JobAdminMixin, ReadOnlyAdminMixin
from core.errors import RegistryError
from registry import services
from registry.audit import audit_record
from registry.models import (
    WORK_FILE_JOB,
    WORK_IMPORT_JOB,
    ApiKey,
    AuditEvent,
    ClaimDefaultShare,
    ClaimEvidence,
    ClaimStatus,
    ConflictResolution,
    ConflictStatus,
    DomainStatus,
    Identifier,
    IdentifierConflict,
    Mandate,
    MandateConflict,
    MandateStatus,
    MandateWork,
    Membership,
    MusicalWorkContributor,
    OwnershipClaim,
    Party,
    SimilarityThreshold,
    VerifiedDomain,
    Work,
    WorkFile,
    WorkImport,
    WorkImportRowError,
)
from registry.selectors import claim_co_claims
from registry.signals import status_inputs_changed


def _actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user)


def _run_each(
    modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any], action: Any, done_message: str
) -> None:
    done = 0
    for obj in queryset:
        try:
            action(obj)
            done += 1
        except RegistryError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", level=messages.ERROR)
    if done:
        modeladmin.message_user(request, done_message % {"count": done}, level=messages.SUCCESS)


class AuditedAdmin(admin.ModelAdmin[Any]):
    """Edits made directly in the admin are state changes too: each one leaves an audit event."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        event = audit_record(
            code=f"{obj._meta.label_lower}.{'changed' if change else 'added'}_in_admin",
            actor=_actor(request),
            target=obj,
            data={"fields": sorted(form.changed_data)},
        )
        self.saved_in_admin(obj=obj, changed=set(form.changed_data), event=event)

    def saved_in_admin(self, *, obj: Any, changed: set[str], event: AuditEvent) -> None:
        """Called in the save's transaction, after its audit event: what else the change must update."""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        event = audit_record(
            code=f"{obj._meta.label_lower}.deleted_in_admin", actor=_actor(request), target=obj, data={"repr": str(obj)}
        )
        super().delete_model(request, obj)
        self.deleted_in_admin(obj=obj, event=event)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        # The changelist's bulk delete: one object at a time, so that each leaves its audit event.
        for obj in queryset:
            self.delete_model(request, obj)

    def deleted_in_admin(self, *, obj: Any, event: AuditEvent) -> None:
        """Called in the delete's transaction, after the row went: what else the deletion must update."""


class MembershipInline(admin.TabularInline[Membership, Party]):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Party)
class PartyAdmin(AuditedAdmin):
    list_display = ["name", "kind", "holder_type", "isni", "business_registration_number", "created_at"]
    list_filter = ["kind", "holder_type"]
    search_fields = ["name", "isni", "business_registration_number"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "party", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "party__name"]
    raw_id_fields = ["user", "party"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ["prefix", "name", "party", "user", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "party__name"]
    # Keys are created by the management command or the API, where the secret can be shown once.
    readonly_fields = ["party", "user", "prefix", "key_hash", "scopes", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Revoke the selected keys"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.filter(revoked_at__isnull=True),
            lambda key: services.apikey_revoke(actor=actor, api_key=key),
            str(_("%(count)s keys revoked.")),
        )


class IdentifierInline(admin.TabularInline[Identifier, Work]):
    model = Identifier
    extra = 0
    readonly_fields = ["scheme", "value", "spelling", "created_at"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ClaimInline(admin.TabularInline[OwnershipClaim, Work]):
    model = OwnershipClaim
    extra = 0
    fields = ("holder", "share_bp", "valid_from", "status", "decision_reason", "decided_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ContributorInline(admin.TabularInline[MusicalWorkContributor, Work]):
    model = MusicalWorkContributor
    extra = 0
    fields = ["position", "role", "designation", "name", "ipi", "share_bp"]


@admin.register(MusicalWorkContributor)
class MusicalWorkContributorAdmin(AuditedAdmin):
    """A musical work's writers and publishers (as registered or imported from CWR)."""

    list_display = ["work", "role", "designation", "name", "ipi", "share_bp"]
    list_filter = ["role"]
    search_fields = ["name", "ipi", "work__title"]
    raw_id_fields = ["work"]


@admin.register(Work)
class WorkAdmin(AuditedAdmin):
    list_display = ["id", "title", "kind", "status", "registered_by", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["title", "identifiers__value"]
    readonly_fields = ["status", "registered_by", "created_at"]
    raw_id_fields = ["musical_work"]
    inlines = [IdentifierInline, ClaimInline, ContributorInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A work is the record its refusals, claims and ledger lines point to: it is never deleted.
        return False

    def saved_in_admin(self, *, obj: Any, changed: set[str], event: AuditEvent) -> None:
        # A work's kind decides its regime (license_required kinds), and lookups show its title and kind: the
        # status projection and the change feed must follow.
        # Linking a recording to its musical work makes the musical work's refusals decide it.
        if changed & {"kind", "title", "musical_work"}:
            status_inputs_changed.send(sender=Work, cause=event, work_ids=[obj.pk])


@admin.register(Identifier)
class IdentifierAdmin(AuditedAdmin):
    list_display = ["scheme", "value", "spelling", "work", "created_at"]
    list_filter = ["scheme"]
    search_fields = ["value", "spelling"]
    # An identifier is a normalized key (work_identifier_add): staff remove a wrong one, they do not rewrite it.
    readonly_fields = ["scheme", "value", "spelling", "work", "content_modality", "content_code", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def deleted_in_admin(self, *, obj: Any, event: AuditEvent) -> None:
        # The key no longer names the work: lookups answer it as unregistered from now, in this transaction.
        status_inputs_changed.send(sender=Identifier, cause=event, keys=[f"{obj.scheme}:{obj.value}"])


class ClaimEvidenceInline(admin.TabularInline[ClaimEvidence, OwnershipClaim]):
    """The claim's evidence, read-only: it is added by the claimant (or staff) through the API or the portal."""

    model = ClaimEvidence
    extra = 0
    can_delete = False
    fields = ["kind", "download", "registration_number", "party_identifier", "text", "added_by_staff", "created_at"]
    readonly_fields = [
        "kind",
        "download",
        "registration_number",
        "party_identifier",
        "text",
        "added_by_staff",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("file"))
    def download(self, evidence: ClaimEvidence) -> str:
        return _evidence_link(evidence)


def _evidence_link(evidence: ClaimEvidence) -> str:
    if not evidence.file:
        return "—"
    url = reverse("api:claim-evidence-file", kwargs={"claim_id": evidence.claim_id, "evidence_id": evidence.pk})
    return format_html('<a href="{}">{}</a> ({} B)', url, evidence.original_name or evidence.pk, evidence.size)


@admin.register(OwnershipClaim)
class OwnershipClaimAdmin(admin.ModelAdmin[OwnershipClaim]):
    """The claim review queue, oldest first with the time each claim has waited: open a claim to see its evidence
    and the other claimants of the same work side by side, write the reason the claimant will read, then verify,
    reject, or accept it for review (which opens a dispute when the shares pass 100%, holding the work's payments
    until it is verified or rejected). The list's actions decide many claims at once with their stored reasons.
    """

    list_display = [
        "id",
        "work",
        "holder",
        "share_bp",
        "status",
        "waiting",
        "co_claimant_count",
        "evidence_count",
        "created_at",
        "decided_at",
    ]
    list_filter = ["status", "work__status"]
    search_fields = ["work__title", "holder__name"]
    # The queue is worked oldest first: a claim's age is how long a holder has waited for an answer.
    ordering = ["created_at", "id"]
    readonly_fields = [
        "work",
        "holder",
        "share_bp",
        "valid_from",
        "status",
        "decided_by",
        "decided_at",
        "verified_by_domain",
        "created_at",
        "waiting",
        "co_claimants",
    ]
    fields = [*readonly_fields, "decision_reason"]
    inlines = [ClaimEvidenceInline]
    actions = ["verify", "accept_for_review", "reject"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OwnershipClaim]:
        live = Q(work__claims__status__in=[ClaimStatus.PENDING, ClaimStatus.IN_REVIEW, ClaimStatus.VERIFIED])
        return (
            super()
            .get_queryset(request)
            .select_related("work", "holder")
            .annotate(
                co_claimants=Count("work__claims", filter=live, distinct=True) - 1,
                evidence_pieces=Count("evidence", distinct=True),
            )
        )

    @admin.display(description=_("waiting"))
    def waiting(self, claim: OwnershipClaim) -> str:
        if claim.status not in (ClaimStatus.PENDING, ClaimStatus.IN_REVIEW):
            return "—"
        return timesince(claim.created_at)

    @admin.display(description=_("other claimants"), ordering="co_claimants")
    def co_claimant_count(self, claim: OwnershipClaim) -> int:
        return max(int(getattr(claim, "co_claimants", 0)), 0)

    @admin.display(description=_("evidence"), ordering="evidence_pieces")
    def evidence_count(self, claim: OwnershipClaim) -> int:
        return int(getattr(claim, "evidence_pieces", 0))

    @admin.display(description=_("other claimants of the work, side by side"))
    def co_claimants(self, claim: OwnershipClaim) -> str:
        others = claim_co_claims(claims=[claim])[claim.pk]
        if not others:
            return str(_("None."))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    other.holder.name,
                    f"{other.share_bp / 100:g}%",
                    other.get_status_display(),
                    timesince(other.created_at),
                    format_html_join(
                        mark_safe("<br>"),
                        "{}: {}",
                        ((e.get_kind_display(), _evidence_summary(e)) for e in other.evidence.all()),
                    )
                    or "—",
                )
                for other in others
            ),
        )
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("holder"),
            _("share"),
            _("status"),
            _("age"),
            _("evidence"),
        )
        return format_html("<table>{}{}</table>", header, rows)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: OwnershipClaim, form: Any, change: bool) -> None:
        decision = next((name for name in ("_verify", "_reject", "_dispute") if name in request.POST), None)
        if decision is None:
            super().save_model(request, obj, form, change)
            return
        actor = _actor(request)
        reason = (form.cleaned_data.get("decision_reason") or "").strip()
        claim = OwnershipClaim.objects.get(pk=obj.pk)
        try:
            if decision == "_verify":
                services.claim_verify(actor=actor, claim=claim, reason=reason)
            elif decision == "_reject":
                services.claim_reject(actor=actor, claim=claim, reason=reason)
            else:
                services.claim_accept_for_review(actor=actor, claim=claim, reason=reason)
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)

    @admin.action(description=_("Verify the selected claims"))
    def verify(self, request: HttpRequest, queryset: QuerySet[OwnershipClaim]) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.filter(status__in=[ClaimStatus.PENDING, ClaimStatus.IN_REVIEW]),
            lambda claim: services.claim_verify(actor=actor, claim=claim, reason=str(_("Verified in admin"))),
            str(_("%(count)s claims verified.")),
        )

    @admin.action(description=_("Accept the selected claims for review"))
    def accept_for_review(self, request: HttpRequest, queryset: QuerySet[OwnershipClaim]) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.filter(status=ClaimStatus.PENDING),
            lambda claim: services.claim_accept_for_review(
                actor=actor, claim=claim, reason=claim.decision_reason or str(_("Accepted for review in admin"))
            ),
            str(_("%(count)s claims accepted for review.")),
        )

    @admin.action(description=_("Reject the selected claims"))
    def reject(self, request: HttpRequest, queryset: QuerySet[OwnershipClaim]) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.exclude(status=ClaimStatus.REJECTED),
            lambda claim: services.claim_reject(
                actor=actor, claim=claim, reason=claim.decision_reason or str(_("Rejected in admin"))
            ),
            str(_("%(count)s claims rejected.")),
        )


def _evidence_summary(evidence: ClaimEvidence) -> str:
    if evidence.file:
        return _evidence_link(evidence)
    text = evidence.registration_number or evidence.party_identifier or evidence.text
    return text if len(text) <= 200 else text[:200] + "…"


@admin.register(ClaimEvidence)
class ClaimEvidenceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ClaimEvidence]):
    """Every piece of claim evidence, read-only (claimants and staff add it through the API or the portal); files
    download through the claim's permission check."""

    list_display = ["id", "claim", "kind", "download", "registration_number", "party_identifier", "created_at"]
    list_filter = ["kind", "added_by_staff"]
    search_fields = ["registration_number", "party_identifier", "original_name", "claim__work__title"]
    list_select_related = ["claim__work", "claim__holder"]

    @admin.display(description=_("file"))
    def download(self, evidence: ClaimEvidence) -> str:
        return _evidence_link(evidence)


@admin.register(ClaimDefaultShare)
class ClaimDefaultShareAdmin(admin.ModelAdmin[ClaimDefaultShare]):
    """The share a claimant gets, per work kind, when it names none and others already claim the work."""

    list_display = ["kind", "share_bp", "updated_at", "updated_by"]
    fields = ["kind", "share_bp"]

    def save_model(self, request: HttpRequest, obj: ClaimDefaultShare, form: Any, change: bool) -> None:
        try:
            services.claim_default_share_set(actor=_actor(request), kind=obj.kind, share_bp=obj.share_bp)
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IdentifierConflict)
class IdentifierConflictAdmin(admin.ModelAdmin[IdentifierConflict]):
    """The queue of keys two works came to share when URLs became canonical: write the reason, then keep the key
    with the work that holds it or move it to the other work. Both works stay disputed until then."""

    list_display = ["id", "scheme", "value", "kept_by", "work", "spelling", "status", "resolution", "created_at"]
    list_filter = ["status", "resolution", "scheme"]
    search_fields = ["value", "spelling", "work__title", "kept_by__title"]
    readonly_fields = [
        "scheme",
        "value",
        "kept_by",
        "work",
        "spelling",
        "registered_at",
        "status",
        "resolution",
        "decided_by",
        "decided_at",
        "created_at",
    ]
    fields = [*readonly_fields, "reason"]
    actions = ["keep", "move"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _resolve(self, request: HttpRequest, queryset: QuerySet[IdentifierConflict], resolution: str) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.filter(status=ConflictStatus.OPEN),
            lambda conflict: services.identifier_conflict_resolve(
                actor=actor,
                conflict=conflict,
                resolution=resolution,
                reason=conflict.reason or str(_("Resolved in admin")),
            ),
            str(_("%(count)s conflicts resolved.")),
        )

    @admin.action(description=_("Keep the key with the work that holds it"))
    def keep(self, request: HttpRequest, queryset: QuerySet[IdentifierConflict]) -> None:
        self._resolve(request, queryset, ConflictResolution.KEPT)

    @admin.action(description=_("Move the key to the other work"))
    def move(self, request: HttpRequest, queryset: QuerySet[IdentifierConflict]) -> None:
        self._resolve(request, queryset, ConflictResolution.MOVED)


@admin.register(Mandate)
class MandateAdmin(admin.ModelAdmin[Mandate]):
    """Mandates never change here: staff verify a signed mandate document (which starts the mandate, as the
    member's acceptance would) or end a mandate; both are events recorded once."""

    list_display = ["id", "agent", "member", "invited_email", "scope", "status", "starts_at", "ends_at", "accepted_via"]
    list_filter = ["status", "scope", "accepted_via"]
    search_fields = ["agent__name", "member__name", "invited_email"]
    readonly_fields = [
        "agent",
        "member",
        "invited_email",
        "scope",
        "kinds",
        "can_register_works",
        "can_claim",
        "can_refuse",
        "receives_statements",
        "receives_payouts",
        "statements_to",
        "starts_at",
        "ends_at",
        "document",
        "status",
        "created_at",
        "accepted_at",
        "accepted_via",
        "ended_at",
        "ended_by_party",
        "end_reason",
    ]
    fields = list(readonly_fields)
    actions = ["verify_document", "end"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Verify the signed mandate document (starts the mandate)"))
    def verify_document(self, request: HttpRequest, queryset: QuerySet[Mandate]) -> None:
        from registry.mandates import mandate_accept

        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.filter(status=MandateStatus.INVITED).exclude(document=""),
            lambda mandate: mandate_accept(actor=actor, mandate=mandate, reason="document verified in admin"),
            str(_("%(count)s mandates started.")),
        )

    @admin.action(description=_("End the mandate"))
    def end(self, request: HttpRequest, queryset: QuerySet[Mandate]) -> None:
        from registry.mandates import mandate_end

        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.exclude(status=MandateStatus.ENDED),
            lambda mandate: mandate_end(actor=actor, mandate=mandate, reason="ended by staff"),
            str(_("%(count)s mandates ended.")),
        )


@admin.register(MandateWork)
class MandateWorkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[MandateWork]):
    """Read-only: the works a mandate lists are part of its terms."""

    list_display = ["mandate", "work"]
    search_fields = ["work__title"]


@admin.register(MandateConflict)
class MandateConflictAdmin(admin.ModelAdmin[MandateConflict]):
    """Conflicts between a member and its agents (two agents on one work, opposite filings): each disputes its
    work until resolved here; write the reason, then resolve."""

    list_display = ["id", "kind", "member", "work", "status", "created_at"]
    list_filter = ["status", "kind"]
    search_fields = ["member__name", "work__title"]
    readonly_fields = ["kind", "member", "work", "parties", "data", "status", "decided_by", "decided_at", "created_at"]
    fields = [*readonly_fields, "reason"]
    actions = ["resolve"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Resolve (the work is no longer disputed by it)"))
    def resolve(self, request: HttpRequest, queryset: QuerySet[MandateConflict]) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.filter(status=ConflictStatus.OPEN),
            lambda conflict: services.mandate_conflict_resolve(
                actor=actor, conflict=conflict, reason=conflict.reason or str(_("Resolved in admin"))
            ),
            str(_("%(count)s conflicts resolved.")),
        )


@admin.register(VerifiedDomain)
class VerifiedDomainAdmin(admin.ModelAdmin[VerifiedDomain]):
    """The domain verification queue: check the proof now, or verify by hand after another proof."""

    list_display = ["origin", "holder", "method", "status", "last_checked_at", "last_error", "verified_at"]
    list_filter = ["status", "method"]
    search_fields = ["origin", "holder__name"]
    readonly_fields = [
        "holder",
        "origin",
        "host",
        "method",
        "token",
        "status",
        "last_checked_at",
        "last_error",
        "verified_at",
        "created_at",
    ]
    actions = ["check_now", "verify_manually"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Check the selected domains now"))
    def check_now(self, request: HttpRequest, queryset: QuerySet[VerifiedDomain]) -> None:
        actor = _actor(request)
        checked = [services.domain_check(actor=actor, domain=d) for d in queryset.exclude(status=DomainStatus.VERIFIED)]
        verified = sum(1 for d in checked if d.status == DomainStatus.VERIFIED)
        self.message_user(
            request,
            ngettext(
                "%(verified)s of %(count)s domain verified.",
                "%(verified)s of %(count)s domains verified.",
                len(checked),
            )
            % {"verified": verified, "count": len(checked)},
        )

    @admin.action(description=_("Verify the selected domains by hand"))
    def verify_manually(self, request: HttpRequest, queryset: QuerySet[VerifiedDomain]) -> None:
        actor = _actor(request)
        _run_each(
            self,
            request,
            queryset.exclude(status=DomainStatus.VERIFIED),
            lambda domain: services.domain_verify(
                actor=actor, domain=domain, reason=str(_("Verified by staff in admin"))
            ),
            str(_("%(count)s domains verified.")),
        )


class RowErrorInline(admin.TabularInline[WorkImportRowError, WorkImport]):
    model = WorkImportRowError
    extra = 0
    readonly_fields = ["row", "field", "code", "message", "existing_work"]
    can_delete = False
    max_num = 0


@admin.register(WorkImport)
class WorkImportAdmin(JobAdminMixin, admin.ModelAdmin[WorkImport]):
    job_kind = WORK_IMPORT_JOB
    list_display = [
        "id",
        "holder",
        "original_name",
        "status",
        "failure_code",
        "rows_total",
        "rows_done",
        "rows_failed",
        "created_at",
    ]
    list_filter = ["status", "failure_code", "format"]
    readonly_fields = [f.name for f in WorkImport._meta.fields if f.name not in JOB_FIELDS] + JOB_FIELDS
    inlines = [RowErrorInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WorkFile)
class WorkFileAdmin(JobAdminMixin, admin.ModelAdmin[WorkFile]):
    job_kind = WORK_FILE_JOB
    list_display = ["id", "work", "holder", "original_name", "kind", "status", "failure_code", "size", "created_at"]
    list_filter = ["status", "failure_code", "kind"]
    readonly_fields = [f.name for f in WorkFile._meta.fields if f.name not in JOB_FIELDS] + JOB_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WorkImportRowError)
class WorkImportRowErrorAdmin(admin.ModelAdmin[WorkImportRowError]):
    list_display = ["work_import", "row", "field", "code", "message"]
    list_filter = ["code"]
    readonly_fields = ["work_import", "row", "field", "code", "message", "existing_work"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[AuditEvent]):
    """Read-only: the log is append-only."""

    list_display = ["created_at", "code", "actor_user", "actor_party", "on_behalf_of", "object_type", "object_id"]
    list_filter = ["code"]
    search_fields = ["code", "object_id"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    date_hierarchy = "created_at"


@admin.register(SimilarityThreshold)
class SimilarityThresholdAdmin(AddOnlyAdminMixin, admin.ModelAdmin[SimilarityThreshold]):
    """New thresholds are added here; past ones stay, since lookups as of an earlier instant use them."""

    list_display = ["modality", "max_distance", "effective_from", "created_by", "created_at"]
    list_filter = ["modality"]
    fields = ["modality", "max_distance", "effective_from", "reason"]

    def save_model(self, request: HttpRequest, obj: SimilarityThreshold, form: Any, change: bool) -> None:
        try:
            saved = services.similarity_threshold_set(
                actor=Actor(user=request.user),
                modality=obj.modality,
                max_distance=obj.max_distance,
                effective_from=obj.effective_from,
                reason=obj.reason,
            )
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)
            return
        obj.pk = saved.pk
