"""API authentication: ``Authorization: Api-Key <key>`` (or ``API <key>``), or the portal's session."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from registry.audit import Actor
from registry.models import ApiKey
from registry.selectors import party_for_user
from registry.services import API_KEY_PREFIX, apikey_authenticate

KEYWORD = "Api-Key"
PARTY_ID = re.compile(r"[0-9]{1,18}")
# Spawning's clients (datadiligence, img2dataset) send "Authorization: API <key>"; the compat endpoint serves them.
KEYWORDS = {KEYWORD.lower(), "api"}
# Schemes clients reach for when they hold an API key. Other schemes (Basic, Digest, ...) may be a proxy's in
# front of the registry and are left alone, as is a header without a key.
KEY_SCHEMES = {"bearer", "token", "apikey", "api_key", "x-api-key", "key"}


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _sep, raw_key = header.partition(" ")
        if keyword.lower() not in KEYWORDS:
            if keyword.lower() in KEY_SCHEMES or header.strip().startswith(f"{API_KEY_PREFIX}_"):
                # "Bearer <key>" or a bare key: say how to send it instead of "credentials were not provided".
                raise exceptions.AuthenticationFailed(
                    _("Send the API key as “Authorization: Api-Key <key>”; this header does not use that form."),
                    code="api_key_scheme",
                )
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed(_("The Api-Key header carries no key."))
        key = apikey_authenticate(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed(_("Unknown or revoked API key."))
        # Staff keys act as their staff user; party keys act for the party alone.
        user = key.user if key.party_id is None and key.user is not None else AnonymousUser()
        return user, key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


def actor_from_request(request: Request) -> Actor:
    """The service-layer actor for an authenticated request."""
    if isinstance(request.auth, ApiKey):
        key = request.auth
        return Actor(user=key.user if key.party_id is None else None, party=key.party, api_key=key)
    user = request.user
    if not user.is_authenticated:
        return Actor()
    party_header = request.headers.get("X-Party-Id")
    if party_header is None:
        return Actor(user=user, party=party_for_user(user_id=int(user.pk)))
    # A header that cannot be a party id ("²" passes str.isdigit, 20 digits overflow the database) names no party
    # of the person's, like the id of a party they do not belong to.
    if not PARTY_ID.fullmatch(party_header.strip()):
        return Actor(user=user, party=None)
    return Actor(user=user, party=party_for_user(user_id=int(user.pk), party_id=int(party_header)))
