"""The OpenAPI schema's shared parts, declared once: the API-key scheme and the error answers.

Every API error has one shape (``core.api.errors``); rather than repeat it on each view, the schema
class adds to every operation the error statuses it can answer, each with that shape:

- 400 when the operation reads a body or query parameters;
- 401 and 403 when it authenticates callers (a wrong or revoked key, a missing scope, another party's object);
- 404 when its path names an object, or it pages through a list (a page past the last);
- 409 when it changes state (a conflict with the object's current state);
- 413 and 415 when it reads a body (body, upload or batch over the limits; a media type it does not read, or a
  multipart body it cannot split);
- 429 when it is rate limited, with ``Retry-After``;
- 503 always: the database could not be reached, nothing was read or written (``Retry-After``).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ErrorDetailOutput(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField(help_text=_("Stable and machine-readable, e.g. invalid_checksum or not_found."))
    message = serializers.CharField(help_text=_("For people, in the language asked for (Accept-Language)."))
    field = serializers.CharField(required=False, help_text=_("The input field at fault, as a dotted path."))
    line = serializers.IntegerField(required=False, help_text=_("The line of an uploaded file at fault."))
    row = serializers.IntegerField(required=False, help_text=_("The row of an uploaded file at fault."))
    details = serializers.JSONField(required=False, help_text=_("Every validation error, by field."))
    retry_after = serializers.FloatField(required=False, help_text=_("Seconds to wait before trying again."))


class ErrorOutput(serializers.Serializer[dict[str, Any]]):
    error = ErrorDetailOutput()


_ERRORS: dict[str, Any] = {
    "400": _("The request is malformed or its input is not valid."),
    "401": _("No valid credentials: send Authorization: Api-Key <key>, or sign in."),
    "403": _("The caller may not do this (role, scope or another party's object)."),
    "404": _("No such object, or not one the caller may see (or no such page of a list)."),
    "409": _("Not possible in the object's current state, or it conflicts with an existing one."),
    "413": _("The body, upload or batch is larger than the registry accepts."),
    "415": _("The body's media type is not one the operation reads, or the body does not match it."),
    "429": _("Too many requests: wait for Retry-After seconds."),
    "503": _("The registry is temporarily unavailable; nothing was read or changed. Retry after Retry-After."),
}
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": _("Seconds to wait before trying again."),
    }
}


def error_responses(*codes: int) -> dict[tuple[int, str], OpenApiResponse]:
    """Error statuses an operation answers beyond the ones its shape implies (say, a 404 for an id in the body)."""
    return {
        (code, "application/json"): OpenApiResponse(ErrorOutput, description=str(_ERRORS[str(code)])) for code in codes
    }


class RegistryAutoSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code in self._error_statuses(operation):
            if code in responses:
                continue
            # drf-spectacular leaves this method unannotated, and untyped_calls_exclude cannot name it: mypy names
            # the call after this subclass.
            response = self._get_response_for_code(  # type: ignore[no-untyped-call]
                OpenApiResponse(ErrorOutput, description=str(_ERRORS[code])), code, ["application/json"]
            )
            if code in ("429", "503"):
                response["headers"] = dict(_RETRY_AFTER)
            responses[code] = response
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> list[str]:
        parameters = operation.get("parameters", [])
        reads_body = "requestBody" in operation
        authenticates = bool(getattr(self.view, "authentication_classes", ()))
        codes = []
        if reads_body or any(parameter["in"] == "query" for parameter in parameters):
            codes.append("400")
        if authenticates:
            codes += ["401", "403"]
        if any(parameter["in"] == "path" or parameter["name"] == "page" for parameter in parameters):
            codes.append("404")
        if self.method in _UNSAFE_METHODS and authenticates:
            codes.append("409")
        if reads_body:
            codes += ["413", "415"]
        if getattr(self.view, "throttle_classes", ()):
            codes.append("429")
        codes.append("503")
        return codes
