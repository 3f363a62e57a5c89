"""Appends the registry's status-changing events to the transparency log, in their transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.dispatch import receiver

from optout.transparency.services import log_events_append
from registry.models import AuditEvent
from registry.signals import audit_events_recorded


@receiver(audit_events_recorded, dispatch_uid="optout.transparency.log_events_append")
def _log_events_append(sender: Any, *, events: Sequence[AuditEvent], **kwargs: Any) -> None:
    log_events_append(events=events)
