"""Admin for the ledger (read-only: entries are never edited) and tariffs (added through the service)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from compensation.models import (
    DISTRIBUTION_JOB,
    EXPORT_JOB,
    MANIFEST_JOB,
    SETTLEMENT_JOB,
    Account,
    ConsolidatedStatement,
    EscrowRelease,
    Export,
    HoldPolicy,
    Invoice,
    InvoiceLine,
    LabPayment,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    MarketShareDistribution,
    PaymentAllocation,
    PaymentSource,
    PayoutBasisPolicy,
    PayoutProfile,
    RecordingSplit,
    Settlement,
    SettlementStatus,
    Statement,
    StatementLine,
    StatementRecipient,
    Tariff,
    UnclaimedNotice,
    UsageManifest,
    WithholdingRate,
)
from compensation.payments.services import lab_payment_record
from compensation.payouts.services import payout_profile_verify
from compensation.settlement.distribution import distribution_start
from compensation.settlement.services import settlement_create
from compensation.unclaimed.services import hold_policy_set
from compensation.usage.splits import recording_split_set
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.admin import JOB_FIELDS, AddOnlyAdminMixin, JobAdminMixin, ReadOnlyAdminMixin
from core.dates import validate_date_in_range
from core.errors import RegistryError
from registry.models import Party, PartyKind


class _ServiceAddForm(forms.ModelForm[Any]):
    """An add form that runs the service as its last validation step: a refusal (a ``RegistryError``, e.g. an
    overlapping settlement period or a tariff in the past) becomes an error on the form, which the admin shows
    again with what the staff member typed, instead of a message beside a false "added successfully".

    The admin validates and saves in one transaction, so what the service wrote is kept only if the whole
    request succeeds. ``actor`` is set per request by ``_ServiceAddAdmin.get_form``.
    """

    actor: Actor
    # The service's name for a field, where the form calls it differently.
    service_fields: dict[str, str] = {}
    # Each form calls its service with the cleaned data: the saved object and whether it was created.
    service: Callable[[dict[str, Any]], tuple[Any, bool]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every date these forms take (tariff starts, settlement days, distribution months) keeps to the
        # registry's range, as the API's do: year 1 or 9999 overflows the services' arithmetic.
        for form_field in self.fields.values():
            if isinstance(form_field, forms.DateField | forms.DateTimeField | forms.SplitDateTimeField):
                form_field.validators.append(validate_date_in_range)

    def full_clean(self) -> None:
        super().full_clean()
        self.saved: Any = None
        self.created = False
        if not self.is_bound or self.errors or self.instance.pk is not None:
            return
        try:
            self.saved, self.created = self.service(self.cleaned_data)
        except RegistryError as exc:
            field = self.service_fields.get(exc.field or "", exc.field)
            self.add_error(field if field in self.fields else None, str(exc.message))


class _ServiceAddAdmin(admin.ModelAdmin[Any]):
    """Adds through the form's service call (``_ServiceAddForm``); the admin logs and links the saved object."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": Actor(user=request.user)})

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Any:
        if change or not isinstance(form, _ServiceAddForm):
            return super().save_form(request, form, change)
        return form.saved

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Saved by the service while the form validated; nothing is ever edited here.
        if not change and isinstance(form, _ServiceAddForm) and not form.created:
            self.message_user(request, self.not_created_message)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change or not isinstance(form, _ServiceAddForm):
            super().save_related(request, form, formsets, change)

    not_created_message: Any = ""


class LedgerLineInline(ReadOnlyAdminMixin, admin.TabularInline[LedgerLine, LedgerEntry]):
    model = LedgerLine
    extra = 0
    max_num = 0
    fields = ["account", "amount_micro"]
    readonly_fields = ["account", "amount_micro"]


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Account]):
    list_display = ["id", "kind", "party", "escrow_key", "created_at"]
    list_filter = ["kind"]
    search_fields = ["party__name", "escrow_key"]
    readonly_fields = [f.name for f in Account._meta.fields]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LedgerEntry]):
    list_display = ["id", "kind", "idempotency_key", "effective_at", "created_at", "reverses"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "memo"]
    date_hierarchy = "effective_at"
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]
    inlines = [LedgerLineInline]


class TariffForm(_ServiceAddForm):
    class Meta:
        model = Tariff
        fields = ["kind", "unit", "rate_krw", "effective_from"]

    def service(self, data: dict[str, Any]) -> tuple[Any, bool]:
        tariff = tariff_set(
            actor=self.actor,
            kind=data["kind"],
            unit=data["unit"],
            rate_krw=data["rate_krw"],
            effective_from=data["effective_from"],
        )
        return tariff, True


@admin.register(Tariff)
class TariffAdmin(AddOnlyAdminMixin, _ServiceAddAdmin):
    """New tariffs are added here; past ones stay as history."""

    form = TariffForm
    list_display = ["kind", "unit", "rate_krw", "effective_from", "created_by", "created_at"]
    list_filter = ["kind", "unit"]
    fields = ["kind", "unit", "rate_krw", "effective_from"]


class RecordingSplitForm(_ServiceAddForm):
    class Meta:
        model = RecordingSplit
        fields = ["kind", "musical_work_bp", "effective_from"]

    def service(self, data: dict[str, Any]) -> tuple[Any, bool]:
        split = recording_split_set(
            actor=self.actor,
            kind=data["kind"],
            musical_work_bp=data["musical_work_bp"],
            effective_from=data["effective_from"],
        )
        return split, True


@admin.register(RecordingSplit)
class RecordingSplitAdmin(AddOnlyAdminMixin, _ServiceAddAdmin):
    """New splits are added here; past ones stay as history."""

    form = RecordingSplitForm
    list_display = ["kind", "musical_work_bp", "effective_from", "created_by", "created_at"]
    list_filter = ["kind"]
    fields = ["kind", "musical_work_bp", "effective_from"]


@admin.register(UsageManifest)
class UsageManifestAdmin(JobAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin[UsageManifest]):
    job_kind = MANIFEST_JOB
    list_display = [
        "id",
        "manifest_id",
        "lab",
        "model",
        "status",
        "failure_code",
        "lines_done",
        "lines_total",
        "created_at",
    ]
    list_filter = ["status", "failure_code", "purpose"]
    search_fields = ["manifest_id", "model", "lab__name"]
    readonly_fields = [f.name for f in UsageManifest._meta.fields if f.name not in JOB_FIELDS] + JOB_FIELDS


@admin.register(ManifestLine)
class ManifestLineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ManifestLine]):
    list_display = ["manifest", "line_no", "side", "key", "outcome", "work_id", "amount_micro", "used_at"]
    list_filter = ["outcome"]
    # Exact lookups only: the table holds millions of lines.
    search_fields = ["=key", "=manifest__manifest_id"]
    readonly_fields = [f.name for f in ManifestLine._meta.fields]
    show_full_result_count = False
    list_select_related = ["manifest"]


@admin.register(EscrowRelease)
class EscrowReleaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[EscrowRelease]):
    list_display = ["id", "work", "amount_micro", "lines", "created_at"]
    readonly_fields = [f.name for f in EscrowRelease._meta.fields]


# --- Settlements ---------------------------------------------------------------------------------


class SettlementForm(_ServiceAddForm):
    """Staff pick the days of the period; the service turns them into instants and runs the settlement."""

    service_fields = {"period_start": "first_day", "period_end": "last_day"}

    first_day = forms.DateField(label=_("First day"), widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(label=_("Last day"), widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = Settlement
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("first_day"), data.get("last_day")
        if first and last and last < first:
            self.add_error("last_day", _("The last day is before the first day."))
        return data

    def service(self, data: dict[str, Any]) -> tuple[Any, bool]:
        return settlement_create(actor=self.actor, first_day=data["first_day"], last_day=data["last_day"])


class StatementLineInline(ReadOnlyAdminMixin, admin.TabularInline[StatementLine, Statement]):
    model = StatementLine
    extra = 0
    max_num = 0
    fields = ["kind", "work", "side", "other_work", "lab", "manifest", "entry", "lines", "amount_micro"]
    readonly_fields = ["kind", "work", "side", "other_work", "lab", "manifest", "entry", "lines", "amount_micro"]


class StatementRecipientInline(ReadOnlyAdminMixin, admin.TabularInline[StatementRecipient, Statement]):
    """Who the statement was sent to, as the mandates said when the period was settled."""

    model = StatementRecipient
    extra = 0
    max_num = 0
    fields = ["party", "role", "mandate"]
    readonly_fields = ["party", "role", "mandate"]


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline[InvoiceLine, Invoice]):
    model = InvoiceLine
    extra = 0
    max_num = 0
    fields = ["section", "manifest", "model", "outcome", "work", "refusal", "entry", "lines", "amount_micro"]
    readonly_fields = ["section", "manifest", "model", "outcome", "work", "refusal", "entry", "lines", "amount_micro"]


@admin.register(Settlement)
class SettlementAdmin(JobAdminMixin, _ServiceAddAdmin):
    """Settlements are created here (or through the staff API) and run by a worker; never edited."""

    job_kind = SETTLEMENT_JOB
    form = SettlementForm
    not_created_message = _("This period already has a settlement; it was not created again.")
    list_display = [
        "id",
        "first_day",
        "last_day",
        "status",
        "step",
        "failure_code",
        "created_by",
        "created_at",
        "settled_at",
    ]
    list_filter = ["status"]
    readonly_fields = [
        "period_start",
        "period_end",
        "status",
        "step",
        "progress",
        "payout_threshold_micro",
        "withholding_bp",
        "totals",
        "created_by",
        "created_at",
        "settled_at",
        "payout_export",
        *JOB_FIELDS,
    ]

    @admin.display(description=_("Bank transfer file"))
    def payout_export(self, obj: Settlement) -> str:
        if obj.status != SettlementStatus.SETTLED:
            return "—"
        # The staff API's file (this session authenticates it); each download is audited.
        url = reverse("api:settlement-payout-export", kwargs={"settlement_pk": obj.pk})
        return format_html('<a href="{}">{}</a>', url, _("Download the payouts CSV"))

    # The stubs return a union of invariant lists of field groups that no list[str] matches; Django reads
    # any sequence of names.
    def get_fields(self, request: HttpRequest, obj: Settlement | None = None) -> list[str]:  # type: ignore[override]
        return ["first_day", "last_day"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Settlement | None = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Statement]):
    list_display = [
        "id",
        "settlement",
        "holder",
        "due_micro",
        "payout_micro",
        "withheld_micro",
        "carried_forward_micro",
        "basis",
        "carry_reason",
        "payee",
    ]
    list_filter = ["settlement"]
    search_fields = ["holder__name", "payee__name"]
    readonly_fields = [f.name for f in Statement._meta.fields]
    inlines = [StatementRecipientInline, StatementLineInline]


@admin.register(ConsolidatedStatement)
class ConsolidatedStatementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[ConsolidatedStatement]):
    list_display = ["id", "settlement", "agent", "members", "due_micro", "payout_micro", "paid_to_agent_micro"]
    list_filter = ["settlement"]
    search_fields = ["agent__name"]
    readonly_fields = [f.name for f in ConsolidatedStatement._meta.fields]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Invoice]):
    list_display = ["number", "settlement", "lab", "total_micro", "violations_micro", "amount_due_won", "due_on"]
    list_filter = ["settlement"]
    search_fields = ["number", "lab__name"]
    readonly_fields = [f.name for f in Invoice._meta.fields]
    inlines = [InvoiceLineInline]


class DistributionForm(_ServiceAddForm):
    class Meta:
        model = MarketShareDistribution
        fields = ["hold_month"]
        widgets = {"hold_month": forms.DateInput(attrs={"type": "date"})}

    def service(self, data: dict[str, Any]) -> tuple[Any, bool]:
        distribution, _created = distribution_start(actor=self.actor, hold_month=data["hold_month"])
        return distribution, True


@admin.register(MarketShareDistribution)
class MarketShareDistributionAdmin(JobAdminMixin, _ServiceAddAdmin):
    """Staff start a hold month's distribution here; a worker runs it, once."""

    job_kind = DISTRIBUTION_JOB
    form = DistributionForm
    list_display = [
        "hold_month",
        "status",
        "failure_code",
        "lines",
        "distributed_micro",
        "reserved_micro",
        "undistributable_micro",
        "transferred_micro",
    ]
    readonly_fields = [
        "transferred_micro",
        "status",
        "reserve_bp",
        "lines",
        "distributed_micro",
        "reserved_micro",
        "undistributable_micro",
        "created_by",
        "created_at",
        *JOB_FIELDS,
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["hold_month", *self.readonly_fields]

    # The stubs return a union of invariant lists of field groups that no list[str] matches; Django reads
    # any sequence of names.
    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return ["hold_month"] if obj is None else ["hold_month", *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Staff reports: pages on this admin site, under /admin/compensation/reports/ (documents/views.py) ---------


def _with_report_urls(get_urls: Any) -> Any:
    def urls() -> list[Any]:
        from compensation.documents.views import report_urls

        return [*report_urls(), *get_urls()]

    return urls


def _with_reports_app(get_app_list: Any) -> Any:
    def app_list(request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = list(get_app_list(request, app_label))
        if app_label is None and admin.site.has_permission(request):
            from compensation.documents.views import reports_app_entry

            # Right after the compensation app, whose data they report on.
            labels = [app["app_label"] for app in apps]
            at = labels.index("compensation") + 1 if "compensation" in labels else len(apps)
            apps.insert(at, reports_app_entry())
        return apps

    return app_list


# The report pages wrap the admin site instance's own methods on purpose; mypy refuses any assignment to a method.
admin.site.get_urls = _with_report_urls(admin.site.get_urls)  # type: ignore[method-assign]
# The index and the navigation list the report pages as one more application ("Reports").
admin.site.get_app_list = _with_reports_app(admin.site.get_app_list)  # type: ignore[method-assign]


@admin.register(Export)
class ExportAdmin(JobAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin[Export]):
    """Queued exports of large statements and invoices; a failed one can be retried."""

    job_kind = EXPORT_JOB
    list_display = ["id", "document", "object_id", "format", "language", "status", "failure_code", "created_at"]
    list_filter = ["status", "failure_code", "document", "format"]
    readonly_fields = [f.name for f in Export._meta.fields if f.name not in JOB_FIELDS] + JOB_FIELDS


# --- Lab payments, payout policies and payout profiles ------------------------------------------------


class LabPaymentForm(_ServiceAddForm):
    """Staff record a payment as the bank shows it; the service posts it and matches it to invoices."""

    class Meta:
        model = LabPayment
        fields = ["lab", "amount_won", "received_on", "bank_reference", "memo"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "lab" in self.fields:
            self.fields["lab"].queryset = Party.objects.filter(kind=PartyKind.LAB)  # type: ignore[attr-defined]

    def service(self, data: dict[str, Any]) -> tuple[Any, bool]:
        return lab_payment_record(
            actor=self.actor,
            lab=data["lab"],
            amount_won=data["amount_won"],
            received_on=data["received_on"],
            bank_reference=data["bank_reference"],
            memo=data.get("memo") or "",
            source=PaymentSource.ADMIN,
        )


class PaymentAllocationInline(ReadOnlyAdminMixin, admin.TabularInline[PaymentAllocation, LabPayment]):
    model = PaymentAllocation
    extra = 0
    max_num = 0
    fields = ["invoice", "amount_won", "created_at"]
    readonly_fields = ["invoice", "amount_won", "created_at"]


@admin.register(LabPayment)
class LabPaymentAdmin(AddOnlyAdminMixin, _ServiceAddAdmin):
    """Payments are recorded here (or imported through the API); a recorded one is never edited."""

    form = LabPaymentForm
    not_created_message = _("This bank reference was already recorded: nothing was added.")
    list_display = ["bank_reference", "lab", "amount_won", "received_on", "source", "recorded_by", "created_at"]
    list_filter = ["source"]
    search_fields = ["bank_reference", "lab__name", "memo"]
    date_hierarchy = "received_on"
    inlines = [PaymentAllocationInline]

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        # Its invoices exist once the payment does: the add form has none.
        return [] if obj is None else list(self.inlines)

    def get_fields(self, request: HttpRequest, obj: LabPayment | None = None) -> list[str]:  # type: ignore[override]
        if obj is None:
            return ["lab", "amount_won", "received_on", "bank_reference", "memo"]
        return ["lab", "amount_won", "received_on", "bank_reference", "memo", "source", "entry", "recorded_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.get_fields(request, obj)


@admin.register(PayoutBasisPolicy)
class PayoutBasisPolicyAdmin(AddOnlyAdminMixin, admin.ModelAdmin[PayoutBasisPolicy]):
    """Accrual or cash basis from a date: settlements use the one in force on their period's last day."""

    list_display = ["basis", "effective_from", "set_by", "created_at"]
    fields = ["basis", "effective_from"]

    def save_model(self, request: HttpRequest, obj: PayoutBasisPolicy, form: Any, change: bool) -> None:
        obj.set_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(WithholdingRate)
class WithholdingRateAdmin(AddOnlyAdminMixin, admin.ModelAdmin[WithholdingRate]):
    """Withholding per tax status from a date: settlements use the rate in force on their period's last day."""

    list_display = ["tax_status", "rate_bp", "effective_from", "set_by", "created_at"]
    list_filter = ["tax_status"]
    fields = ["tax_status", "rate_bp", "effective_from"]

    def save_model(self, request: HttpRequest, obj: WithholdingRate, form: Any, change: bool) -> None:
        obj.set_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(PayoutProfile)
class PayoutProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[PayoutProfile]):
    """Staff see profiles masked and verify them; only the holder changes one (portal with password, API key)."""

    list_display = [
        "holder",
        "payee_name",
        "bank_name",
        "account_number_masked",
        "tax_id_masked",
        "tax_status",
        "status",
        "updated_at",
    ]
    list_filter = ["status", "tax_status"]
    search_fields = ["holder__name", "payee_name"]
    fields = [
        "holder",
        "payee_name",
        "bank_name",
        "account_number_masked",
        "tax_id_kind",
        "tax_id_masked",
        "tax_status",
        "status",
        "verified_by",
        "verified_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = list(fields)  # type: ignore[arg-type]
    actions = ["verify"]

    @admin.action(description=_("Verify the selected payout profiles"))
    def verify(self, request: HttpRequest, queryset: Any) -> None:
        done = 0
        for profile_id in queryset.values_list("pk", flat=True):
            try:
                payout_profile_verify(actor=Actor(user=request.user), profile_id=profile_id)
            except RegistryError as exc:
                self.message_user(request, str(exc.message), level="warning")
                continue
            done += 1
        self.message_user(request, _("%(count)s payout profiles verified.") % {"count": done})


class HoldPolicyForm(_ServiceAddForm):
    class Meta:
        model = HoldPolicy
        fields = ["effective_from", "period_days", "end_action", "public_interest_account", "reason"]
        widgets = {"effective_from": forms.DateInput(attrs={"type": "date"})}

    def service(self, data: dict[str, Any]) -> tuple[Any, bool]:
        policy = hold_policy_set(
            actor=self.actor,
            effective_from=data["effective_from"],
            period_days=data["period_days"],
            end_action=data["end_action"],
            public_interest_account=data.get("public_interest_account") or "",
            reason=data.get("reason") or "",
        )
        return policy, True


@admin.register(HoldPolicy)
class HoldPolicyAdmin(AddOnlyAdminMixin, _ServiceAddAdmin):
    """The hold policy, effective-dated: how long unclaimed money is kept after its notice (its first day on the
    public list, /unclaimed/), and whether it is then distributed by market share or transferred to a named
    public-interest account. A policy is added, never edited: the period of a hold already noticed never changes."""

    form = HoldPolicyForm
    list_display = ["effective_from", "period_days", "end_action", "public_interest_account", "created_by"]


@admin.register(UnclaimedNotice)
class UnclaimedNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[UnclaimedNotice]):
    """The public list's notices: when each escrow account's hold month was first listed and when its period ends."""

    list_display = ["account", "hold_month", "noticed_at", "hold_ends_on", "policy"]
    list_filter = ["hold_month", "account__kind"]
    search_fields = ["account__escrow_key"]
