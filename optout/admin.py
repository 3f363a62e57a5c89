"""Admin for refusals (read-only: they are never edited) and regimes (set through the service)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from core.actors import Actor
from core.admin import AddOnlyAdminMixin, ReadOnlyAdminMixin
from core.errors import RegistryError
from optout.models import KindRegime, Refusal, RefusalEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from optout.services import regime_set


class RefusalEventInline(admin.TabularInline[RefusalEvent, Refusal]):
    model = RefusalEvent
    extra = 0
    max_num = 0
    can_delete = False
    readonly_fields = ["kind", "effective_at", "recorded_at", "actor"]


@admin.register(Refusal)
class RefusalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Refusal]):
    list_display = ["id", "holder", "scope", "purpose", "work", "url_prefix", "effective_from", "filed_at"]
    list_filter = ["scope", "purpose"]
    search_fields = ["holder__name", "url_prefix", "work__title"]
    readonly_fields = [f.name for f in Refusal._meta.fields]
    inlines = [RefusalEventInline]


@admin.register(RefusalEvent)
class RefusalEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[RefusalEvent]):
    list_display = ["id", "refusal", "kind", "effective_at", "recorded_at"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in RefusalEvent._meta.fields]


@admin.register(KindRegime)
class KindRegimeAdmin(AddOnlyAdminMixin, admin.ModelAdmin[KindRegime]):
    """New regimes are added here; past ones stay as history."""

    list_display = ["kind", "regime", "effective_from", "created_by", "created_at"]
    list_filter = ["kind", "regime"]
    fields = ["kind", "regime", "effective_from"]

    def save_model(self, request: HttpRequest, obj: KindRegime, form: Any, change: bool) -> None:
        try:
            saved = regime_set(
                actor=Actor(user=request.user), kind=obj.kind, regime=obj.regime, effective_from=obj.effective_from
            )
        except RegistryError as exc:
            self.message_user(request, str(exc.message), level=messages.ERROR)
            return
        obj.pk = saved.pk


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[WebhookEndpoint]):
    # Never the secret: it was shown to the lab once, and signs what the registry sends in its name.
    fields = ["party", "url", "description", "cursor", "created_at", "disabled_at"]
    list_display = ["id", "party", "url", "cursor", "created_at", "disabled_at"]
    list_filter = [("disabled_at", admin.EmptyFieldListFilter)]
    search_fields = ["url", "party__name"]


class WebhookAttemptInline(ReadOnlyAdminMixin, admin.TabularInline[WebhookAttempt, WebhookDelivery]):
    model = WebhookAttempt
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[WebhookDelivery]):
    list_display = ["id", "endpoint", "status", "cursor_from", "cursor_to", "attempts", "next_attempt_at"]
    list_filter = ["status"]
    search_fields = ["message_id", "endpoint__url"]
    inlines = [WebhookAttemptInline]
