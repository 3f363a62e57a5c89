"""What verified domains' own signals said, observed and kept: a real site served on 127.0.0.1 changes its
robots.txt between two checks, and the registry keeps both, with the bytes' SHA-256, newest first."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.actors import Actor
from optout.events import site_disagreement_found
from optout.models import SignalObservation
from optout.observations import domain_disagreements, domain_observe, domains_due_for_observation
from registry.models import AuditEvent
from registry.services import domain_add, domain_check
from tests.factories import WorkFactory
from tests.optout.helpers import refuse

pytestmark = pytest.mark.django_db


class Site:
    """The files a local test site serves, changeable between requests."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.origin = ""

    def serve(self, path: str, body: str | bytes, **headers: str) -> None:
        self.files[path] = (body.encode() if isinstance(body, str) else body, headers)


@pytest.fixture
def site(settings) -> Iterator[Site]:
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = True
    state = Site()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, send_body: bool) -> None:
            found = state.files.get(self.path)
            if found is None:
                self.send_response(404)
                self.end_headers()
                return
            body, headers = found
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.origin = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def domain(holder, site):
    created = domain_add(actor=Actor(party=holder), holder=holder, origin=site.origin, method="dns")
    return domain_check(
        actor=Actor(party=holder),
        domain=created,
        resolver=lambda name: [f"optout-registry-verification={created.token}"],
    )


@pytest.fixture
def observe(django_capture_on_commit_callbacks):
    """POST …/observe (the task runs on commit), then GET …/observations: the list, newest first."""

    def run(client, domain_id):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/domains/{domain_id}/observe")
        assert response.status_code == 202, response.content
        return observations(client, domain_id)

    return run


def observations(client, domain_id):
    listed = client.get(f"/api/v1/domains/{domain_id}/observations")
    assert listed.status_code == 200
    return listed.json()["results"]


ROBOTS_BEFORE = "User-Agent: *\nAllow: /\n"
ROBOTS_AFTER = "User-Agent: *\nContent-Usage: train-ai=n\nContent-Signal: search=yes, ai-train=no\nAllow: /\n"


def test_a_site_that_changes_its_robots_txt_is_recorded_both_times(site, domain, holder_api, observe):
    site.serve("/robots.txt", ROBOTS_BEFORE)
    first = observe(holder_api, domain.pk)
    site.serve("/robots.txt", ROBOTS_AFTER)
    both = observe(holder_api, domain.pk)

    robots = [o for o in both if o["source"] == "robots.txt"]
    assert len(robots) == 2
    newest, oldest = robots
    assert newest["observed_at"] > oldest["observed_at"]
    assert oldest["sha256"] == hashlib.sha256(ROBOTS_BEFORE.encode()).hexdigest()
    assert newest["sha256"] == hashlib.sha256(ROBOTS_AFTER.encode()).hexdigest()
    assert oldest["said"] == {"train-ai": False, "train-genai": False}
    # Content Signals' ai-train=no refuses any AI training; aipref's train-ai=n (-08) generative training.
    assert newest["said"] == {"train-ai": True, "train-genai": True}
    assert newest["signals"]["read"] == ["aipref:train-ai=n", "content-signal:ai-train=no"]
    assert newest["url"] == f"{site.origin}/robots.txt"
    assert (newest["http_status"], newest["trigger"]) == (200, "on_demand")
    assert {o["source"] for o in first} == {"robots.txt", "tdmrep.json", "ai.txt"}
    missing = next(o for o in first if o["source"] == "tdmrep.json")
    assert (missing["http_status"], missing["said"]) == (404, {"train-ai": False, "train-genai": False})
    assert SignalObservation.objects.filter(domain=domain).count() == 6
    # The bytes are kept: the hash can be checked against them.
    stored = SignalObservation.objects.filter(domain=domain, source="robots.txt").order_by("observed_at").last()
    assert stored is not None
    assert bytes(stored.body) == ROBOTS_AFTER.encode()
    assert AuditEvent.objects.filter(code="optout.domain.observed").count() == 2


def test_tdmrep_ai_txt_and_the_headers_of_registered_urls_are_read(site, domain, holder, holder_api, staff, observe):
    WorkFactory(holder=holder, identifiers=[("url", f"{site.origin}/news/1")], verified_by=staff)
    site.serve("/.well-known/tdmrep.json", '[{"location": "/news/*", "tdm-reservation": 1}]')
    site.serve("/ai.txt", "User-Agent: *\nDisallow: /\n")
    site.serve(
        "/news/1", "<p>news</p>", tdm_reservation="1", Content_Usage="train-ai=n", X_Robots_Tag="noai, noimageai"
    )

    observed = {o["source"]: o for o in observe(holder_api, domain.pk)}

    assert observed["tdmrep.json"]["signals"]["rules"] == [{"location": "/news/*", "tdm-reservation": 1}]
    assert observed["ai.txt"]["said"] == {"train-ai": True, "train-genai": True}
    headers = observed["headers"]
    assert headers["url"] == f"{site.origin}/news/1"
    assert headers["signals"]["read"] == ["tdm-reservation:1", "aipref:train-ai=n", "x-robots-tag:noai"]
    assert headers["said"] == {"train-ai": True, "train-genai": True}


def test_only_the_holder_and_staff_may_observe_and_read(site, domain, other_holder_api, staff_api):
    assert other_holder_api.post(f"/api/v1/domains/{domain.pk}/observe").status_code == 404
    assert other_holder_api.get(f"/api/v1/domains/{domain.pk}/observations").status_code == 404
    assert APIClient().get(f"/api/v1/domains/{domain.pk}/observations").status_code == 401
    assert staff_api.post(f"/api/v1/domains/{domain.pk}/observe").status_code == 202


def test_a_pending_domain_is_not_observed(holder_api):
    created = holder_api.post("/api/v1/domains", {"origin": "https://blog.example.kr", "method": "dns"}, format="json")

    response = holder_api.post(f"/api/v1/domains/{created.json()['id']}/observe")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "domain_not_verified"


def test_private_addresses_are_not_fetched_in_production(site, domain, settings):
    from optout.observations import domain_observe

    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False
    site.serve("/robots.txt", ROBOTS_AFTER)

    rows = domain_observe(domain=domain, trigger="on_demand")

    assert {row.error for row in rows} == {"private_address"}
    assert all(row.said == {"train-ai": False, "train-genai": False} for row in rows)


def test_the_beat_observes_new_domains_then_stale_ones(site, domain, settings, time_machine):
    from optout.tasks import domain_signals_recheck

    site.serve("/robots.txt", ROBOTS_BEFORE)
    settings.SIGNAL_RECHECK_MINUTES = 60
    time_machine.move_to(timezone.now(), tick=True)

    assert domains_due_for_observation() == [domain.pk]
    assert domain_signals_recheck() == 1
    assert set(SignalObservation.objects.values_list("trigger", flat=True)) == {"verified"}
    assert domains_due_for_observation() == []
    time_machine.shift(61 * 60)
    assert domain_signals_recheck() == 1
    assert SignalObservation.objects.filter(trigger="scheduled").count() == 3


def test_disagreements_between_the_registry_and_the_site(site, domain, holder_api, observe):
    refuse(holder_api, scope="url_prefix", url_prefix=f"{site.origin}/opinion/")
    site.serve("/robots.txt", "User-Agent: *\nContent-Usage: /photos/ train-ai=n\n")
    observe(holder_api, domain.pk)

    found = domain_disagreements(domain=domain)

    assert [(d.path, d.registry_refuses, d.site_refuses) for d in found] == [
        ("/opinion/", True, False),
        ("/photos/", False, True),
    ]
    site.serve(
        "/robots.txt", "User-Agent: *\nContent-Usage: /opinion/ train-ai=n\nContent-Usage: /photos/ train-ai=n\n"
    )
    refuse(holder_api, scope="url_prefix", url_prefix=f"{site.origin}/photos/")
    observe(holder_api, domain.pk)

    assert domain_disagreements(domain=domain) == []


@pytest.fixture
def disagreements_sent() -> Iterator[list[dict[str, Any]]]:
    """What ``site_disagreement_found`` sent, one item per sending."""
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        sent.append({"domain_id": kwargs["domain_id"], "disagreements": kwargs["disagreements"]})

    site_disagreement_found.connect(receive, weak=False)
    try:
        yield sent
    finally:
        site_disagreement_found.disconnect(receive)


def test_a_new_disagreement_is_sent_once_after_the_run_that_finds_it(
    site, domain, holder_api, observe, disagreements_sent
):
    refuse(holder_api, scope="url_prefix", url_prefix=f"{site.origin}/opinion/")
    site.serve("/robots.txt", "User-Agent: *\nContent-Usage: /photos/ train-ai=n\n")

    observe(holder_api, domain.pk)

    assert disagreements_sent == [
        {
            "domain_id": domain.pk,
            "disagreements": [
                {"path": "/opinion/", "registry_refuses": True, "site_refuses": False, "sources": []},
                {"path": "/photos/", "registry_refuses": False, "site_refuses": True, "sources": ["robots.txt"]},
            ],
        }
    ]
    event = AuditEvent.objects.filter(code="optout.domain.observed").latest("pk")
    assert [d["path"] for d in event.data["new_disagreements"]] == ["/opinion/", "/photos/"]

    # Nothing changed: the same disagreements are not sent again.
    observe(holder_api, domain.pk)
    assert len(disagreements_sent) == 1
    assert AuditEvent.objects.filter(code="optout.domain.observed").latest("pk").data["new_disagreements"] == []

    # The site adds a path and drops one: only the added one is new.
    site.serve("/robots.txt", "User-Agent: *\nContent-Usage: /drafts/ train-ai=n\n")
    observe(holder_api, domain.pk)
    assert disagreements_sent[1:] == [
        {
            "domain_id": domain.pk,
            "disagreements": [
                {"path": "/drafts/", "registry_refuses": False, "site_refuses": True, "sources": ["robots.txt"]}
            ],
        }
    ]

    # A refusal filed between two runs that the site does not state is new at the next run.
    refuse(holder_api, scope="url_prefix", url_prefix=f"{site.origin}/video/")
    observe(holder_api, domain.pk)
    assert [[d["path"] for d in sent["disagreements"]] for sent in disagreements_sent[2:]] == [["/video/"]]

    # The site now says what the registry says, and the reverse: nothing new, nothing sent.
    site.serve(
        "/robots.txt",
        "User-Agent: *\nContent-Usage: /opinion/ train-ai=n\nContent-Usage: /video/ train-ai=n\n",
    )
    observe(holder_api, domain.pk)
    assert len(disagreements_sent) == 3


def test_the_disagreement_is_sent_only_when_the_run_commits(
    site, domain, disagreements_sent, django_capture_on_commit_callbacks
):
    site.serve("/robots.txt", "User-Agent: *\nContent-Usage: /photos/ train-ai=n\n")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        domain_observe(domain=domain, trigger="on_demand")
    assert disagreements_sent == []

    for callback in callbacks:
        callback()
    assert [[d["path"] for d in sent["disagreements"]] for sent in disagreements_sent] == [["/photos/"]]


def test_the_dashboard_shows_what_the_site_said_and_where_it_disagrees(
    site, domain, holder_api, owner, django_capture_on_commit_callbacks
):
    from tests.helpers import signed_in

    refuse(holder_api, scope="url_prefix", url_prefix=f"{site.origin}/opinion/")
    site.serve("/robots.txt", ROBOTS_BEFORE)
    browser = signed_in(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"/dashboard/domains/{domain.pk}/observe/")
    assert response.status_code == 302

    english = browser.get(f"/dashboard/domains/{domain.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    korean = browser.get(f"/dashboard/domains/{domain.pk}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()

    assert "What your site says" in english
    assert f"{site.origin}/robots.txt" in english
    assert "Says nothing about AI training" in english
    assert "Not published (HTTP 404)" in english
    assert "You refuse /opinion/ in the registry, but your site&#x27;s files do not say so" in english
    assert f"http://testserver/domains/{domain.pk}/license.xml" in english
    assert "사이트가 밝힌 내용" in korean
    assert "레지스트리에서 /opinion/" in korean

    # The dashboard's first page says which domain disagrees, and links to where.
    home = browser.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'href="/dashboard/domains/{domain.pk}/#signal-disagreements"' in home
    assert f"{site.origin}: its own signals and your refusals disagree on 1 path." in home
    home_ko = browser.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert f"{site.origin}: its own signals" not in home_ko
    assert f'href="/dashboard/domains/{domain.pk}/#signal-disagreements"' in home_ko

    # Once the site says what the registry says, the dashboard says nothing.
    site.serve("/robots.txt", "User-Agent: *\nContent-Usage: /opinion/ train-ai=n\n")
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(f"/dashboard/domains/{domain.pk}/observe/")
    assert 'id="site-disagreements"' not in browser.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_someone_elses_domain_cannot_be_observed_from_the_dashboard(domain, co_owner, other_holder):
    from tests.helpers import signed_in

    assert signed_in(co_owner).post(f"/dashboard/domains/{domain.pk}/observe/").status_code == 404
    assert not SignalObservation.objects.exists()


def test_a_url_lookup_shows_the_sites_own_signals_as_last_observed_and_signs_them(
    site, domain, holder, staff, lab_api, observe, holder_api, time_machine
):
    from django.utils import timezone as tz

    WorkFactory(holder=holder, identifiers=[("url", f"{site.origin}/news/1")], verified_by=staff)
    site.serve("/robots.txt", "User-Agent: *\nContent-Usage: /news/ train-ai=n\n")
    site.serve("/news/1", "<p>news</p>", X_Robots_Tag="noai")
    time_machine.move_to(tz.now(), tick=True)
    before = tz.now()
    time_machine.shift(60)
    observe(holder_api, domain.pk)

    items = [{"scheme": "url", "value": f"{site.origin}/news/1"}, {"scheme": "url", "value": f"{site.origin}/sports/2"}]
    response = lab_api.post("/api/v1/lookup", {"purpose": "train-ai", "items": items}, format="json")

    assert response.status_code == 200, response.content
    news, sports = response.json()["results"]
    assert news["status"] == "permitted"  # the registry's own status: the site's signals do not change it
    assert news["site_signals"]["read"] == ["aipref:train-ai=n", "x-robots-tag:noai"]
    assert news["site_signals"]["said"] == {"train-ai": True, "train-genai": True}
    assert sports["site_signals"]["read"] == []
    assert sports["site_signals"]["said"] == {"train-ai": False, "train-genai": False}
    verified = APIClient().post("/api/v1/receipts/verify", response.json(), format="json")
    assert verified.status_code == 200
    assert verified.json()["valid"] is True
    # As of an instant before the first observation, the registry knew nothing of the site's signals.
    earlier = lab_api.post(
        "/api/v1/lookup", {"purpose": "train-ai", "items": items, "as_of": before.isoformat()}, format="json"
    )
    assert all("site_signals" not in result for result in earlier.json()["results"])
