"""Verified domains: the file method against a real local HTTP server, DNS with an injected resolver."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.actors import Actor
from registry.models import AuditEvent, ClaimStatus, DomainStatus, OwnershipClaim, VerifiedDomain, Work, WorkStatus
from registry.services import domain_add, domain_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path``; yields its origin and folder."""
    root = tmp_path / "site"
    (root / ".well-known").mkdir(parents=True)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allow_local(settings):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = True
    settings.DOMAIN_CHECK_TIMEOUT = 2.0


def _register_url_work(client, url: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/works",
        {"title": url, "kind": "text", "identifiers": [{"scheme": "url", "value": url}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def test_file_method_verifies_the_domain_and_the_claims_on_its_urls(
    holder_api, holder, web_root, allow_local, django_capture_on_commit_callbacks
):
    origin, root = web_root
    on_site = _register_url_work(holder_api, f"{origin}/news/1")
    elsewhere = _register_url_work(holder_api, "https://elsewhere.example/news/1")
    created = holder_api.post("/api/v1/domains", {"origin": origin, "method": "file"}, format="json")
    assert created.status_code == 201, created.content
    domain = created.json()
    assert domain["instructions"]["url"] == f"{origin}/.well-known/optout-registry.txt"

    not_yet = holder_api.post(f"/api/v1/domains/{domain['id']}/check")
    assert not_yet.status_code == 200
    assert not_yet.json()["status"] == DomainStatus.PENDING
    assert not_yet.json()["last_error"].startswith("file_not_found")

    (root / ".well-known" / "optout-registry.txt").write_text(domain["instructions"]["content"] + "\n")
    with django_capture_on_commit_callbacks(execute=True):
        checked = holder_api.post(f"/api/v1/domains/{domain['id']}/check")

    assert checked.json()["status"] == DomainStatus.VERIFIED
    assert OwnershipClaim.objects.get(work_id=on_site["id"]).status == ClaimStatus.VERIFIED
    assert Work.objects.get(pk=on_site["id"]).status == WorkStatus.VERIFIED
    assert OwnershipClaim.objects.get(work_id=elsewhere["id"]).status == ClaimStatus.PENDING
    assert AuditEvent.objects.filter(code="registry.domain.verified").count() == 1
    assert OwnershipClaim.objects.get(work_id=on_site["id"]).verified_by_domain_id == domain["id"]


def test_a_wrong_token_in_the_file_does_not_verify(holder_api, web_root, allow_local):
    origin, root = web_root
    domain = holder_api.post("/api/v1/domains", {"origin": origin, "method": "file"}, format="json").json()
    (root / ".well-known" / "optout-registry.txt").write_text("someone-elses-token")

    checked = holder_api.post(f"/api/v1/domains/{domain['id']}/check").json()

    assert checked["status"] == DomainStatus.PENDING
    assert checked["last_error"].startswith("token_mismatch")


def test_private_addresses_are_not_fetched_in_production(holder, web_root, settings):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False
    origin, root = web_root
    domain = domain_add(actor=Actor(party=holder), holder=holder, origin=origin, method="file")
    (root / ".well-known" / "optout-registry.txt").write_text(domain.token)

    checked = domain_check(actor=Actor(party=holder), domain=domain)

    assert checked.status == DomainStatus.PENDING
    assert checked.last_error.startswith("private_address")


def test_dns_method_with_an_injected_resolver(holder, holder_api, django_capture_on_commit_callbacks):
    work = _register_url_work(holder_api, "https://www.news.example.kr/2026/11/article")
    domain = domain_add(actor=Actor(party=holder), holder=holder, origin="https://news.example.kr", method="dns")
    asked: list[str] = []

    def resolver(name: str) -> list[str]:
        asked.append(name)
        return ["v=spf1 -all", f"optout-registry-verification={domain.token}"]

    with django_capture_on_commit_callbacks(execute=True):
        checked = domain_check(actor=Actor(party=holder), domain=domain, resolver=resolver)

    assert asked == ["_optout-registry.news.example.kr"]
    assert checked.status == DomainStatus.VERIFIED
    # www.news.example.kr lies under news.example.kr.
    assert OwnershipClaim.objects.get(work_id=work["id"]).status == ClaimStatus.VERIFIED


def test_dns_method_without_the_record_stays_pending(holder):
    domain = domain_add(actor=Actor(party=holder), holder=holder, origin="https://news.example.kr", method="dns")

    checked = domain_check(actor=Actor(party=holder), domain=domain, resolver=lambda name: [])

    assert checked.status == DomainStatus.PENDING
    assert "record_not_found" in checked.last_error


def test_dns_check_through_the_api_uses_the_configured_resolver(holder_api, monkeypatch):
    domain = holder_api.post(
        "/api/v1/domains", {"origin": "https://blog.example.kr", "method": "dns"}, format="json"
    ).json()
    assert domain["instructions"] == {
        "record_type": "TXT",
        "name": "_optout-registry.blog.example.kr",
        "value": f"optout-registry-verification={domain['token']}",
    }
    monkeypatch.setattr("registry.domains.dns_txt_lookup", lambda name: [domain["instructions"]["value"]])

    checked = holder_api.post(f"/api/v1/domains/{domain['id']}/check")

    assert checked.json()["status"] == DomainStatus.VERIFIED


def test_an_origin_verified_by_one_holder_cannot_be_verified_by_another(holder, other_holder):
    origin = "https://shared.example.kr"
    mine = domain_add(actor=Actor(party=holder), holder=holder, origin=origin, method="dns")
    theirs = domain_add(actor=Actor(party=other_holder), holder=other_holder, origin=origin, method="dns")
    domain_check(
        actor=Actor(party=holder), domain=mine, resolver=lambda n: [f"optout-registry-verification={mine.token}"]
    )

    from core.errors import InvalidState

    with pytest.raises(InvalidState) as refused:
        domain_check(
            actor=Actor(party=other_holder),
            domain=theirs,
            resolver=lambda n: [f"optout-registry-verification={theirs.token}"],
        )
    assert refused.value.code == "domain_taken"
    assert VerifiedDomain.objects.get(pk=theirs.pk).status == DomainStatus.PENDING


@pytest.mark.parametrize("origin", ["https://example.kr/some/path", "ftp://example.kr", "not a url"])
def test_only_origins_are_accepted(holder_api, origin):
    response = holder_api.post("/api/v1/domains", {"origin": origin, "method": "dns"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "origin"
    assert VerifiedDomain.objects.count() == 0


def test_the_beat_task_rechecks_pending_domains(holder, monkeypatch):
    from registry.tasks import domains_recheck_pending

    domain = domain_add(actor=Actor(party=holder), holder=holder, origin="https://late.example.kr", method="dns")
    monkeypatch.setattr(
        "registry.domains.dns_txt_lookup", lambda name: [f"optout-registry-verification={domain.token}"]
    )

    assert domains_recheck_pending.delay().get() == 1

    assert VerifiedDomain.objects.get(pk=domain.pk).status == DomainStatus.VERIFIED
