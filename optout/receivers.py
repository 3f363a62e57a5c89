"""Keeps the status projection current when the registry changes what lookups answer (same transaction), and
tells holders when their refusals come into force or their site disagrees with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from optout.events import site_disagreement_found
from optout.notifications import (
    refusals_notify_in_force_for_domain,
    refusals_notify_in_force_for_work,
    site_disagreement_notify,
)
from optout.status.services import status_refresh, status_refresh_for_domain
from registry.models import AuditEvent
from registry.signals import status_inputs_changed, work_owners_changed


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


@receiver(work_owners_changed, dispatch_uid="optout.refusals_in_force_notify")
def _refusals_in_force_notify(sender: Any, *, work_id: int, **kwargs: Any) -> None:
    # Sent after the claim change committed: a verified claim brings the holder's refusals of the work into force.
    with transaction.atomic():
        refusals_notify_in_force_for_work(work_id=work_id)


@receiver(status_inputs_changed, dispatch_uid="optout.domain_refusals_in_force_notify")
def _domain_refusals_in_force_notify(sender: Any, *, domain_id: int | None = None, **kwargs: Any) -> None:
    # In the domain verification's transaction: the notifications commit (and are mailed) with it.
    if domain_id is not None:
        refusals_notify_in_force_for_domain(domain_id=domain_id)


@receiver(site_disagreement_found, dispatch_uid="optout.site_disagreement_notify")
def _site_disagreement_notify(sender: Any, *, domain_id: int, disagreements: Sequence[Any], **kwargs: Any) -> None:
    with transaction.atomic():
        site_disagreement_notify(domain_id=domain_id, disagreements=disagreements)
