"""What the registry does when the kernel asks: record audit events in its append-only log."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.dispatch import receiver

from core.actors import Actor
from core.signals import audit_requested
from registry.audit import audit_record


@receiver(audit_requested, dispatch_uid="registry.audit_requested")
def audit_requested_record(
    sender: type[models.Model],
    *,
    code: str,
    actor: Actor,
    target: models.Model | None = None,
    data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    audit_record(code=code, actor=actor, target=target, data=data)
