"""The outside world of webhooks: the Standard Webhooks signature and the POST to a lab's endpoint.

Kept apart from the services, as ``registry.domains`` keeps domain checks: the POST goes through the same guard
(server-side request forgery), resolving the endpoint's name once, refusing private, loopback and link-local
addresses unless ``DOMAIN_CHECK_ALLOW_PRIVATE`` allows them, and connecting to the address it checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from core.errors import InvalidInput
from registry.domains import pinned_target, tls_context
from registry.errors import DomainCheckFailed

SECRET_PREFIX: Final = "whsec_"  # noqa: S105  (a prefix, not a secret)
# Standard Webhooks: a secret of 24 to 64 random bytes; 32, like HMAC-SHA256's own output.
SECRET_BYTES: Final = 32
USER_AGENT: Final = "optout-registry-webhooks/1"


def webhook_secret_generate() -> str:
    """A new endpoint secret, ``whsec_`` + base64 of random bytes, as Standard Webhooks gives them."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def webhook_message_id() -> str:
    return f"msg_{secrets.token_hex(16)}"


def webhook_sign(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` + base64 of HMAC-SHA256 of ``{id}.{timestamp}.{body}``, keyed
    with the secret's bytes (the base64 after ``whsec_``).
    """
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def webhook_headers(*, secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of one try: a new timestamp each time, the same message id for every try and replay."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_sign(secret=secret, message_id=message_id, timestamp=timestamp, body=body),
    }


def webhook_url_check(url: str) -> str:
    """The endpoint URL, stripped, if it is one the registry may POST to; ``InvalidInput`` naming ``url`` if not.

    Checked when the endpoint is registered and again before every try, since what a name resolves to changes.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        # A port that is not a number from 1 to 65535 raises here, as it would when the POST is made.
        bad_port = parts.port == 0
    except ValueError:
        parts, bad_port = None, True
    if parts is None or bad_port or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            _("Give an http or https URL, e.g. https://lab.example/hooks/optout."), code="invalid_url", field="url"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            _("The URL may not hold a user name or password; authenticate deliveries by their signature."),
            code="invalid_url",
            field="url",
        )
    try:
        pinned_target(url)
    except DomainCheckFailed as exc:
        raise InvalidInput(_endpoint_refused_message(exc.code), code=exc.code, field="url") from None
    return url


def _endpoint_refused_message(code: str) -> str:
    if code == "private_address":
        return str(
            _(
                "The URL's host resolves to a private, loopback or link-local address; deliveries go only to "
                "public addresses."
            )
        )
    return str(_("The URL's host name does not resolve."))


@dataclass(frozen=True)
class PostOutcome:
    """What one try got: the response's status and the start of its body, or an error code (empty when the
    endpoint answered).
    """

    status: int | None
    body: str
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> PostOutcome:
    """POST ``body`` to ``url`` through the fetch guard; never raises for what the endpoint or the network does.

    No redirects (a redirect could point anywhere, a private address too), no proxies from the environment (a
    proxy would resolve the name again), ``WEBHOOK_TIMEOUT`` per connect, write and read, and only the first
    ``WEBHOOK_RESPONSE_LOG_BYTES`` of the answer are read.
    """
    started = time.monotonic()

    def outcome(status: int | None, text: str = "", error: str = "") -> PostOutcome:
        return PostOutcome(status, text, error, int((time.monotonic() - started) * 1000))

    try:
        target = pinned_target(url)
    except DomainCheckFailed as exc:
        return outcome(None, error=exc.code)
    timeout = settings.WEBHOOK_TIMEOUT
    limit = settings.WEBHOOK_RESPONSE_LOG_BYTES
    try:
        with (
            httpx.Client(verify=tls_context(), trust_env=False, timeout=timeout) as client,
            client.stream(
                "POST",
                target.url,
                content=body,
                headers={**headers, **target.headers},
                extensions=target.extensions,
                follow_redirects=False,
            ) as response,
        ):
            received = b""
            # A body dripped slowly is cut at three timeouts: its status is all a try needs.
            deadline = started + 3 * timeout
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= limit or time.monotonic() > deadline:
                    break
            return outcome(response.status_code, received[:limit].decode("utf-8", "replace"))
    except httpx.TimeoutException:
        return outcome(None, error="timeout")
    except httpx.HTTPError as exc:
        return outcome(None, error=_error_code(exc))


def _error_code(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection_failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol_error"
    return "request_failed"
