"""A rate limit that costs the same on every request: a counter per caller and fixed window, in the cache.

DRF's ``SimpleRateThrottle`` keeps, per caller, the list of its request times over the last period, and reads,
trims and writes the whole list back on every request: at 1,200 a minute that is up to 1,200 timestamps
pickled both ways per request, and more the higher the rate. Here a caller's requests are counted in windows
of the rate's period, aligned to the epoch (a minute from :00, an hour from the top of the hour): one
``add`` or ``incr`` of one integer per request, which Redis does atomically, so every web process shares the
count. A caller gets at most N requests per window; the N+1-th is refused until the window ends, which is
what ``Retry-After`` says. As with any fixed window, a caller can make up to 2N requests across a boundary.

A busy caller does not cost a round trip per request: a process takes its slots from the shared count a lease at
a time (a hundredth of the rate, at least one) and admits that many requests from memory. Slots are numbered by
the shared counter, so at most N requests pass in a window however many processes serve the caller; a process may
still hold unused slots when another is refused, so a caller spread over P processes can be refused up to
(P - 1) x lease requests before its N. Rates under 200 per period take one slot at a time: exact.
"""

from __future__ import annotations

import threading
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

# A lease is a hundredth of the rate.
LEASE_DIVISOR = 100
_LEASES_MAX = 10_000


class _Lease:
    """This process's slots of one caller's window: ``next_slot`` to ``last_slot``; ``spent`` once the window's
    count has reached the rate (the caller is refused here until the window ends, without asking Redis)."""

    __slots__ = ("last_slot", "next_slot", "rate", "spent", "window")

    def __init__(self, window: int, rate: int, next_slot: int, last_slot: int, spent: bool) -> None:
        self.window = window
        self.rate = rate
        self.next_slot = next_slot
        self.last_slot = last_slot
        self.spent = spent


_leases: dict[str, _Lease] = {}
_leases_lock = threading.Lock()


def throttle_leases_forget() -> None:
    """Drop this process's leases (as a new process starts without any); the shared counts stay."""
    with _leases_lock:
        _leases.clear()


def cache_count(cache: Any, key: str, *, timeout: int, delta: int) -> int:
    """Add ``delta`` to a count in any Django cache, created with ``timeout`` on its first use; the new count.

    Django's incr() (on Redis, EXISTS then INCRBY), and add() for the first count: add() sets a missing key only,
    so of two first counts one wins and the other increments.
    """
    try:
        return int(cache.incr(key, delta))
    except ValueError:
        if cache.add(key, delta, timeout=timeout):
            return delta
        try:
            return int(cache.incr(key, delta))
        except ValueError:  # cleared in between
            cache.set(key, delta, timeout=timeout)
            return delta


class FixedWindowRateThrottle(SimpleRateThrottle):
    """``SimpleRateThrottle``'s rates, scopes and cache keys (``get_cache_key``), counted in fixed windows.

    Subclasses set ``scope`` and ``get_cache_key`` as for DRF; the rate comes from ``DEFAULT_THROTTLE_RATES``.
    """

    # Set by SimpleRateThrottle.__init__ from the rate (parse_rate); the stubs leave them undeclared.
    num_requests: int | None
    duration: int | None
    window_end: float = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = float((window + 1) * self.duration)
        key = f"{ident}:{window}"
        with _leases_lock:
            lease = _leases.get(ident)
            if lease is not None and lease.window == window and lease.rate == self.num_requests:
                if lease.next_slot <= lease.last_slot:
                    lease.next_slot += 1
                    return True
                if lease.spent:
                    return False
        size = max(1, self.num_requests // LEASE_DIVISOR)
        count = self._count(key, size)
        first, last = count - size + 1, min(count, self.num_requests)
        with _leases_lock:
            if len(_leases) >= _LEASES_MAX:
                _leases.clear()
            _leases[ident] = _Lease(window, self.num_requests, first + 1, last, spent=count >= self.num_requests)
        return first <= last

    def _count(self, key: str, size: int) -> int:
        """Add ``size`` to the window's shared count; the new count."""
        # The window's number is in the key, so a count never outlives its window. The key is kept a window
        # longer than that: an expiry set only with the first count must not end the count early.
        assert self.duration is not None
        timeout = 2 * self.duration
        count_in_window = getattr(self.cache, "count_in_window", None)
        if count_in_window is not None:
            # The shipped Redis cache counts in one round trip (config/cache.py).
            return int(count_in_window(key, timeout, size))
        return cache_count(self.cache, key, timeout=timeout, delta=size)

    def wait(self) -> float:
        """Seconds until the current window ends (always more than 0, so DRF sends ``Retry-After``)."""
        return max(self.window_end - self.now, 0.001)
