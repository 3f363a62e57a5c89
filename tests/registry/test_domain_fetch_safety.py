"""The domain-proof fetcher reaches only public addresses, and only the one it checked (no DNS rebinding).

Name resolution is replaced by a table (``socket.getaddrinfo``), so the tests decide what a name resolves
to and how often it was asked; the servers are real, on 127.0.0.1, over HTTP and HTTPS.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.actors import Actor
from registry.domains import address_is_public
from registry.models import DomainStatus
from registry.services import domain_add, domain_check

pytestmark = pytest.mark.django_db

NAME = "proof.example"


class Resolver:
    """Stands in for ``socket.getaddrinfo``: each name answers the next of its addresses (the last repeats)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self._real(host, port, *args, **kwargs)
        self.asked.append(name)
        queue = self.answers[name]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        results = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr: tuple[Any, ...] = (address, int(port or 0), 0, 0) if ":" in address else (address, int(port or 0))
            results.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return results


class Recorder(http.server.BaseHTTPRequestHandler):
    body = b""
    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "host": self.headers.get("Host", "")})
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(handler: type[Recorder], tls: ssl.SSLContext | None = None) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _handler(token: str) -> type[Recorder]:
    return type("Handler", (Recorder,), {"body": token.encode(), "seen": []})


def _domain(holder: Any, origin: str) -> Any:
    return domain_add(actor=Actor(party=holder), holder=holder, origin=origin, method="file")


# --- Which addresses are refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "100.100.100.200",  # shared address space (100.64.0.0/10): cloud metadata on some providers
        "100.64.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "169.254.169.254",
        "127.0.0.1",
        "10.1.2.3",
        "fd00::1",
        "fe80::1",
        "::1",
        "0.0.0.0",  # noqa: S104  (an address to refuse, not one to bind)
        "224.0.0.1",  # multicast
        "192.0.2.1",  # documentation
    ],
)
def test_a_name_resolving_to_a_non_global_address_is_not_fetched(holder, settings, monkeypatch, address):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False
    resolver = Resolver(monkeypatch, {NAME: [[address]]})
    domain = _domain(holder, f"http://{NAME}")

    checked = domain_check(actor=Actor(party=holder), domain=domain)

    assert checked.status == DomainStatus.PENDING
    assert checked.last_error.startswith("private_address")
    assert resolver.asked == [NAME]


def test_one_private_address_among_public_ones_is_enough_to_refuse(holder, settings, monkeypatch):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False
    Resolver(monkeypatch, {NAME: [["93.184.216.34", "100.100.100.200"]]})
    domain = _domain(holder, f"https://{NAME}")

    checked = domain_check(actor=Actor(party=holder), domain=domain)

    assert checked.last_error.startswith("private_address")


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "2002:5db8:d822::1", "64:ff9b::5db8:d822"])
def test_public_addresses_pass_the_filter(address):
    assert address_is_public(ipaddress.ip_address(address))


# --- The fetch connects to the address that was checked --------------------------------------------------------


def test_a_second_resolution_cannot_send_the_fetch_elsewhere(holder, settings, monkeypatch):
    """DNS rebinding: public for the check, then 127.0.0.1 (a server holding the token) for the fetch."""
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False
    settings.DOMAIN_CHECK_TIMEOUT = 2.0
    domain = _domain(holder, f"http://{NAME}")
    handler = _handler(domain.token)
    server_gen = _serve(handler)
    server = next(server_gen)
    port = server.server_address[1]
    domain.origin = f"http://{NAME}:{port}"
    domain.save(update_fields=["origin"])
    resolver = Resolver(monkeypatch, {NAME: [["93.184.216.34"], ["127.0.0.1"]]})
    connected: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        connected.append((str(address[0]), int(address[1])))
        if address[0] == "93.184.216.34":
            raise ConnectionRefusedError("no network in tests")
        return real_create_connection(address, *args, **kwargs)

    real_create_connection = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", create_connection)
    try:
        checked = domain_check(actor=Actor(party=holder), domain=domain)
    finally:
        next(server_gen, None)

    assert checked.status == DomainStatus.PENDING
    assert checked.last_error.startswith("fetch_failed")
    assert connected == [("93.184.216.34", port)]
    assert resolver.asked == [NAME]
    assert handler.seen == []


def test_the_fetch_sends_the_origin_as_host_to_the_pinned_address(holder, settings, monkeypatch):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = True  # the server is on 127.0.0.1
    domain = _domain(holder, f"http://{NAME}")
    handler = _handler(domain.token)
    server_gen = _serve(handler)
    port = next(server_gen).server_address[1]
    domain.origin = f"http://{NAME}:{port}"
    domain.save(update_fields=["origin"])
    resolver = Resolver(monkeypatch, {NAME: [["127.0.0.1"], ["10.255.255.1"]]})
    try:
        checked = domain_check(actor=Actor(party=holder), domain=domain)
    finally:
        next(server_gen, None)

    assert checked.status == DomainStatus.VERIFIED, checked.last_error
    assert handler.seen == [{"path": "/.well-known/optout-registry.txt", "host": f"{NAME}:{port}"}]
    assert resolver.asked == [NAME]


# --- HTTPS: SNI and certificate verification for the origin's name, connecting to the pinned address -----------


def _certificate_authority(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, Path, list[str]]:
    """A CA (written to a bundle file) and a server context for ``name`` signed by it, recording the SNI."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "server.pem"
    chain.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain)
    sni: list[str] = []
    server_context.sni_callback = lambda _sock, server_name, _ctx: sni.append(server_name or "")
    return server_context, bundle, sni


@pytest.mark.parametrize(("certificate_name", "verified"), [(NAME, True), ("someone-else.example", False)])
def test_https_fetch_verifies_the_certificate_for_the_origins_name(
    holder, settings, monkeypatch, tmp_path, certificate_name, verified
):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = True
    server_context, bundle, sni = _certificate_authority(tmp_path, certificate_name)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    domain = _domain(holder, f"https://{NAME}")
    handler = _handler(domain.token)
    server_gen = _serve(handler, tls=server_context)
    port = next(server_gen).server_address[1]
    domain.origin = f"https://{NAME}:{port}"
    domain.save(update_fields=["origin"])
    Resolver(monkeypatch, {NAME: [["127.0.0.1"]]})
    try:
        checked = domain_check(actor=Actor(party=holder), domain=domain)
    finally:
        next(server_gen, None)

    assert sni == [NAME]
    if verified:
        assert checked.status == DomainStatus.VERIFIED, checked.last_error
        assert handler.seen == [{"path": "/.well-known/optout-registry.txt", "host": f"{NAME}:{port}"}]
    else:
        assert checked.status == DomainStatus.PENDING
        assert checked.last_error.startswith("fetch_failed")
        assert handler.seen == []
