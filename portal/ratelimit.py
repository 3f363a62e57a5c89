"""Sign-in attempts limited per account and per client address, counted in the shared cache (Redis).

A counter starts at the first failure and expires ``LOGIN_LOCKOUT_MINUTES`` later; while it is at the
limit, sign-in is refused even with the right password, so guessing gains nothing.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle


def client_address(request: HttpRequest) -> str:
    # The API's throttles and this limit read the client's address the same way (NUM_PROXIES). The stubs ask
    # for DRF's Request, but get_ident reads only request.META, which a Django HttpRequest has.
    return str(BaseThrottle().get_ident(request))  # type: ignore[arg-type]


def _keys(username: str, address: str) -> tuple[str, str]:
    account = hashlib.sha256(username.strip().lower().encode()).hexdigest()
    return f"portal:login:account:{account}", f"portal:login:address:{address}"


def _window() -> int:
    return int(settings.LOGIN_LOCKOUT_MINUTES) * 60


def login_wait_minutes(*, username: str, address: str) -> int | None:
    """Minutes until sign-in is allowed again for this account or address, or None if it is allowed now."""
    account_key, address_key = _keys(username, address)
    counts = cache.get_many([account_key, address_key, account_key + ":t", address_key + ":t"])
    blocked_since: list[float] = []
    if counts.get(account_key, 0) >= settings.LOGIN_MAX_FAILURES:
        blocked_since.append(counts.get(account_key + ":t", time.time()))
    if counts.get(address_key, 0) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS:
        blocked_since.append(counts.get(address_key + ":t", time.time()))
    if not blocked_since:
        return None
    remaining = min(blocked_since) + _window() - time.time()
    return max(1, math.ceil(remaining / 60))


def login_failed(*, username: str, address: str) -> None:
    for key in _keys(username, address):
        # add() only sets a missing key, so the window runs from the first failure; incr() is atomic in Redis.
        if cache.add(key, 0, timeout=_window()):
            cache.set(key + ":t", time.time(), timeout=_window())
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=_window())
            cache.set(key + ":t", time.time(), timeout=_window())


def login_succeeded(*, username: str, address: str) -> None:
    account_key, _address_key = _keys(username, address)
    cache.delete_many([account_key, account_key + ":t"])


def _count(key: str, window: int) -> int:
    """This attempt's number within the window that started at the key's first attempt."""
    cache.add(key, 0, timeout=window)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        return 1


def password_reset_allowed(*, email: str, address: str) -> bool:
    """Whether a password-reset mail may go out for this request.

    At most ``PASSWORD_RESET_MAX_PER_ACCOUNT`` per e-mail address and ``PASSWORD_RESET_MAX_PER_CLIENT`` per
    client address within ``PASSWORD_RESET_WINDOW_MINUTES``; every request counts, known address or not, so
    the answer never tells whether an account exists.
    """
    window = int(settings.PASSWORD_RESET_WINDOW_MINUTES) * 60
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    per_account = _count(f"portal:reset:account:{account}", window)
    per_client = _count(f"portal:reset:address:{address}", window)
    return (
        per_account <= settings.PASSWORD_RESET_MAX_PER_ACCOUNT and per_client <= settings.PASSWORD_RESET_MAX_PER_CLIENT
    )
