"""A rate limit that costs the same on every request: a counter per caller and fixed window, in the cache.

DRF's ``SimpleRateThrottle`` keeps, per caller, the list of its request times over the last period, and reads,
trims and writes the whole list back on every request: at 1,200 a minute that is up to 1,200 timestamps
pickled both ways per request, and more the higher the rate. Here a caller's requests are counted in windows
of the rate's period, aligned to the epoch (a minute from :00, an hour from the top of the hour): one
``add`` or ``incr`` of one integer per request, which Redis does atomically, so every web process shares the
count. A caller gets at most N requests per window; the N+1-th is refused until the window ends, which is
what ``Retry-After`` says. As with any fixed window, a caller can make up to 2N requests across a boundary.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


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
        # The window's number is in the key, so a count never outlives its window. The key is kept a window
        # longer than that: Django's Redis incr() is EXISTS then INCRBY, and an INCRBY on a key that expired in
        # between would create one without expiry. Most requests find the key: incr() first, add() only for
        # a window's first request (add() sets a missing key only, so of two first requests one counts 1).
        timeout = 2 * self.duration
        count_in_window = getattr(self.cache, "count_in_window", None)
        if count_in_window is not None:
            # The shipped Redis cache counts in one round trip (config/cache.py).
            return int(count_in_window(key, timeout)) <= self.num_requests
        try:
            count = int(self.cache.incr(key))
        except ValueError:
            if self.cache.add(key, 1, timeout=timeout):
                count = 1
            else:
                try:
                    count = int(self.cache.incr(key))
                except ValueError:  # cleared in between
                    self.cache.set(key, 1, timeout=timeout)
                    count = 1
        return count <= self.num_requests

    def wait(self) -> float:
        """Seconds until the current window ends (always more than 0, so DRF sends ``Retry-After``)."""
        return max(self.window_end - self.now, 0.001)
