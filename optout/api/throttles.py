"""Rate limits on lookups: per API key or person, and per address for anonymous callers.

Counted in fixed windows of the rate's period (core/api/throttles.py): one counter per caller and window.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from core.actors import Actor
from core.api.throttles import FixedWindowRateThrottle


class LookupPrincipalThrottle(FixedWindowRateThrottle):
    scope = "lookup"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, Actor) and request.auth.api_key is not None:
            ident = f"key:{request.auth.api_key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class LookupAnonymousThrottle(FixedWindowRateThrottle):
    scope = "lookup_anonymous"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, Actor) or (request.user and request.user.is_authenticated):
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
