"""Admin for the ledger (read-only: entries are never edited) and tariffs (added through the service)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from compensation.distribution import distribution_start
from compensation.models import (
    Account,
    EscrowRelease,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    MarketShareDistribution,
    Settlement,
    Statement,
    StatementLine,
    Tariff,
    UsageManifest,
)
from compensation.services import tariff_set
from compensation.settlements import settlement_create
from registry.audit import Actor
from registry.errors import RegistryError


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LedgerLineInline(_ReadOnly, admin.TabularInline[LedgerLine, LedgerEntry]):
    model = LedgerLine
    extra = 0
    max_num = 0
    fields = ["account", "amount_micro"]
    readonly_fields = ["account", "amount_micro"]


@admin.register(Account)
class AccountAdmin(_ReadOnly, admin.ModelAdmin[Account]):
    list_display = ["id", "kind", "party", "escrow_key", "created_at"]
    list_filter = ["kind"]
    search_fields = ["party__name", "escrow_key"]
    readonly_fields = [f.name for f in Account._meta.fields]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(_ReadOnly, admin.ModelAdmin[LedgerEntry]):
    list_display = ["id", "kind", "idempotency_key", "effective_at", "created_at", "reverses"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "memo"]
    date_hierarchy = "effective_at"
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]
    inlines = [LedgerLineInline]


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin[Tariff]):
    """New tariffs are added here; past ones stay as history."""

    list_display = ["kind", "unit", "rate_krw", "effective_from", "created_by", "created_at"]
    list_filter = ["kind", "unit"]
    fields = ["kind", "unit", "rate_krw", "effective_from"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Tariff, form: Any, change: bool) -> None:
        try:
            saved = tariff_set(
                actor=Actor(user=request.user),
                kind=obj.kind,
                unit=obj.unit,
                rate_krw=obj.rate_krw,
                effective_from=obj.effective_from,
            )
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)
            return
        obj.pk = saved.pk


@admin.register(UsageManifest)
class UsageManifestAdmin(_ReadOnly, admin.ModelAdmin[UsageManifest]):
    list_display = ["id", "manifest_id", "lab", "model", "status", "lines_done", "lines_total", "created_at"]
    list_filter = ["status", "purpose"]
    search_fields = ["manifest_id", "model", "lab__name"]
    readonly_fields = [f.name for f in UsageManifest._meta.fields]


@admin.register(ManifestLine)
class ManifestLineAdmin(_ReadOnly, admin.ModelAdmin[ManifestLine]):
    list_display = ["manifest", "line_no", "key", "outcome", "work_id", "amount_micro", "used_at"]
    list_filter = ["outcome"]
    # Exact lookups only: the table holds millions of lines.
    search_fields = ["=key", "=manifest__manifest_id"]
    readonly_fields = [f.name for f in ManifestLine._meta.fields]
    show_full_result_count = False
    list_select_related = ["manifest"]


@admin.register(EscrowRelease)
class EscrowReleaseAdmin(_ReadOnly, admin.ModelAdmin[EscrowRelease]):
    list_display = ["id", "work", "amount_micro", "lines", "created_at"]
    readonly_fields = [f.name for f in EscrowRelease._meta.fields]


# --- Settlements ---------------------------------------------------------------------------------


class SettlementForm(forms.ModelForm[Settlement]):
    """Staff pick the days of the period; the service turns them into instants and runs the settlement."""

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


class StatementLineInline(_ReadOnly, admin.TabularInline[StatementLine, Statement]):
    model = StatementLine
    extra = 0
    max_num = 0
    fields = ["kind", "work", "lab", "manifest", "entry", "lines", "amount_micro"]
    readonly_fields = ["kind", "work", "lab", "manifest", "entry", "lines", "amount_micro"]


class InvoiceLineInline(_ReadOnly, admin.TabularInline[InvoiceLine, Invoice]):
    model = InvoiceLine
    extra = 0
    max_num = 0
    fields = ["section", "manifest", "model", "outcome", "work", "refusal", "entry", "lines", "amount_micro"]
    readonly_fields = ["section", "manifest", "model", "outcome", "work", "refusal", "entry", "lines", "amount_micro"]


@admin.register(Settlement)
class SettlementAdmin(admin.ModelAdmin[Settlement]):
    """Settlements are created here (or through the staff API) and run by a worker; never edited."""

    form = SettlementForm
    list_display = ["id", "first_day", "last_day", "status", "step", "created_by", "created_at", "settled_at"]
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
        "failure_reason",
        "created_by",
        "created_at",
        "started_at",
        "settled_at",
    ]

    def get_fields(self, request: HttpRequest, obj: Settlement | None = None) -> list[str]:  # type: ignore[override]
        return ["first_day", "last_day"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Settlement | None = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Settlement, form: Any, change: bool) -> None:
        if change:
            return
        try:
            saved, created = settlement_create(
                actor=Actor(user=request.user),
                first_day=form.cleaned_data["first_day"],
                last_day=form.cleaned_data["last_day"],
            )
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)
            return
        if not created:
            self.message_user(request, _("This period already has a settlement; it was not created again."))
        obj.pk = saved.pk


@admin.register(Statement)
class StatementAdmin(_ReadOnly, admin.ModelAdmin[Statement]):
    list_display = ["id", "settlement", "holder", "due_micro", "payout_micro", "carried_forward_micro"]
    list_filter = ["settlement"]
    search_fields = ["holder__name"]
    readonly_fields = [f.name for f in Statement._meta.fields]
    inlines = [StatementLineInline]


@admin.register(Invoice)
class InvoiceAdmin(_ReadOnly, admin.ModelAdmin[Invoice]):
    list_display = ["number", "settlement", "lab", "total_micro", "violations_micro", "amount_due_won"]
    list_filter = ["settlement"]
    search_fields = ["number", "lab__name"]
    readonly_fields = [f.name for f in Invoice._meta.fields]
    inlines = [InvoiceLineInline]


class DistributionForm(forms.ModelForm[MarketShareDistribution]):
    class Meta:
        model = MarketShareDistribution
        fields = ["hold_month"]
        widgets = {"hold_month": forms.DateInput(attrs={"type": "date"})}


@admin.register(MarketShareDistribution)
class MarketShareDistributionAdmin(admin.ModelAdmin[MarketShareDistribution]):
    """Staff start a hold month's distribution here; a worker runs it, once."""

    form = DistributionForm
    list_display = ["hold_month", "status", "lines", "distributed_micro", "reserved_micro", "undistributable_micro"]
    readonly_fields = [
        "status",
        "reserve_bp",
        "lines",
        "distributed_micro",
        "reserved_micro",
        "undistributable_micro",
        "created_by",
        "created_at",
        "finished_at",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["hold_month", *self.readonly_fields]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:  # type: ignore[override]
        return ["hold_month"] if obj is None else ["hold_month", *self.readonly_fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None or super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: MarketShareDistribution, form: Any, change: bool) -> None:
        if change:
            return
        try:
            saved, _created = distribution_start(actor=Actor(user=request.user), hold_month=obj.hold_month)
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)
            return
        obj.pk = saved.pk


# --- Staff reports: pages on this admin site, under /admin/compensation/reports/ (report_views) ---------


def _with_report_urls(get_urls: Any) -> Any:
    def urls() -> list[Any]:
        from compensation.report_views import report_urls

        return [*report_urls(), *get_urls()]

    return urls


admin.site.get_urls = _with_report_urls(admin.site.get_urls)  # type: ignore[method-assign]
