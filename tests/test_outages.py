"""Outages: a Redis of the test's own that is stopped, and a web server whose PostgreSQL does not answer.

With Redis down, lookups, ``/status`` and sign-in keep answering (the same signed answers) and rate limits
count per process. With the database down, every answer is a 503 with ``Retry-After``: JSON under the API,
an HTML page in the portal, and never an answer computed without the registry.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client
from rest_framework.test import APIClient

import config.cache
from tests.factories import WorkFactory

ROOT = Path(__file__).resolve().parents[1]
ISBN = {"scheme": "isbn", "value": "978-89-364-3402-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    # Readiness, not a timing assertion: start-up may take a while on a busy machine.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {process.stdout.read().decode() if process.stdout else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not start listening on port {port}")


class OwnRedis:
    """A redis-server of the test's own, on a free port, without persistence."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.process, "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def own_redis(settings: Any) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = OwnRedis()
    redis.start()
    # The production cache configuration (config/settings.py with REDIS_URL), pointed at this Redis.
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.FallbackRedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    config.cache._state.update(down_until=0.0, down=False)
    fallback = LocMemCache(config.cache._FALLBACK_NAME, {})
    fallback.clear()
    try:
        yield redis
    finally:
        redis.stop()
        config.cache._state.update(down_until=0.0, down=False)
        fallback.clear()


@pytest.fixture
def book(holder: Any, staff: Any) -> Any:
    work = WorkFactory(holder=holder, identifiers=[("isbn", "9788936434021")], verified_by=staff)
    return work


def _answer_without_time(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in {"issued_at", "receipt", "request"}}


@pytest.mark.django_db
def test_with_redis_down_lookups_keep_answering_with_signed_answers(own_redis, book, lab_api, caplog):
    before = lab_api.post("/api/v1/lookup", {"items": [ISBN]}, format="json")
    assert before.status_code == 200

    own_redis.stop()
    with caplog.at_level(logging.ERROR, logger="config.cache"):
        during = [lab_api.post("/api/v1/lookup", {"items": [ISBN]}, format="json") for _ in range(3)]
        anonymous = APIClient().get("/api/v1/lookup", {"scheme": "isbn", "value": "9788936434021"})
        status = APIClient().get("/status", {"url": "https://news.example.kr/a"})

    assert [response.status_code for response in during] == [200, 200, 200]
    assert _answer_without_time(during[-1].json()) == _answer_without_time(before.json())
    assert during[-1].json()["results"][0]["status"] == "permitted"
    verified = APIClient().post("/api/v1/receipts/verify", during[-1].json(), format="json")
    assert verified.status_code == 200, verified.content
    assert verified.json()["valid"] is True
    assert anonymous.status_code == 200
    assert status.status_code == 200
    assert status.json()["status"] == "unregistered"
    # One log line for the outage, not one per request.
    assert len([r for r in caplog.records if r.name == "config.cache"]) == 1


@pytest.mark.django_db
def test_with_redis_down_lookup_rate_limits_hold_per_process(own_redis, book, monkeypatch):
    from optout.api.throttles import LookupAnonymousThrottle, LookupPrincipalThrottle

    for throttle in (LookupAnonymousThrottle, LookupPrincipalThrottle):
        monkeypatch.setattr(throttle, "THROTTLE_RATES", {"lookup": "100/min", "lookup_anonymous": "2/min"})
    own_redis.stop()
    anonymous = APIClient()

    answers = [anonymous.get("/api/v1/lookup", {"scheme": "isbn", "value": "9788936434021"}) for _ in range(3)]

    assert [response.status_code for response in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["code"] == "throttled"
    assert int(answers[2]["Retry-After"]) > 0


@pytest.mark.django_db
def test_with_redis_down_sign_in_works_and_the_lockout_still_holds(own_redis, owner, outsider):
    own_redis.stop()
    client = Client()

    signed_in = client.post("/accounts/login/", {"username": owner.email, "password": "correct-horse-battery"})
    assert signed_in.status_code == 302

    guesser = Client()
    for _ in range(5):
        wrong = guesser.post("/accounts/login/", {"username": outsider.email, "password": "wrong"})
        assert wrong.status_code == 200
    refused = guesser.post("/accounts/login/", {"username": outsider.email, "password": "correct-horse-battery"})
    assert refused.status_code == 200
    assert "_auth_user_id" not in guesser.session


@pytest.mark.django_db
def test_rate_limits_are_shared_again_once_redis_is_back(own_redis, book, monkeypatch):
    from django.core.cache import cache

    own_redis.stop()
    cache.set("probe", 1)  # served by the process's memory while Redis is down
    own_redis.start()
    config.cache._state["down_until"] = 0.0  # skip the retry pause

    cache.set("probe", 2)

    assert config.cache.redis_is_down() is False
    assert cache.get("probe") == 2


# --- PostgreSQL down: a real web server (gunicorn, as shipped) whose database port is closed ----------------


@pytest.fixture(scope="module")
def server_without_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    closed_port = _free_port()  # nothing listens here: every connection is refused
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://registry@127.0.0.1:{closed_port}/registry",
        "DATA_DIR": str(tmp_path_factory.mktemp("no-database")),
        "REGISTRY_TESTING": "1",
        "DEBUG": "0",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process, "gunicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _assert_api_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] in {"service_unavailable", "lookup_unavailable"}
    assert error["message"]
    assert "permitted" not in response.text


def test_with_the_database_down_api_key_requests_answer_503_json(server_without_database):
    key = {"Authorization": "Api-Key orr_abcdef01_unknownbutwellformed"}
    with httpx.Client(base_url=server_without_database, timeout=30) as http:
        _assert_api_unavailable(http.post("/api/v1/lookup", json={"items": [ISBN]}, headers=key))
        _assert_api_unavailable(http.get("/api/v1/works", headers=key))
        _assert_api_unavailable(http.get("/api/v1/me", headers=key))


def test_with_the_database_down_anonymous_lookups_and_status_answer_503_never_permitted(server_without_database):
    with httpx.Client(base_url=server_without_database, timeout=30) as http:
        _assert_api_unavailable(http.get("/api/v1/lookup", params={"scheme": "isbn", "value": "9788936434021"}))
        _assert_api_unavailable(http.get("/status", params={"url": "https://news.example.kr/a"}))
        health = http.get("/healthz")
    assert health.status_code == 503


def test_with_the_database_down_portal_pages_answer_an_html_503(server_without_database):
    # A session cookie, so that pages which read the session reach the database.
    with httpx.Client(base_url=server_without_database, timeout=30, cookies={"sessionid": "a-session"}) as http:
        for path in ("/", "/works/1", "/search?q=isbn:9788936434021", "/accounts/login/", "/admin/login/"):
            response = http.get(path)
            assert response.status_code == 503, (path, response.status_code)
            assert response.headers["Content-Type"].startswith("text/html")
            assert int(response.headers["Retry-After"]) > 0
            assert "permitted" not in response.text.lower()
    # Without a session too: the public pages read the registry.
    with httpx.Client(base_url=server_without_database, timeout=30) as http:
        for path in ("/", "/works/1", "/search?q=isbn:9788936434021"):
            response = http.get(path)
            assert response.status_code == 503, (path, response.status_code)
            assert int(response.headers["Retry-After"]) > 0
