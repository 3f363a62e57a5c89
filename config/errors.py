"""Error pages for the whole site: the API answers in its JSON error shape, the portal with an HTML page.

Django calls these for exceptions no view handled (``handler500`` runs inside the ``except`` block, so
the exception is ``sys.exc_info()``). A database that cannot be reached is a 503 with ``Retry-After``
everywhere, never a 500 and never an answer computed without it.
"""

from __future__ import annotations

import sys

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.views import defaults

from core.api.errors import DATABASE_DOWN_ERRORS, RETRY_AFTER_SECONDS
from core.errors import NotFound, NotPermitted, RegistryError, RequestTooLarge, ServerError, ServiceUnavailable
from core.middleware import API_PREFIX, JSON_PATHS
from registry.selectors import registry_name


class BadRequest(RegistryError):
    code = "bad_request"
    default_message = _("The request could not be read.")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX) or request.path.startswith(JSON_PATHS)


def _api_error(error: RegistryError) -> JsonResponse:
    response = JsonResponse({"error": error.as_dict()}, status=error.status)
    if error.status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _html_error(title: str | Promise, error: RegistryError) -> HttpResponse:
    retry_after = RETRY_AFTER_SECONDS if error.status == 503 else None
    body = render_to_string(
        "portal/errors/error.html",
        {
            "registry_name": registry_name(),
            "title": title,
            "message": error.message,
            "retry_after": retry_after,
        },
    )
    response = HttpResponse(body, status=error.status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _unavailable(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return _api_error(ServiceUnavailable())
    return _html_error(_("Temporarily unavailable"), ServiceUnavailable())


def server_error(request: HttpRequest) -> HttpResponse:
    if isinstance(sys.exc_info()[1], DATABASE_DOWN_ERRORS):
        return _unavailable(request)
    if _is_api(request):
        return _api_error(ServerError())
    return _html_error(_("Something went wrong"), ServerError())


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        if _is_api(request):
            return _api_error(RequestTooLarge())
        return _html_error(_("Too large"), RequestTooLarge())
    if _is_api(request):
        return _api_error(BadRequest())
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_error(NotPermitted())
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return _api_error(NotFound())
    return defaults.page_not_found(request, exception)
