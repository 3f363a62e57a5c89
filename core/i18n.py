"""Which language a request asks for, as opposed to the one Django falls back to."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils import translation


def requested_language(request: HttpRequest) -> str | None:
    """The language the request asks for (the language cookie the portal's switcher sets, or an
    ``Accept-Language`` header), as ``LocaleMiddleware`` settled it; ``None`` when it asks for none, where
    the active language is only the registry's default and something the reader chose earlier (the language
    they uploaded a file in) says more about what they read."""
    if request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) or request.META.get("HTTP_ACCEPT_LANGUAGE"):
        return translation.get_language()
    return None
