"""What every portal page needs: the registry's name in the active language and, for people signed in, the
party they act for."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.notifications import notifications_unread_count
from portal.access import portal_parties
from registry.selectors import registry_name


def portal(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {"registry_name": registry_name()}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        memberships, active = portal_parties(request)
        context["portal_memberships"] = memberships
        context["portal_membership"] = active
        context["portal_party"] = active.party if active is not None else None
        context["unread_notifications"] = notifications_unread_count(user_id=user.pk)
    return context
