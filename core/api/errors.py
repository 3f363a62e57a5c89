"""One renderer for every API error: ``{"error": {"code", "message", "field" | "row" | ...}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import RegistryError, RequestTooLarge, ServiceUnavailable

# Seconds a client is asked to wait before retrying when the database cannot be reached.
RETRY_AFTER_SECONDS = 30
# Connection-level failures: the database is down or restarting. Other database errors are bugs (500).
DATABASE_DOWN_ERRORS = (OperationalError, InterfaceError)


def _first_error(detail: Any, path: str = "") -> tuple[str, str, str]:
    """The first (field path, code, message) in a DRF ValidationError detail tree."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            sub = f"{path}.{key}" if path else str(key)
            if key == "non_field_errors":
                sub = path
            return _first_error(value, sub)
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list) and not isinstance(value, exceptions.ErrorDetail):
                return _first_error(value, f"{path}[{index}]")
            return _first_error(value, path)
    if isinstance(detail, exceptions.ErrorDetail):
        return path, detail.code or "invalid", str(detail)
    return path, "invalid", str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DATABASE_DOWN_ERRORS):
        # Raised anywhere in the request, API-key authentication included: never answer as if read.
        exc = ServiceUnavailable()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    if isinstance(exc, RegistryError):
        response = Response({"error": exc.as_dict()}, status=exc.status)
        if exc.status == status.HTTP_503_SERVICE_UNAVAILABLE:
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    handled = exception_handler(exc, context)
    if handled is None or not isinstance(exc, exceptions.APIException):
        return handled
    response = handled
    body: dict[str, Any]
    if isinstance(exc, exceptions.ValidationError):
        field, code, message = _first_error(exc.detail)
        # DRF's own name for a NUL in a form field; JSON bodies and files say nul_character (core/uploads.py).
        code = "nul_character" if code == "null_characters_not_allowed" else code
        body = {"code": "invalid" if code in ("invalid", "") else code, "message": message}
        if field:
            body["field"] = field
        body["details"] = exc.detail
    else:
        detail = exc.detail
        code = detail.code if isinstance(detail, exceptions.ErrorDetail) and detail.code else exc.default_code
        body = {"code": code, "message": str(detail)}
        wait = getattr(exc, "wait", None)
        if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and wait:
            body["retry_after"] = wait
    response.data = {"error": body}
    return response
