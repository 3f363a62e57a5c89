"""Portal fixtures: people signed in to the portal (Django's test client), acting for named parties."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from core.api.throttles import throttle_leases_forget
from tests.helpers import signed_in


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    # Sign-in failure counters and lookup throttles live in the cache; each test starts clean.
    cache.clear()
    throttle_leases_forget()


@pytest.fixture
def owner_client(owner: Any, holder: Any) -> Client:
    return signed_in(owner)


@pytest.fixture
def other_client(co_owner: Any, other_holder: Any) -> Client:
    return signed_in(co_owner)


@pytest.fixture
def lab_client(lab: Any) -> Client:
    return signed_in(lab.memberships.get().user)


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    # Assertions read English text; Korean is tested on its own (test_i18n).
    settings.LANGUAGE_CODE = "en"
