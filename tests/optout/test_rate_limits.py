"""Lookup rate limits over HTTP: a count per API key, person or address in fixed windows of the rate's period.

The N+1-th lookup of a window is refused with 429 and ``Retry-After`` (the seconds until the window ends),
other callers are not affected, and the next window starts from zero.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.db import connections
from rest_framework.test import APIClient

from core.api.throttles import FixedWindowRateThrottle, throttle_leases_forget
from tests.factories import ApiKeyFactory
from tests.helpers import key_client

pytestmark = pytest.mark.django_db

SINGLE = {"scheme": "isbn", "value": "9788936434021"}


@pytest.fixture
def rates(monkeypatch: Any) -> None:
    # monkeypatch deletes the attribute afterwards, so later tests see DRF's rates (from the settings) again.
    monkeypatch.setattr(FixedWindowRateThrottle, "THROTTLE_RATES", {"lookup": "3/min", "lookup_anonymous": "1/min"})


@pytest.fixture
def at(time_machine: Any) -> Any:
    def move(hour: int, minute: int, second: float) -> None:
        whole = int(second)
        moment = datetime(2026, 1, 5, hour, minute, whole, int((second - whole) * 1_000_000), tzinfo=UTC)
        time_machine.move_to(moment, tick=False)

    return move


def single(client: APIClient) -> Any:
    return client.get("/api/v1/lookup", SINGLE)


def test_the_lookup_past_the_keys_limit_is_refused_until_the_window_ends(book, lab_api, rates, at):
    at(9, 0, 10)

    answers = [single(lab_api) for _ in range(4)]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused["Retry-After"] == "50"
    assert refused.json() == {
        "error": {"code": "throttled", "message": refused.json()["error"]["message"], "retry_after": 50}
    }
    assert refused.json()["error"]["message"]


def test_another_key_of_the_same_lab_is_not_affected(book, lab, lab_api, rates, at):
    at(9, 0, 10)
    [single(lab_api) for _ in range(4)]
    other = key_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw)

    assert single(other).status_code == 200
    assert single(lab_api).status_code == 429


def test_batch_and_single_lookups_count_against_one_limit(book, lab_api, rates, at):
    at(9, 0, 10)

    batch = [lab_api.post("/api/v1/lookup", {"items": [SINGLE]}, format="json").status_code for _ in range(2)]

    assert batch == [200, 200]
    assert [single(lab_api).status_code for _ in range(2)] == [200, 429]


def test_the_next_window_starts_from_zero(book, lab_api, rates, at):
    at(9, 0, 10)
    [single(lab_api) for _ in range(4)]

    at(9, 1, 0)

    assert [single(lab_api).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_at_the_windows_boundary_the_wait_is_the_last_second_and_then_the_count_resets(book, lab_api, rates, at):
    at(9, 0, 59.2)
    answers = [single(lab_api) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[3]["Retry-After"] == "1"

    at(9, 0, 59.999)
    assert single(lab_api).status_code == 429

    at(9, 1, 0)
    assert single(lab_api).status_code == 200


def test_anonymous_lookups_are_limited_per_address(book, lab_api, rates, at):
    at(9, 0, 30)
    first = APIClient(REMOTE_ADDR="203.0.113.7")
    second = APIClient(REMOTE_ADDR="198.51.100.20")

    answers = [single(first) for _ in range(2)]

    assert [r.status_code for r in answers] == [200, 429]
    assert answers[1]["Retry-After"] == "30"
    assert answers[1].json()["error"]["retry_after"] == 30
    # Another address, and a key calling from the same address, count apart.
    assert single(second).status_code == 200
    assert single(lab_api).status_code == 200


@pytest.mark.redis
def test_every_client_of_one_redis_shares_the_count(book, rates, settings):
    # The production cache (config/settings.py with REDIS_URL). Each thread opens its own cache object and
    # connection pool, as each web process does.
    settings.CACHES = {
        "default": {
            "BACKEND": "config.cache.FallbackRedisCache",
            "LOCATION": settings.REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    cache.clear()
    here = single(APIClient(REMOTE_ADDR="203.0.113.7"))
    elsewhere: list[Any] = []

    def other_process() -> None:
        # Anonymous, and refused before the view reads the database (whose test data this thread cannot see). A
        # thread shares this process's leases of the count (core/api/throttles.py); another process holds none.
        throttle_leases_forget()
        try:
            elsewhere.append(single(APIClient(REMOTE_ADDR="203.0.113.7")))
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_process)
    thread.start()
    thread.join()
    # The count is Redis's, not a per-process fallback's: one integer for the address and window.
    server = redis.Redis.from_url(settings.REDIS_URL)
    counts = [int(server.get(key) or 0) for key in server.keys("*throttle_lookup_anonymous_203.0.113.7:*")]
    cache.clear()

    assert here.status_code == 200
    assert elsewhere[0].status_code == 429
    assert int(elsewhere[0]["Retry-After"]) > 0
    assert counts == [2]


def _throttle_calls(calls: int, *, key: Any, forget_every: int | None = None) -> int:
    """Requests admitted among ``calls`` by the keyed lookup throttle, called as the view does; with
    ``forget_every``, the process's leases are dropped that often, as if the calls were spread over processes."""
    from types import SimpleNamespace

    from core.actors import Actor
    from core.api.throttles import throttle_leases_forget
    from optout.api.throttles import LookupPrincipalThrottle

    request: Any = SimpleNamespace(auth=Actor(party=key.party, api_key=key))
    admitted = 0
    for call in range(calls):
        if forget_every and call % forget_every == 0:
            throttle_leases_forget()
        admitted += LookupPrincipalThrottle().allow_request(request, None)
    return admitted


def test_a_busy_caller_is_counted_a_lease_at_a_time_and_never_past_its_rate(lab, monkeypatch, at):
    from types import SimpleNamespace

    from core.actors import Actor
    from optout.api.throttles import LookupPrincipalThrottle

    monkeypatch.setattr(FixedWindowRateThrottle, "THROTTLE_RATES", {"lookup": "1000/min", "lookup_anonymous": "1/min"})
    key = ApiKeyFactory(party=lab, scopes=["lookup"])
    at(9, 0, 0)

    # One process: exactly the rate, then refused until the window ends.
    assert _throttle_calls(1_200, key=key) == 1_000
    # The shared count moved by leases of a hundredth of the rate (100 round trips, not 1,000), and stopped at the
    # rate: the refused calls were refused from memory.
    request: Any = SimpleNamespace(auth=Actor(party=key.party, api_key=key))
    throttle = LookupPrincipalThrottle()
    assert throttle.cache.get(f"{throttle.get_cache_key(request, None)}:{int(time.time() // 60)}") == 1_000

    # The next window, spread over "processes" that each hold a lease: never more than the rate in all.
    at(9, 1, 0)
    admitted = _throttle_calls(1_200, key=key, forget_every=7)
    assert 1_000 - 10 * (1_200 // 7) <= admitted <= 1_000
