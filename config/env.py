"""Reading configuration from the environment, in one place.

Every helper raises ``ImproperlyConfigured`` naming the variable when a value is
malformed, so a typo fails at start-up instead of at the first request.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        return default if value is None else value.strip()

    def required(self, name: str, *, dev_default: str | None, debug: bool) -> str:
        """A value that production must set; in DEBUG a development value may be used."""
        value = self.string(name)
        if value:
            return value
        if debug and dev_default is not None:
            return dev_default
        raise ImproperlyConfigured(f"{name} must be set (it has no default outside DEBUG).")

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self.environ.get(name)
        # Empty counts as unset, as for numbers: a deployment that passes a variable through without a value
        # (docker compose's "NAME:") must not turn SECURE_COOKIES or EMAIL_USE_TLS off.
        if raw is None or not raw.strip():
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off).")

    def integer(self, name: str, default: int, *, minimum: int | None = None) -> int:
        raw = self.environ.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
        if minimum is not None and value < minimum:
            raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        raw = self.environ.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = float(raw.strip())
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
        if value < minimum:
            raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
        return value

    def csv_list(self, name: str, default: list[str]) -> list[str]:
        raw = self.environ.get(name)
        if raw is None:
            return default
        return [item.strip() for item in raw.split(",") if item.strip()]

    def time_zone(self, name: str, default: str) -> str:
        value = self.string(name, default) or default
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(f"{name}={value!r} is not a known IANA time zone.") from None
        return value

    def database(self, name: str, default: str) -> dict[str, Any]:
        value = self.string(name) or default
        try:
            config = dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True)
        except Exception as exc:  # dj-database-url raises several types for bad URLs
            raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from None
        engine = config.get("ENGINE", "")
        if engine not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
            raise ImproperlyConfigured(f"{name} must point at PostgreSQL or SQLite, not {engine or value!r}.")
        if engine.endswith("sqlite3"):
            # Connection reuse brings nothing on SQLite and keeps files locked between tests.
            config["CONN_MAX_AGE"] = 0
            config["CONN_HEALTH_CHECKS"] = False
        return dict(config)

    def redis_url(self, name: str) -> str | None:
        value = self.string(name)
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(f"{name}={value!r} must start with redis://, rediss:// or unix://.")
        return value

    def path(self, name: str, default: Path) -> Path:
        value = self.string(name)
        return Path(value).expanduser().resolve() if value else default
