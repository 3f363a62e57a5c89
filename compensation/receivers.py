"""Reactions to other apps' signals: thin, they only queue tasks."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

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
