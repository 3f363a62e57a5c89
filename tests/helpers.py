"""Small helpers shared by test modules across apps: clients, instants. Fixtures live in the conftest files."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.test import Client
from rest_framework.test import APIClient

SEOUL = ZoneInfo("Asia/Seoul")


def key_client(raw_key: str) -> APIClient:
    """An API client presenting ``raw_key`` (e.g. ``ApiKeyFactory(...).raw``)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def signed_in(user: Any) -> Client:
    """Django's test client with a session of ``user`` in the portal."""
    client = Client()
    client.force_login(user)
    return client


def streamed(response: Any) -> bytes:
    """The body of a streaming response (a download), read to the end; fails if the response is not streamed."""
    return b"".join(response.streaming_content)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def seoul(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An instant on the wall clock in Seoul, where settlement periods and months are counted."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SEOUL)
