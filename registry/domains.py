"""Proof that a holder controls a web origin: a DNS TXT record or a token file.

The checks talk to the outside world, so they are kept apart from the services and
take their resolver from the caller; tests inject one instead of patching DNS.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import dns.exception
import dns.resolver
import httpx
import idna
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from core.errors import InvalidInput
from registry.errors import DomainCheckFailed
from registry.identifiers import Scheme, identifier_normalize, url_rfc_normalize
from registry.models import DomainMethod

TxtResolver = Callable[[str], list[str]]

DNS_LABEL = "_optout-registry"
RECORD_PREFIX = "optout-registry-verification="
WELL_KNOWN_PATH = "/.well-known/optout-registry.txt"
MAX_FILE_BYTES = 4096


def origin_normalize(origin: str) -> tuple[str, str]:
    """``(origin, host)`` for an http(s) origin; paths, queries and fragments are refused."""
    # The origin as the site spells it (its scheme, its "www."): the proof is fetched there. URLs under it are
    # matched by their canonical form (registry.identifiers.domain_covers_host).
    key = identifier_normalize(scheme=Scheme.URL, value=origin)  # validates (empty, too long, malformed)
    parts = urlsplit(url_rfc_normalize(key.spelling))
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


# NAT64 prefixes (RFC 6052's well-known one and RFC 8215's local-use one): the last 32 bits are an IPv4 address.
_NAT64_PREFIXES = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo server and client, NAT64)."""
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if any(address in prefix for prefix in _NAT64_PREFIXES):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def address_is_public(address: IPAddress) -> bool:
    """Whether the address is globally reachable: not private, loopback, link-local, shared (100.64.0.0/10),
    reserved or multicast, and, for IPv6, carrying no IPv4 address that is any of those (a 6to4, Teredo
    or NAT64 address reaches its embedded IPv4 address).
    """
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(address_is_public(embedded) for embedded in _embedded_ipv4(address))
    return True


def address_for_fetch(host: str, port: int) -> str:
    """The one address the fetch connects to, resolved once here and checked (server-side request forgery).

    Every address the name resolves to must be public: a name with one private address among public ones
    could be answered with either. The fetch then connects to this address itself, so a second resolution
    (DNS rebinding: a public answer for the check, a private one for the fetch) cannot redirect it.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise DomainCheckFailed(_("The host name does not resolve."), code="host_unresolvable") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise DomainCheckFailed(_("The host name does not resolve."), code="host_unresolvable")
    if not settings.DOMAIN_CHECK_ALLOW_PRIVATE and not all(address_is_public(address) for address in addresses):
        raise DomainCheckFailed(
            _("The origin resolves to a private address and cannot be checked."), code="private_address"
        )
    return str(addresses[0])


def tls_context() -> ssl.SSLContext:
    # The certificate is verified for the origin's host name (sent as SNI), whatever address is connected
    # to. SSL_CERT_FILE names another bundle of roots, as it does for httpx; certifi's otherwise.
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())


def check_dns(*, host: str, token: str, resolver: TxtResolver | None = None) -> None:
    records = (resolver or dns_txt_lookup)(dns_record_name(host))
    expected = dns_record_value(token)
    if expected not in (record.strip() for record in records):
        raise DomainCheckFailed(
            _("No TXT record %(value)s was found at %(name)s.") % {"value": expected, "name": dns_record_name(host)},
            code="record_not_found",
        )


@dataclass(frozen=True)
class PinnedTarget:
    """Where a fetch of an http(s) URL connects: the URL with the checked address in place of its host, the
    ``Host`` header, and over TLS the name sent as SNI and verified in the certificate (httpx's extensions).
    """

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


def pinned_target(url: str) -> PinnedTarget:
    """Resolve ``url``'s host once, refuse it unless every address is public (``address_for_fetch``), and
    aim the request at that address, so that a second resolution cannot send it elsewhere.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii") if not _is_ip_literal(host) else host
    except idna.IDNAError:
        raise DomainCheckFailed(_("The host name does not resolve."), code="host_unresolvable") from None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = address_for_fetch(ascii_host, port)
    # Connect to the checked address; the Host header and, over TLS, the SNI name and the certificate's
    # verification are for the URL's own name.
    connect_host = f"[{address}]" if ":" in address else address
    pinned_url = parts._replace(netloc=f"{connect_host}:{port}").geturl()
    host_header = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if parts.port is not None:
        host_header = f"{host_header}:{parts.port}"
    extensions: dict[str, Any] = {"sni_hostname": ascii_host} if parts.scheme == "https" else {}
    return PinnedTarget(url=pinned_url, headers={"Host": host_header}, extensions=extensions)


def check_file(*, origin: str, host: str, token: str) -> None:
    url = file_url(origin)
    target = pinned_target(url)
    try:
        # No redirects: the proof must be served by the origin itself. No proxies from the environment:
        # a proxy would resolve the name again.
        with (
            httpx.Client(verify=tls_context(), trust_env=False, timeout=settings.DOMAIN_CHECK_TIMEOUT) as client,
            client.stream(
                "GET", target.url, headers=target.headers, extensions=target.extensions, follow_redirects=False
            ) as response,
        ):
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


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def domain_proof_check(*, method: str, origin: str, host: str, token: str, resolver: TxtResolver | None = None) -> None:
    """Raise ``DomainCheckFailed`` unless the origin publishes the token by ``method``."""
    if method == DomainMethod.DNS:
        check_dns(host=host, token=token, resolver=resolver)
    else:
        check_file(origin=origin, host=host, token=token)
