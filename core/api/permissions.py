from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.actors import Actor


class IsAuthenticatedPrincipal(BasePermission):
    """A signed-in person or a valid API key (the authenticators leave an ``Actor`` in ``request.auth``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Actor) or bool(request.user and request.user.is_authenticated)
