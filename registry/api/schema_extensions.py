"""How the OpenAPI schema describes the registry's two ways to authenticate (loaded by ``RegistryConfig``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "registry.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Authorization: Api-Key <key> (the key is shown once, when it is created).",
        }


class PartySessionScheme(SessionScheme):
    target_class = "registry.api.authentication.PartySessionAuthentication"
