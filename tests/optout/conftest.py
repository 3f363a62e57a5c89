"""Refusal and lookup tests start with empty rate limits; ``book`` and the actors are in ``tests/conftest.py``."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from core.api.throttles import throttle_leases_forget


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    cache.clear()
    throttle_leases_forget()
