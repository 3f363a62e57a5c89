"""Helpers for the browser tests: pages that record Content-Security-Policy refusals, sessions, screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.test import Client

from tests.factories import PASSWORD

__all__ = ["CSP_VIOLATIONS", "PASSWORD", "new_page", "screenshot", "sign_in"]

SCREENSHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"

# What the browser refused under the Content-Security-Policy during a test (Chromium logs each refusal).
CSP_VIOLATIONS: list[str] = []


def _record_csp_violation(message: Any) -> None:
    if "Content Security Policy" in message.text:
        CSP_VIOLATIONS.append(f"{message.location.get('url', '')}: {message.text}")


def new_page(browser: Any, live_server: Any, *, locale: str = "en-US", viewport: dict[str, int] | None = None) -> Any:
    context = browser.new_context(
        base_url=live_server.url, locale=locale, viewport=viewport or {"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("console", _record_csp_violation)
    return page


def sign_in(page: Any, live_server: Any, user: Any) -> None:
    """Give the browser a session of ``user`` (the sign-in form itself is tested on its own)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
