"""What the admin shows of a background job's life, and the staff action that retries failed ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.actors import Actor
from core.errors import RegistryError
from core.jobs import JobKind, job_retry

# Shown on a job's page, after its own fields.
JOB_FIELDS = [
    "failure_code",
    "failure_message",
    "failure_detail",
    "attempts",
    "enqueued_at",
    "heartbeat_at",
    "claimed_by",
    "started_at",
    "finished_at",
]


class JobAdminMixin:
    """Put before ``admin.ModelAdmin``; set ``job_kind``."""

    job_kind: JobKind
    actions: Sequence[Any] | None = ["retry_failed"]

    @admin.display(description=_("failure, as its owner reads it"))
    def failure_message(self, obj: Any) -> str:
        return str(obj.failure_message)

    @admin.action(description=_("Retry the selected failed jobs"))
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        actor = Actor(user=request.user)
        retried = skipped = 0
        for job_id in queryset.values_list("pk", flat=True):
            try:
                job_retry(actor=actor, kind=self.job_kind, job_id=job_id)
            except RegistryError:
                skipped += 1  # not failed (any more): nothing to retry
            else:
                retried += 1
        model_admin: Any = self
        if retried:
            model_admin.message_user(
                request,
                ngettext("%(count)d job was queued again.", "%(count)d jobs were queued again.", retried)
                % {"count": retried},
                messages.SUCCESS,
            )
        if skipped:
            model_admin.message_user(
                request,
                ngettext(
                    "%(count)d job was not retried: only failed jobs are.",
                    "%(count)d jobs were not retried: only failed jobs are.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )


class ReadOnlyAdminMixin:
    """Put before ``admin.ModelAdmin`` (or an inline) for rows only services write, such as ledger lines, audit
    events and refusal events: staff read them in the admin and cannot add, change or delete one there."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AddOnlyAdminMixin:
    """Put before ``admin.ModelAdmin`` for history staff add to but never rewrite (tariffs, licence regimes): the
    add form works, a row once added opens read-only and none is deleted; a change is a new row."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Asked with no object for the add form and the list; with one, for that row's change form.
        return obj is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
