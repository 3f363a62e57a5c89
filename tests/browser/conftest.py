"""Playwright for Python driving Debian's Chromium against pytest-django's live server.

Playwright's own browser download does not work here: the tests launch ``/usr/bin/chromium`` (``apt-get install
chromium``) and are skipped when it or the ``playwright`` package is missing. Screenshots of the main pages go to
``var/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from core.api.throttles import throttle_leases_forget
from tests.browser.helpers import CSP_VIOLATIONS, new_page
from tests.factories import HolderFactory, UserFactory

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between browser
    # steps are plain synchronous code, so Django's async-safety check is lifted while the browser runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = playwright_sync.sync_playwright().start()
    chromium = manager.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
    try:
        yield chromium
    finally:
        chromium.close()
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _browser_settings(settings: Any) -> None:
    cache.clear()
    throttle_leases_forget()
    settings.DEBUG = False
    # Live-server pages are plain HTTP on 127.0.0.1.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


# What the browser refused under the Content-Security-Policy during a test (Chromium logs each refusal).


@pytest.fixture(autouse=True)
def _no_csp_violations() -> Iterator[None]:
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == [], "the page needed something the Content-Security-Policy refuses"


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    page = new_page(browser, live_server)
    yield page
    page.context.close()


@pytest.fixture
def holder_person(transactional_db: Any) -> Any:
    """writer@example.kr, who signs in with ``PASSWORD`` and owns Hangang Press."""
    user = UserFactory(username="writer@example.kr")
    HolderFactory(name="Hangang Press", owner=user)
    return user
