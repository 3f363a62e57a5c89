"""Refuses a query string holding a NUL character before any view reads it.

PostgreSQL's text cannot hold NUL: a search or filter parameter with one failed the query (a 500). Forms and
serializers refuse NUL in their own fields, and JSON bodies are checked by the API's parser; query strings are
read by views directly, so they are checked here, once for every page and endpoint.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.translation import gettext as _

# Where answers are JSON rather than HTML pages: the API, the public status check and the receipt keys
# (also read by the site's error pages, config/errors.py).
API_PREFIX = "/api/"
JSON_PATHS = ("/status", "/.well-known/")


class NulQueryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for name, values in request.GET.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return _refused(request, name.replace("\x00", "\\u0000"))
        return self.get_response(request)


def _refused(request: HttpRequest, name: str) -> HttpResponse:
    message = _("The parameter “%(name)s” holds a NUL character (U+0000), which text may not hold.") % {"name": name}
    # JSON wherever the API answers, /status included (config.errors draws the same line for error pages).
    if request.path.startswith((API_PREFIX, *JSON_PATHS)):
        error = {"code": "nul_character", "message": message, "field": name}
        return JsonResponse({"error": error}, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
