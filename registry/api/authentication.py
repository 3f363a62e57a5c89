"""API authentication: ``Authorization: Api-Key <key>`` (or ``API <key>``), or the portal's session.

Both authenticators put the service-layer ``Actor`` in ``request.auth``, so that the API base view
(``core.api.views.RegistryAPIView``) hands it to services without knowing about keys or parties."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

from core.actors import Actor
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
    def authenticate(self, request: Request) -> tuple[Any, Actor] | None:
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
        return user, Actor(user=key.user if key.party_id is None else None, party=key.party, api_key=key)

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class PartySessionAuthentication(SessionAuthentication):
    """The portal's session (with Django's CSRF check), acting for the person's party."""

    def authenticate(self, request: Request) -> tuple[Any, Actor] | None:
        authenticated = super().authenticate(request)
        if authenticated is None:
            return None
        user = authenticated[0]
        return user, session_actor(request, user)


def session_actor(request: Request, user: Any) -> Actor:
    """A signed-in person acts for their party, or for the one ``X-Party-Id`` names when they belong to several."""
    party_header = request.headers.get("X-Party-Id")
    if party_header is None:
        return Actor(user=user, party=party_for_user(user_id=int(user.pk)))
    # A header that cannot be a party id ("²" passes str.isdigit, 20 digits overflow the database) names no party
    # of the person's, like the id of a party they do not belong to.
    if not PARTY_ID.fullmatch(party_header.strip()):
        return Actor(user=user, party=None)
    return Actor(user=user, party=party_for_user(user_id=int(user.pk), party_id=int(party_header)))
