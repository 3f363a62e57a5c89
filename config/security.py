"""The Content-Security-Policy header on every response, from settings.

The portal loads its one script and its styles from its own static files and no other host, so its policy
allows nothing inline. The API documentation pages (Swagger UI and Redoc from drf-spectacular-sidecar) set
styles inline and Redoc starts workers from ``blob:`` URLs, so they get a policy of their own
(``CONTENT_SECURITY_POLICY_API_DOCS``); scripts stay ``'self'`` there too.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

API_DOCS_VIEWS = {"api:docs", "api:redoc"}


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        header = "Content-Security-Policy-Report-Only" if settings.CSP_REPORT_ONLY else "Content-Security-Policy"
        match = request.resolver_match
        docs = match is not None and match.view_name in API_DOCS_VIEWS
        policy = settings.CONTENT_SECURITY_POLICY_API_DOCS if docs else settings.CONTENT_SECURITY_POLICY
        if policy and header not in response:
            response[header] = policy
        return response
