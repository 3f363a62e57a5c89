"""Admin for the ledger (read-only: entries are never edited) and tariffs (added through the service)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from compensation.models import Account, EscrowRelease, LedgerEntry, LedgerLine, ManifestLine, Tariff, UsageManifest
from compensation.services import tariff_set
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
