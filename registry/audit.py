"""The append-only record of who did what (the actor is ``core.actors.Actor``)."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from core.actors import Actor
from registry.models import AuditEvent
from registry.signals import audit_events_recorded


def audit_record(
    *, code: str, actor: Actor, target: models.Model | None = None, data: dict[str, Any] | None = None
) -> AuditEvent:
    """Write one audit event; call it inside the transaction that makes the change."""
    # The event and its transparency-log leaf (written by a receiver) commit together, even when the caller
    # runs in autocommit. Nested in the caller's transaction it adds no savepoint: a failure rolls back the whole.
    with transaction.atomic(savepoint=False):
        event = AuditEvent.objects.create(
            code=code,
            actor_user_id=actor.user_id,
            actor_party=actor.party,
            actor_api_key=actor.api_key,
            on_behalf_of=actor.on_behalf_of,
            object_type=target._meta.label_lower if target is not None else "",
            object_id=str(target.pk) if target is not None else "",
            data=data or {},
        )
        audit_events_recorded.send(sender=AuditEvent, events=[event])
    return event
