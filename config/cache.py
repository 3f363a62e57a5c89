"""The shared cache (Redis) with a per-process fallback while Redis cannot be reached.

Rate limits (lookup throttles, sign-in lockout, password-reset mail) count in the cache. Without a
fallback, a Redis outage turned every lookup, ``/status`` and sign-in into a 500. While Redis is down,
each web process counts in its own memory instead: limits still hold per process (a client spread over
N processes gets at most N times its rate), and nothing that does not need Redis stops answering.
The outage is logged once when it starts and once when Redis answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from core.api.throttles import cache_count

logger = logging.getLogger(__name__)

T = TypeVar("T")

# After a failure, Redis is tried again only after this many seconds, so that an outage costs each
# request nothing rather than a connection attempt.
RETRY_SECONDS = 5.0

# One fallback store per process (LocMemCache keeps its data per name, module-wide), shared by every
# thread's cache object, and one outage state, so the outage is logged once per process.
_FALLBACK_NAME = "registry-cache-fallback"
_lock = threading.Lock()
_state = {"down_until": 0.0, "down": False}


def redis_is_down() -> bool:
    """Whether this process currently counts in its own memory instead of Redis."""
    return bool(_state["down"])


class FallbackRedisCache(RedisCache):
    """Django's Redis cache; on any Redis error the call is served by a per-process memory cache."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._fallback = LocMemCache(_FALLBACK_NAME, {"TIMEOUT": params.get("TIMEOUT", 300)})

    def _call(self, redis_call: Callable[[], T], fallback_call: Callable[[], T]) -> T:
        if time.monotonic() >= _state["down_until"]:
            try:
                result = redis_call()
            except RedisError as exc:
                with _lock:
                    _state["down_until"] = time.monotonic() + RETRY_SECONDS
                    first = not _state["down"]
                    _state["down"] = True
                if first:
                    logger.error(
                        "Redis cannot be reached (%s: %s); rate limits count per process until it answers.",
                        exc.__class__.__name__,
                        exc,
                    )
            else:
                if _state["down"]:
                    with _lock:
                        recovered = bool(_state["down"])
                        _state["down"] = False
                    if recovered:
                        logger.warning("Redis answers again; rate limits are shared again.")
                return result
        return fallback_call()

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._call(
            lambda: super(FallbackRedisCache, self).add(key, value, timeout, version),
            lambda: self._fallback.add(key, value, timeout, version),
        )

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._call(
            lambda: super(FallbackRedisCache, self).get(key, default, version),
            lambda: self._fallback.get(key, default, version),
        )

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._call(
            lambda: super(FallbackRedisCache, self).set(key, value, timeout, version),
            lambda: self._fallback.set(key, value, timeout, version),
        )

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._call(
            lambda: super(FallbackRedisCache, self).touch(key, timeout, version),
            lambda: self._fallback.touch(key, timeout, version),
        )

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._call(
            lambda: super(FallbackRedisCache, self).delete(key, version),
            lambda: self._fallback.delete(key, version),
        )

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._call(
            lambda: super(FallbackRedisCache, self).get_many(keys, version),
            lambda: self._fallback.get_many(keys, version),
        )

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._call(
            lambda: super(FallbackRedisCache, self).has_key(key, version),
            lambda: self._fallback.has_key(key, version),
        )

    def count_in_window(self, key: Any, timeout: int, delta: int = 1) -> int:
        """Add ``delta`` to ``key``'s count, which expires ``timeout`` seconds after it was first counted; the new
        count.

        One round trip (INCRBY and EXPIRE ... NX pipelined), where ``incr`` is two (EXISTS, then INCRBY) and a
        window's first request adds a third. Redis runs the two in order; NX sets the expiry on the first count
        only, so the window's key never outlives ``timeout``. The fallback counts in this process's memory.
        """
        return self._call(
            lambda: self._count_in_redis(key, timeout, delta),
            lambda: cache_count(self._fallback, key, timeout=timeout, delta=delta),
        )

    def _count_in_redis(self, key: Any, timeout: int, delta: int) -> int:
        name = self.make_and_validate_key(key)
        client = self._cache.get_client(name, write=True)
        pipeline = client.pipeline(transaction=False)
        pipeline.incrby(name, delta)
        pipeline.expire(name, timeout, nx=True)
        count, _expiry_set = pipeline.execute()
        return int(count)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._call(
            lambda: super(FallbackRedisCache, self).incr(key, delta, version),
            lambda: self._fallback.incr(key, delta, version),
        )

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        return self._call(
            lambda: super(FallbackRedisCache, self).set_many(data, timeout, version),
            lambda: self._fallback.set_many(data, timeout, version),
        )

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._call(
            lambda: super(FallbackRedisCache, self).delete_many(keys, version),
            lambda: self._fallback.delete_many(keys, version),
        )

    def clear(self) -> None:
        self._call(lambda: super(FallbackRedisCache, self).clear(), self._fallback.clear)
