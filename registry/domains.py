"""Proof that a holder controls a web origin: a DNS TXT record or a token file.

The checks talk to the outside world, so they are kept apart from the services and
take their resolver from the caller; tests inject one instead of patching DNS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import httpx
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from registry.errors import DomainCheckFailed, InvalidInput
from registry.identifiers import Scheme, identifier_normalize
from registry.models import DomainMethod

TxtResolver = Callable[[str], list[str]]

DNS_LABEL = "_optout-registry"
RECORD_PREFIX = "optout-registry-verification="
WELL_KNOWN_PATH = "/.well-known/optout-registry.txt"
MAX_FILE_BYTES = 4096


def origin_normalize(origin: str) -> tuple[str, str]:
    """``(origin, host)`` for an http(s) origin; paths, queries and fragments are refused."""
    key = identifier_normalize(scheme=Scheme.URL, value=origin.strip())
    parts = urlsplit(key.value)
    if parts.path not in ("", "/") or parts.query:
        raise InvalidInput(
            _("Give only the origin (scheme and host), e.g. https://news.example.kr"),
            code="invalid_origin",
            field="origin",
        )
    host = parts.hostname or ""
    origin_value = f"{parts.scheme}://{parts.netloc}"
    return origin_value, host


def dns_record_name(host: str) -> str:
    return f"{DNS_LABEL}.{host}"


def dns_record_value(token: str) -> str:
    return f"{RECORD_PREFIX}{token}"


def file_url(origin: str) -> str:
    return origin.rstrip("/") + WELL_KNOWN_PATH


def dns_txt_lookup(name: str) -> list[str]:
    """TXT strings published at ``name``, via the system's resolver."""
    resolver = dns.resolver.Resolver()
    resolver.lifetime = settings.DOMAIN_CHECK_TIMEOUT
    try:
        answer = resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise DomainCheckFailed(
            _("The DNS lookup failed: %(error)s") % {"error": exc.__class__.__name__}, code="dns_error"
        ) from None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def _refuse_private_address(host: str) -> None:
    """Refuse origins resolving to loopback or private ranges (server-side request forgery)."""
    if settings.DOMAIN_CHECK_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise DomainCheckFailed(_("The host name does not resolve."), code="host_unresolvable") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            raise DomainCheckFailed(
                _("The origin resolves to a private address and cannot be checked."), code="private_address"
            )


def check_dns(*, host: str, token: str, resolver: TxtResolver | None = None) -> None:
    records = (resolver or dns_txt_lookup)(dns_record_name(host))
    expected = dns_record_value(token)
    if expected not in (record.strip() for record in records):
        raise DomainCheckFailed(
            _("No TXT record %(value)s was found at %(name)s.") % {"value": expected, "name": dns_record_name(host)},
            code="record_not_found",
        )


def check_file(*, origin: str, host: str, token: str) -> None:
    _refuse_private_address(host)
    url = file_url(origin)
    try:
        # No redirects: the proof must be served by the origin itself.
        with httpx.stream("GET", url, timeout=settings.DOMAIN_CHECK_TIMEOUT, follow_redirects=False) as response:
            if response.status_code != 200:
                raise DomainCheckFailed(
                    _("%(url)s answered HTTP %(status)s, not 200.") % {"url": url, "status": response.status_code},
                    code="file_not_found",
                )
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_FILE_BYTES:
                    break
    except httpx.HTTPError as exc:
        raise DomainCheckFailed(
            _("%(url)s could not be fetched: %(error)s") % {"url": url, "error": exc.__class__.__name__},
            code="fetch_failed",
        ) from None
    if token not in body[:MAX_FILE_BYTES].decode("utf-8", "replace").split():
        raise DomainCheckFailed(
            _("%(url)s does not contain the verification token.") % {"url": url}, code="token_mismatch"
        )


def domain_proof_check(*, method: str, origin: str, host: str, token: str, resolver: TxtResolver | None = None) -> None:
    """Raise ``DomainCheckFailed`` unless the origin publishes the token by ``method``."""
    if method == DomainMethod.DNS:
        check_dns(host=host, token=token, resolver=resolver)
    else:
        check_file(origin=origin, host=host, token=token)
