from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from registry.models import ApiKey


class IsAuthenticatedPrincipal(BasePermission):
    """A signed-in person or a valid API key."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey) or bool(request.user and request.user.is_authenticated)
