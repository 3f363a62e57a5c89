"""Shared fixtures: named actors, so authorisation tests read like sentences."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

import tests.compensation.pg_guards  # noqa: F401  (lets transactional tests flush the append-only ledger)


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
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


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
    settings.CELERY_TASK_ALWAYS_EAGER = True


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


def _user(username: str, *, staff: bool = False) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username=username, email=username, password="correct-horse-battery", is_staff=staff
    )


def _party(kind: str, name: str, owner: Any) -> Any:
    from core.actors import Actor
    from registry.services import party_create

    return party_create(actor=Actor.system(), kind=kind, name=name, owner=owner)


def _key(party: Any, scopes: list[str]) -> str:
    from core.actors import Actor
    from registry.services import apikey_create

    _key_obj, raw = apikey_create(actor=Actor.system(), party=party, scopes=scopes)
    return raw


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def owner(db: Any) -> Any:
    return _user("owner@holder.example")


@pytest.fixture
def holder(owner: Any) -> Any:
    return _party("holder", "Hangang Press", owner)


@pytest.fixture
def holder_api(holder: Any) -> APIClient:
    return key_client(_key(holder, ["works:write", "lookup"]))


@pytest.fixture
def co_owner(db: Any) -> Any:
    return _user("co@other.example")


@pytest.fixture
def other_holder(co_owner: Any) -> Any:
    return _party("holder", "Other Records", co_owner)


@pytest.fixture
def other_holder_api(other_holder: Any) -> APIClient:
    return key_client(_key(other_holder, ["works:write", "lookup"]))


@pytest.fixture
def outsider(db: Any) -> Any:
    return _user("outsider@nowhere.example")


@pytest.fixture
def lab(db: Any) -> Any:
    return _party("lab", "Seoul AI Lab", _user("ml@lab.example"))


@pytest.fixture
def lab_api(lab: Any) -> APIClient:
    return key_client(_key(lab, ["lookup", "usage:write"]))


@pytest.fixture
def staff(db: Any) -> Any:
    return _user("staff@registry.example", staff=True)


@pytest.fixture
def staff_api(staff: Any) -> APIClient:
    from core.actors import Actor
    from registry.services import apikey_create

    _key_obj, raw = apikey_create(actor=Actor.system(), staff_user=staff, scopes=["staff"])
    return key_client(raw)


@pytest.fixture
def session_api(owner: Any, holder: Any) -> APIClient:
    client = APIClient()
    client.force_login(owner)
    return client
