"""The errors every part of the registry raises.

Each error has a stable machine-readable ``code`` and a translatable message; the API
renders every one of them the same way (``core.api.errors``):
``{"error": {"code": ..., "message": ..., "field" | "row" | "line": ...}}``. Each app adds its own
domain errors as subclasses (``registry.errors``, ``optout.errors``, ``compensation.errors``).
"""

from __future__ import annotations

from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class RegistryError(Exception):
    code: str = "registry_error"
    status: int = 400
    default_message: str | Promise = _("The request could not be processed.")

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        row: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message if message is not None else self.default_message
        if code is not None:
            self.code = code
        self.field = field
        self.row = row
        self.extra = extra or {}
        super().__init__(str(self.message))

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": str(self.message)}
        if self.field is not None:
            body["field"] = self.field
        if self.row is not None:
            body["row"] = self.row
        body.update(self.extra)
        return body


class InvalidInput(RegistryError):
    code = "invalid"
    default_message = _("The input is not valid.")


class InvalidState(RegistryError):
    code = "invalid_state"
    status = 409
    default_message = _("This action is not possible in the object's current state.")


class NotPermitted(RegistryError):
    code = "permission_denied"
    status = 403
    default_message = _("You are not allowed to do this.")


class NotFound(RegistryError):
    code = "not_found"
    status = 404
    default_message = _("Not found.")


class ServiceUnavailable(RegistryError):
    """The database cannot be reached: nothing was read or written, and nothing is answered as if it were."""

    code = "service_unavailable"
    status = 503
    default_message = _("The registry is temporarily unavailable; nothing was read or changed. Try again shortly.")


class RequestTooLarge(RegistryError):
    code = "request_too_large"
    status = 413
    default_message = _("The request body is larger than the registry accepts; send a smaller one or a file upload.")


class ServerError(RegistryError):
    code = "server_error"
    status = 500
    default_message = _("The registry could not answer this request; the error has been logged.")
