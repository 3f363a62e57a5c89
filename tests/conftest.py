"""Shared fixtures: named actors, so authorisation tests read like sentences."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

import tests.compensation.pg_guards  # noqa: F401  (lets transactional tests flush the append-only ledger)
from tests.compensation.helpers import BOOK, CO_OWNED, MANIFESTS, manifest_body
from tests.factories import (
    ApiKeyFactory,
    ClaimFactory,
    HolderFactory,
    LabFactory,
    SocietyFactory,
    StaffUserFactory,
    TariffFactory,
    UserFactory,
    WorkFactory,
    payout_profile,
    verify_claims,
)
from tests.helpers import key_client, seoul, signed_in


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-services",
        action="store_true",
        help="fail the run if any test marked postgres or redis was skipped (CI uses this)",
    )
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        help="examples Schemathesis generates per API operation in tests/test_schema_fuzz.py (FUZZ_EXAMPLES, 10)",
    )


def _on_postgres() -> bool:
    return str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    skip_redis = pytest.mark.skip(reason="needs Redis and a Celery worker: set REDIS_URL=redis://...")
    for item in items:
        if item.get_closest_marker("postgres") and not _on_postgres():
            item.add_marker(skip_pg)
        if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
            item.add_marker(skip_redis)


_skipped_required: list[str] = []
_requires_service: set[str] = set()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _requires_service.update(
        item.nodeid for item in session.items if item.get_closest_marker("postgres") or item.get_closest_marker("redis")
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.nodeid in _requires_service:
        _skipped_required.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.getoption("--require-services") and _skipped_required:
        session.config.get_terminal_writer().line(
            f"--require-services: {len(_skipped_required)} PostgreSQL/Redis tests were skipped, e.g. "
            f"{_skipped_required[0]}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _isolated_media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SIMILARITY_INDEX_DIR = tmp_path / "media" / "similarity-index"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # The near-copy index a process keeps knows its delta by row count and last id; a rolled-back test may leave
    # SQLite reusing both for other rows, so each test starts with none loaded.
    from registry.similarity import similarity_index_forget

    similarity_index_forget()
    # Likewise the checkpoint a process remembers: a test's log starts again from its first leaf.
    from optout.transparency.services import log_cache_forget

    log_cache_forget()


@pytest.fixture(autouse=True)
def _eager_celery(settings: Any) -> Iterator[None]:
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- Named actors ----------------------------------------------------------------------
# Made by the factories (tests/factories.py), through the services, with names the tests and pages show.


def _party_key(party: Any, scopes: list[str]) -> APIClient:
    return key_client(ApiKeyFactory(party=party, scopes=scopes).raw)


@pytest.fixture
def owner(db: Any) -> Any:
    return UserFactory(username="owner@holder.example")


@pytest.fixture
def holder(owner: Any) -> Any:
    return HolderFactory(name="Hangang Press", owner=owner)


@pytest.fixture
def holder_api(holder: Any) -> APIClient:
    return _party_key(holder, ["works:write", "lookup"])


@pytest.fixture
def co_owner(db: Any) -> Any:
    return UserFactory(username="co@other.example")


@pytest.fixture
def other_holder(co_owner: Any) -> Any:
    return HolderFactory(name="Other Records", owner=co_owner)


@pytest.fixture
def other_holder_api(other_holder: Any) -> APIClient:
    return _party_key(other_holder, ["works:write", "lookup"])


@pytest.fixture
def society(db: Any) -> Any:
    """KOMCA-like collecting society; its licensing team signs in as ``licensing@society.example``."""
    return SocietyFactory(name="Korea Music Society", owner=UserFactory(username="licensing@society.example"))


@pytest.fixture
def society_api(society: Any) -> APIClient:
    return _party_key(society, ["works:write", "lookup"])


@pytest.fixture
def outsider(db: Any) -> Any:
    return UserFactory(username="outsider@nowhere.example")


@pytest.fixture
def lab(db: Any) -> Any:
    return LabFactory(name="Seoul AI Lab", owner=UserFactory(username="ml@lab.example"))


@pytest.fixture
def lab_api(lab: Any) -> APIClient:
    return _party_key(lab, ["lookup", "usage:write"])


@pytest.fixture
def staff(db: Any) -> Any:
    return StaffUserFactory(username="staff@registry.example")


@pytest.fixture
def staff_api(staff: Any) -> APIClient:
    return key_client(ApiKeyFactory(staff_user=staff, scopes=["staff"]).raw)


@pytest.fixture
def session_api(owner: Any, holder: Any) -> APIClient:
    client = APIClient()
    client.force_login(owner)
    return client


@pytest.fixture
def book(holder: Any, staff: Any) -> Any:
    """A registered book (ISBN 9788936434021) with a verified owner, ``holder``."""
    return WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)


# --- A settlement world (compensation and portal tests) --------------------------------------------


@pytest.fixture
def clock(time_machine: Any) -> Any:
    """``clock(moment)`` stops time at ``moment``; it starts at 2026-01-05 09:00 in Seoul."""

    def move(moment: datetime) -> None:
        time_machine.move_to(moment, tick=False)

    move(seoul(2026, 1, 5, 9))
    return move


@pytest.fixture
def world(clock: Any, staff: Any, holder: Any, other_holder: Any) -> dict[str, Any]:
    """Tariffs and three books: one owned by ``holder``, one co-owned 60/40, one nobody registered."""
    TariffFactory(kind="text", unit="token", rate_krw=Decimal("0.0005"), effective_from=timezone.now(), set_by=staff)
    book = WorkFactory(holder=holder, identifiers=[("isbn", BOOK)], verified_by=staff)
    co_owned = WorkFactory(holder=holder, identifiers=[("isbn", CO_OWNED)], share_bp=6000)
    ClaimFactory(work=co_owned, holder=other_holder, share_bp=4000)
    verify_claims(co_owned, staff)
    # Both holders are companies with verified payout profiles (no withholding), so settlements pay them.
    payout_profile(holder, verified_by=staff)
    payout_profile(other_holder, verified_by=staff, account_number="3333-01-2345678")
    return {"book": book, "co_owned": co_owned}


@pytest.fixture
def report(lab_api: APIClient, django_capture_on_commit_callbacks: Any) -> Any:
    """The lab reports ``(isbn, tokens)`` uses, now, through the API; the worker runs eagerly."""
    count = 0

    def submit(*uses: tuple[str, str]) -> int:
        nonlocal count
        count += 1
        used_at = (timezone.now() - timedelta(hours=1)).isoformat()
        lines = [{"scheme": "isbn", "value": v, "units": u, "unit": "token", "used_at": used_at} for v, u in uses]
        with django_capture_on_commit_callbacks(execute=True):
            response = lab_api.post(MANIFESTS, manifest_body(lines, manifest_id=f"run-{count}"), format="json")
        assert response.status_code == 202, response.content
        assert lab_api.get(response.json()["url"]).json()["status"] == "processed"
        return int(response.json()["id"])

    return submit


@pytest.fixture
def settle(staff_api: APIClient, django_capture_on_commit_callbacks: Any) -> Any:
    """``settle(first_day, last_day)`` asks for a settlement through the API and returns its detail."""

    def run(first: str, last: str, expect: int = 202) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = staff_api.post("/api/v1/settlements", {"period_start": first, "period_end": last}, format="json")
        assert response.status_code == expect, response.content
        if expect in (200, 202):
            return dict(staff_api.get(response["Location"]).json())
        return dict(response.json())

    return run


@pytest.fixture
def web_root(tmp_path: Path, settings: Any) -> Iterator[tuple[str, Path]]:
    """A web server on 127.0.0.1 serving ``root`` (with an empty ``.well-known/``): ``(its URL, root)``."""
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = True
    settings.DOMAIN_CHECK_TIMEOUT = 2.0
    root = tmp_path / "site"
    (root / ".well-known").mkdir(parents=True)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def staff_client(staff: Any) -> Client:
    """``staff``, made a superuser, signed in to the admin (Django's test client)."""
    staff.is_superuser = True
    staff.save()
    return signed_in(staff)
