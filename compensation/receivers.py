"""Reactions to other apps' signals: thin, they queue tasks or tell people."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from compensation.notifications import manifest_failed_notify, payout_profile_changed_notify
from compensation.signals import payout_profile_changed
from core.signals import audit_requested
from registry.signals import identifiers_registered, work_owners_changed


@receiver(work_owners_changed, dispatch_uid="compensation.escrow_release")
def escrow_release_queue(sender: Any, work_id: int, **kwargs: Any) -> None:
    # Sent after the claim change has committed, so the worker sees it.
    from compensation.tasks import escrow_release

    escrow_release.delay(work_id)


@receiver(identifiers_registered, dispatch_uid="compensation.reprice_registered")
def reprice_registered_queue(sender: Any, keys: list[str], **kwargs: Any) -> None:
    from compensation.tasks import usage_reprice_keys

    usage_reprice_keys.delay(keys)


@receiver(audit_requested, dispatch_uid="compensation.manifest_failed_notify")
def manifest_failed_notify_on_failure(sender: Any, *, code: str, target: Any = None, **kwargs: Any) -> None:
    # Sent inside the transaction that marks a job failed (core.jobs): the lab is told with it.
    if code == "compensation.manifest.failed" and target is not None:
        manifest_failed_notify(manifest_pk=target.pk)


@receiver(payout_profile_changed, dispatch_uid="compensation.payout_profile_changed_notify")
def payout_profile_changed_notify_holder(sender: Any, *, holder_id: int, change: dict[str, Any], **kwargs: Any) -> None:
    # Sent on commit by compensation.payouts.services. Staff verifying a profile changes none of its details.
    if change.get("event") == "verified":
        return
    with transaction.atomic():
        payout_profile_changed_notify(party_id=holder_id)
