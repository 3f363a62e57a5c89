"""Keeps the status projection current when the registry changes what lookups answer (same transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.dispatch import receiver

from optout.status.services import status_refresh, status_refresh_for_domain
from registry.models import AuditEvent
from registry.signals import status_inputs_changed


@receiver(status_inputs_changed, dispatch_uid="optout.status_refresh")
def _status_refresh_on_registry_change(
    sender: Any,
    *,
    cause: AuditEvent | None,
    work_ids: Iterable[int] = (),
    keys: Iterable[str] = (),
    domain_id: int | None = None,
    cause_by_work: Mapping[int, AuditEvent] | None = None,
    **kwargs: Any,
) -> None:
    if domain_id is not None:
        status_refresh_for_domain(domain_id=domain_id, cause=cause)
    if work_ids:
        status_refresh(cause=cause, work_ids=work_ids, cause_by_work=cause_by_work)
    if keys:
        status_refresh(cause=cause, keys=list(keys))
