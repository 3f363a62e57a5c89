"""The API documentation pages work in a real browser under their Content-Security-Policy, fully offline."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import CSP_VIOLATIONS

pytestmark = [pytest.mark.django_db(transaction=True)]


def _requests_elsewhere(page: Any, live_server: Any) -> list[str]:
    # Finished requests only: one the policy blocks is attempted, then fails (net::ERR_BLOCKED_BY_CSP).
    elsewhere: list[str] = []
    page.on(
        "requestfinished",
        lambda request: (
            None if request.url.startswith((live_server.url, "data:", "blob:")) else elsewhere.append(request.url)
        ),
    )
    return elsewhere


def test_swagger_ui_starts_from_its_static_script_and_lists_the_operations(page, live_server):
    elsewhere = _requests_elsewhere(page, live_server)

    page.goto("/api/v1/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AI-training opt-out registry API")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/lookup").first).to_be_visible()
    assert elsewhere == []


def test_redoc_renders_the_schema(page, live_server):
    elsewhere = _requests_elsewhere(page, live_server)

    page.goto("/api/v1/redoc/")

    expect(page.locator("h1").first).to_contain_text("AI-training opt-out registry API")
    expect(page.get_by_text("/api/v1/lookup").first).to_be_attached()
    # The Redoc bundle's own logo (from its CDN) is the one thing the policy is there to refuse.
    refused = [v for v in CSP_VIOLATIONS if "cdn.redoc.ly/redoc/logo" not in v]
    CSP_VIOLATIONS.clear()
    assert refused == []
    assert elsewhere == []
