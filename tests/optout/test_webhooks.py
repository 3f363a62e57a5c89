"""Webhooks: a lab registers an endpoint, and the registry POSTs it the change feed in batches, in cursor order,
signed per Standard Webhooks (verified here by the specification's reference implementation, the
``standardwebhooks`` package), retried with backoff, logged, and replayable; never to a private address unless
``DOMAIN_CHECK_ALLOW_PRIVATE`` allows it.

Deliveries go to a real HTTP server on 127.0.0.1 (so these tests allow private addresses), run eagerly by Celery
after the commit that wrote the changes; the last test drives the shipped worker through Redis.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from config.celery import app as celery_app
from core.actors import Actor
from core.tasks import QUEUE_SHORT
from optout.feed.selectors import change_as_json
from optout.models import DeliveryStatus, StatusChange, WebhookDelivery, WebhookEndpoint
from optout.webhooks.delivery import webhook_secret_generate
from optout.webhooks.services import (
    webhook_deliveries_enqueue,
    webhook_endpoint_advance,
    webhook_endpoint_create,
    webhook_retry_delay,
)
from registry.models import AuditEvent
from tests.factories import ApiKeyFactory
from tests.helpers import key_client
from tests.workers import CeleryWorkers

WEBHOOKS = "/api/v1/webhooks"


# --- A receiver: a real HTTP server -------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the endpoint received, and how it answers: ``answers`` are ``(status, body, seconds to wait)``, one per
    request, then ``(200, b"ok", 0)``.
    """

    url: str
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, bytes, float]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def verified(self, secret: str) -> list[Any]:
        """Every payload received, each verified by the Standard Webhooks reference implementation."""
        return [Webhook(secret).verify(r.body, r.headers) for r in self.received]


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT = 2.0
    state = Receiver(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body))
            status, answer, wait = state.answers.pop(0) if state.answers else (200, b"ok", 0.0)
            time.sleep(wait)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the registry gave up waiting
            state.arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/optout"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- Changes and endpoints -----------------------------------------------------------------------------------


def change_add(index: int = 0, **fields: Any) -> StatusChange:
    values: dict[str, Any] = {
        "subject_type": "key",
        "subject": f"isbn:97889374608{index:02d}",
        "purpose": "train-ai",
        "old_status": "permitted",
        "new_status": "refused",
        "effective_at": timezone.now(),
        "cause_code": "optout.refusal.filed",
        **fields,
    }
    return StatusChange.objects.create(**values)


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Any:
    """``commit(n)`` writes ``n`` changes and calls the writers' hook, as ``optout.status`` does; once the
    transaction commits, the deliveries run (eagerly). Returns the changes.
    """

    def write(count: int, start: int = 0) -> list[StatusChange]:
        with django_capture_on_commit_callbacks(execute=True):
            changes = [change_add(start + index) for index in range(count)]
            webhook_deliveries_enqueue()
        return changes

    return write


@pytest.fixture
def register(lab_api: APIClient, django_capture_on_commit_callbacks: Any) -> Any:
    """``register(url, **body)`` registers an endpoint for ``lab`` through the API: its JSON, with the secret."""

    def post(url: str, expect: int = 201, client: APIClient | None = None, **body: Any) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = (client or lab_api).post(WEBHOOKS, {"url": url, **body}, format="json")
        assert response.status_code == expect, response.content
        return dict(response.json())

    return post


def deliveries(client: APIClient, endpoint_id: int, **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{WEBHOOKS}/{endpoint_id}/deliveries", query)
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def sweep(django_capture_on_commit_callbacks: Any) -> int:
    with django_capture_on_commit_callbacks(execute=True):
        result: int = celery_app.tasks["optout.tasks.webhooks_sweep"].delay().get()
    return result


# --- Registering ---------------------------------------------------------------------------------------------


def test_a_lab_registers_an_endpoint_and_sees_its_secret_only_then(receiver, register, lab_api, lab):
    endpoint = register(receiver.url, description="Training data pipeline")

    assert endpoint["url"] == receiver.url
    assert endpoint["description"] == "Training data pipeline"
    assert endpoint["active"] is True
    secret = endpoint["secret"]
    # Standard Webhooks: whsec_ + base64 of 24 to 64 random bytes.
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) <= 64
    shown = lab_api.get(f"{WEBHOOKS}/{endpoint['id']}").json()
    assert "secret" not in shown
    assert shown["url"] == receiver.url
    assert [e["id"] for e in lab_api.get(WEBHOOKS).json()["results"]] == [endpoint["id"]]
    row = WebhookEndpoint.objects.get(pk=endpoint["id"])
    assert row.party == lab
    assert AuditEvent.objects.filter(code="optout.webhook.created", object_id=str(row.pk)).exists()


def test_every_endpoint_gets_a_secret_of_its_own(receiver, register):
    assert register(receiver.url)["secret"] != register(receiver.url)["secret"]


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/hooks", "not a url", "https://", "https://user:pw@hooks.lab.example/", "http://127.0.0.1:99999/"],
)
def test_urls_that_are_not_plain_http_endpoints_are_refused(receiver, register, url):
    error = register(url, expect=400)["error"]

    assert error["code"] == "invalid_url"
    assert error["field"] == "url"
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "https://10.0.0.5/hooks",
        "http://192.168.1.20/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hooks",
        "http://100.64.0.1/hooks",
    ],
)
def test_private_loopback_and_link_local_endpoints_are_refused(register, settings, url):
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False

    error = register(url, expect=400)["error"]

    assert error["code"] == "private_address"
    assert error["field"] == "url"
    assert not WebhookEndpoint.objects.exists()


class Resolver:
    """Stands in for ``socket.getaddrinfo`` for one name: each call answers the next address (the last repeats)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, addresses: list[str]) -> None:
        self.name, self.addresses, self._real = name, addresses, socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != self.name:
            return self._real(host, port, *args, **kwargs)
        address = self.addresses.pop(0) if len(self.addresses) > 1 else self.addresses[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]


def test_the_guard_runs_again_at_delivery_since_dns_can_change(
    receiver, register, commit, lab_api, settings, monkeypatch
):
    # The name is public when registered, then resolves to the receiver's loopback address.
    settings.DOMAIN_CHECK_ALLOW_PRIVATE = False
    port = receiver.url.split(":")[2].split("/")[0]
    Resolver(monkeypatch, "hooks.lab.example", ["93.184.216.34", "127.0.0.1"])
    endpoint = register(f"http://hooks.lab.example:{port}/hooks/optout")

    commit(1)

    assert receiver.received == []
    (delivery,) = deliveries(lab_api, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_error"] == "private_address"
    assert [a["error"] for a in delivery["attempt_log"]] == ["private_address"]


def test_a_party_has_at_most_the_configured_number_of_active_endpoints(receiver, register, lab_api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 2
    first = register(receiver.url)
    register(receiver.url)

    assert register(receiver.url, expect=409)["error"]["code"] == "too_many_endpoints"
    lab_api.delete(f"{WEBHOOKS}/{first['id']}")
    register(receiver.url)


# --- Who may see and change ----------------------------------------------------------------------------------


def test_anonymous_callers_are_asked_to_authenticate(api):
    assert api.get(WEBHOOKS).status_code == 401
    assert api.post(WEBHOOKS, {"url": "https://hooks.lab.example/"}, format="json").status_code == 401


def test_a_key_without_the_lookup_scope_may_not_register(receiver, register, lab):
    client = key_client(ApiKeyFactory(party=lab, scopes=["usage:write"]).raw)

    assert register(receiver.url, expect=403, client=client)["error"]["code"] == "missing_scope"


def test_another_party_neither_sees_nor_touches_an_endpoint(receiver, register, commit, holder_api, lab_api):
    endpoint = register(receiver.url, after=0)
    commit(1)
    (delivery,) = deliveries(lab_api, endpoint["id"])
    base = f"{WEBHOOKS}/{endpoint['id']}"

    assert holder_api.get(WEBHOOKS).json()["results"] == []
    assert holder_api.get(base).status_code == 404
    assert holder_api.get(f"{base}/deliveries").status_code == 404
    assert holder_api.post(f"{base}/deliveries/{delivery['id']}/replay").status_code == 404
    assert holder_api.delete(base).status_code == 404
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).is_active
    assert lab_api.post(f"{WEBHOOKS}/999999/deliveries/{delivery['id']}/replay").status_code == 404


def test_staff_see_every_endpoint(receiver, register, staff_api):
    endpoint = register(receiver.url)

    assert staff_api.get(f"{WEBHOOKS}/{endpoint['id']}").status_code == 200


# --- Delivering ----------------------------------------------------------------------------------------------


def test_a_delivery_is_signed_as_the_standard_webhooks_reference_implementation_verifies(
    receiver, register, commit, lab_api
):
    endpoint = register(receiver.url)
    changes = commit(2)

    (payload,) = receiver.verified(endpoint["secret"])
    assert payload == {
        "type": "status.changed",
        "changes": [change_as_json(change) for change in changes],
        "cursor_from": 0,  # the feed was empty when the endpoint was registered
        "cursor_to": changes[-1].pk,
    }
    # The changes are the feed's own JSON, as GET /api/v1/changes gives them.
    assert payload["changes"] == lab_api.get("/api/v1/changes").json()["changes"]
    (request,) = receiver.received
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("msg_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    (delivery,) = deliveries(lab_api, endpoint["id"])
    assert delivery["status"] == "succeeded"
    assert delivery["message_id"] == request.headers["webhook-id"]
    assert (delivery["cursor_to"], delivery["change_count"], delivery["attempts"]) == (changes[-1].pk, 2, 1)
    assert [(a["number"], a["response_status"], a["response_body"]) for a in delivery["attempt_log"]] == [
        (1, 200, "ok")
    ]


def test_a_refusal_filed_reaches_the_lab_as_a_signed_batch(
    receiver, register, book, holder_api, lab_api, django_capture_on_commit_callbacks
):
    endpoint = register(receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.post(
            "/api/v1/refusals", {"scope": "work", "work": book.pk, "purposes": ["train-ai"]}, format="json"
        )
    assert response.status_code == 201, response.content

    (payload,) = receiver.verified(endpoint["secret"])
    assert {(c["subject"], c["purpose"], c["old_status"], c["new_status"]) for c in payload["changes"]} == {
        ("isbn:9788936434021", "train-ai", "permitted", "refused"),
        ("isbn:9788936434021", "train-genai", "permitted", "refused"),
    }
    assert {c["cause"]["code"] for c in payload["changes"]} == {"optout.refusal.filed"}
    assert payload["changes"] == lab_api.get("/api/v1/changes", {"after": payload["cursor_from"]}).json()["changes"]


def test_a_tampered_body_or_another_secret_fails_verification(receiver, register, commit):
    endpoint = register(receiver.url)
    other = register(receiver.url)
    commit(1)
    request = receiver.received[0]
    secret = next(e["secret"] for e in (endpoint, other) if str(e["id"]) in str(_endpoint_of(request)))
    wrong = endpoint["secret"] if secret != endpoint["secret"] else other["secret"]

    Webhook(secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"refused", b"permitted"), request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(wrong).verify(request.body, request.headers)


def _endpoint_of(request: Received) -> int:
    return WebhookDelivery.objects.get(message_id=request.headers["webhook-id"]).endpoint_id


def test_batches_of_at_most_n_changes_arrive_in_cursor_order(receiver, register, commit, settings):
    settings.WEBHOOK_BATCH_SIZE = 2
    endpoint = register(receiver.url)
    changes = commit(5)

    payloads = receiver.verified(endpoint["secret"])
    assert [len(p["changes"]) for p in payloads] == [2, 2, 1]
    assert [c["cursor"] for p in payloads for c in p["changes"]] == [c.pk for c in changes]
    # Each batch starts where the one before ended: a receiver sees at once whether it missed one.
    assert [p["cursor_from"] for p in payloads[1:]] == [p["cursor_to"] for p in payloads[:-1]]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 3


def test_a_new_endpoint_starts_from_now_or_from_the_cursor_it_gives(receiver, register, commit):
    earlier = commit(2)
    from_now = register(receiver.url)
    from_cursor = register(receiver.url, after=earlier[0].pk)
    assert from_now["cursor"] == earlier[-1].pk
    receiver.received.clear()  # what registering from a cursor sent at once: the changes after it

    later = commit(1, start=10)

    by_endpoint: dict[int, list[int]] = {}
    for request in receiver.received:
        by_endpoint.setdefault(_endpoint_of(request), []).extend(c["cursor"] for c in request.payload()["changes"])
    assert by_endpoint == {from_now["id"]: [later[0].pk], from_cursor["id"]: [later[0].pk]}
    first = WebhookDelivery.objects.filter(endpoint_id=from_cursor["id"]).order_by("id").first()
    assert first is not None
    assert (first.cursor_from, first.cursor_to) == (earlier[0].pk, earlier[1].pk)


def test_a_cursor_the_feed_never_reached_is_refused(receiver, register):
    assert register(receiver.url, expect=400, after=10**6)["error"]["code"] == "invalid_cursor"


def test_a_failed_try_is_retried_with_backoff_and_the_next_batch_waits(
    receiver, register, commit, lab_api, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(timezone.now(), tick=False)
    endpoint = register(receiver.url)
    receiver.answers = [(500, b"database is down", 0.0)]
    first = commit(1)

    (delivery,) = deliveries(lab_api, endpoint["id"])
    assert (delivery["status"], delivery["attempts"], delivery["last_response_status"]) == ("pending", 1, 500)
    next_try = timezone.now() + timedelta(seconds=30)
    assert datetime.fromisoformat(delivery["next_attempt_at"]) == next_try
    # In cursor order, one batch at a time: later changes wait for the pending delivery.
    commit(1, start=1)
    sweep(django_capture_on_commit_callbacks)
    assert len(deliveries(lab_api, endpoint["id"])) == 1
    assert len(receiver.received) == 1

    time_machine.move_to(next_try + timedelta(seconds=1), tick=False)
    sweep(django_capture_on_commit_callbacks)

    log = deliveries(lab_api, endpoint["id"])
    assert [d["status"] for d in log] == ["succeeded", "succeeded"]  # newest first: the next batch followed
    assert [(a["number"], a["response_status"]) for a in log[1]["attempt_log"]] == [(1, 500), (2, 200)]
    assert log[1]["attempt_log"][0]["response_body"] == "database is down"
    assert [r.headers["webhook-id"] for r in receiver.received[:2]] == [log[1]["message_id"]] * 2
    assert receiver.received[0].body == receiver.received[1].body
    assert receiver.verified(endpoint["secret"])[0]["changes"][0]["cursor"] == first[0].pk


def test_retry_waits_double_up_to_the_maximum(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600

    assert [webhook_retry_delay(n).total_seconds() for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]


def test_after_its_last_try_a_delivery_fails_and_the_endpoint_moves_on(
    receiver, register, commit, lab_api, settings, time_machine, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    time_machine.move_to(timezone.now(), tick=False)
    endpoint = register(receiver.url)
    receiver.answers = [(503, b"", 0.0), (410, b"gone", 0.0)]
    commit(1)
    commit(1, start=1)

    time_machine.shift(timedelta(seconds=31))
    sweep(django_capture_on_commit_callbacks)

    log = deliveries(lab_api, endpoint["id"])
    assert [(d["status"], d["attempts"], d["next_attempt_at"]) for d in log] == [
        ("succeeded", 1, None),
        ("failed", 2, None),
    ]
    assert [a["response_status"] for a in log[1]["attempt_log"]] == [503, 410]
    assert log[0]["cursor_from"] == log[1]["cursor_to"]
    assert deliveries(lab_api, endpoint["id"], status="failed") == [log[1]]
    assert lab_api.get(f"{WEBHOOKS}/{endpoint['id']}/deliveries", {"status": "lost"}).status_code == 400


def test_a_slow_endpoint_times_out_and_is_tried_again(receiver, register, commit, lab_api, settings):
    settings.WEBHOOK_TIMEOUT = 0.3
    endpoint = register(receiver.url)
    receiver.answers = [(200, b"late", 1.5)]

    commit(1)

    (delivery,) = deliveries(lab_api, endpoint["id"])
    assert (delivery["status"], delivery["last_error"], delivery["last_response_status"]) == (
        "pending",
        "timeout",
        None,
    )
    assert delivery["attempt_log"][0]["duration_ms"] < 1500


def test_only_the_start_of_a_response_is_kept_in_the_log(receiver, register, commit, lab_api, settings):
    settings.WEBHOOK_RESPONSE_LOG_BYTES = 16
    endpoint = register(receiver.url)
    receiver.answers = [(200, b"x" * 100_000, 0.0)]

    commit(1)

    (delivery,) = deliveries(lab_api, endpoint["id"])
    assert delivery["attempt_log"][0]["response_body"] == "x" * 16


def test_nothing_is_sent_to_a_closed_port_and_the_log_says_why(receiver, register, commit, lab_api):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    endpoint = register(f"http://127.0.0.1:{closed}/hooks")

    commit(1)

    (delivery,) = deliveries(lab_api, endpoint["id"])
    assert (delivery["status"], delivery["last_error"]) == ("pending", "connection_failed")


def test_a_replay_sends_the_same_message_again(receiver, register, commit, lab_api, django_capture_on_commit_callbacks):
    endpoint = register(receiver.url)
    commit(1)
    (delivery,) = deliveries(lab_api, endpoint["id"])

    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(f"{WEBHOOKS}/{endpoint['id']}/deliveries/{delivery['id']}/replay")

    assert response.status_code == 202, response.content
    assert len(receiver.received) == 2
    first, again = receiver.received
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == delivery["message_id"]
    assert again.body == first.body
    assert receiver.verified(endpoint["secret"])[1] == first.payload()
    (replayed,) = deliveries(lab_api, endpoint["id"])
    assert (replayed["status"], replayed["attempts"]) == ("succeeded", 2)
    assert AuditEvent.objects.filter(code="optout.webhook.replayed").count() == 1


def test_a_disabled_endpoint_receives_nothing_more(receiver, register, commit, lab_api, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    endpoint = register(receiver.url)
    receiver.answers = [(500, b"", 0.0)]
    commit(1)
    (pending,) = deliveries(lab_api, endpoint["id"])

    response = lab_api.delete(f"{WEBHOOKS}/{endpoint['id']}")

    assert response.status_code == 200
    assert response.json()["active"] is False
    assert lab_api.delete(f"{WEBHOOKS}/{endpoint['id']}").status_code == 200  # again: nothing changes
    assert deliveries(lab_api, endpoint["id"])[0]["status"] == "cancelled"
    time_machine.shift(timedelta(hours=1))
    commit(1, start=1)
    assert len(receiver.received) == 1
    replay = lab_api.post(f"{WEBHOOKS}/{endpoint['id']}/deliveries/{pending['id']}/replay")
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "endpoint_disabled"
    assert AuditEvent.objects.filter(code="optout.webhook.disabled").count() == 1


def test_a_delivery_task_run_twice_posts_once(receiver, register, commit, lab_api):
    endpoint = register(receiver.url)
    commit(1)
    (delivery,) = deliveries(lab_api, endpoint["id"])

    # A duplicate or redelivered message finds the delivery settled (or, while a try runs, claimed).
    assert celery_app.tasks["optout.tasks.webhook_delivery_send"].delay(delivery["id"]).get() is None

    assert len(receiver.received) == 1
    assert deliveries(lab_api, endpoint["id"])[0]["attempts"] == 1


def test_advancing_twice_makes_one_batch(receiver, register, lab_api):
    endpoint = register(receiver.url)
    change_add()

    # Not committed yet: the tasks publish nothing, and only the first advance finds the endpoint behind.
    advance = celery_app.tasks["optout.tasks.webhook_endpoints_advance"]
    assert advance.delay().get() == 1
    assert advance.delay().get() == 0

    assert len(deliveries(lab_api, endpoint["id"])) == 1


def test_the_sweep_delivers_what_a_missed_trigger_left_behind(
    receiver, register, lab_api, django_capture_on_commit_callbacks
):
    endpoint = register(receiver.url)
    change = change_add()  # no hook called

    assert receiver.received == []
    assert sweep(django_capture_on_commit_callbacks) == 1

    (payload,) = receiver.verified(endpoint["secret"])
    assert [c["cursor"] for c in payload["changes"]] == [change.pk]


@pytest.mark.django_db(transaction=True)
def test_a_long_backlog_run_eagerly_is_finished_by_the_sweep_in_order(receiver, lab, settings):
    # Run eagerly after a real commit, each batch is sent inside the call that made the one before: the chain
    # stops at a bounded depth instead of exhausting the stack, and the sweep sends the rest.
    settings.WEBHOOK_BATCH_SIZE = 1
    endpoint = webhook_endpoint_create(actor=Actor.system(), party=lab, url=receiver.url)
    with transaction.atomic():
        changes = [change_add(index) for index in range(40)]
        webhook_deliveries_enqueue()
    assert 0 < len(receiver.received) < 40

    sweep = celery_app.tasks["optout.tasks.webhooks_sweep"]
    while sweep.delay().get():
        pass

    payloads = receiver.verified(endpoint.secret)
    assert [p["changes"][0]["cursor"] for p in payloads] == [c.pk for c in changes]


def test_writing_changes_without_endpoints_publishes_nothing(db, django_capture_on_commit_callbacks, monkeypatch):
    published: list[Any] = []
    monkeypatch.setattr(celery_app.tasks["optout.tasks.webhook_endpoints_advance"], "delay", published.append)

    with django_capture_on_commit_callbacks(execute=True):
        change_add()
        webhook_deliveries_enqueue()

    assert published == []


def test_the_schema_documents_the_webhook_operations(lab_api):
    paths = lab_api.get("/api/v1/schema/", {"format": "json"}).json()["paths"]

    assert {"get", "post"} <= set(paths["/api/v1/webhooks"])
    assert {"get", "delete"} <= set(paths["/api/v1/webhooks/{endpoint_id}"])
    assert "get" in paths["/api/v1/webhooks/{endpoint_id}/deliveries"]
    assert "202" in paths["/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"]["post"]["responses"]


def test_staff_read_endpoints_and_deliveries_in_the_admin_but_never_the_secret(
    receiver, register, commit, staff_client
):
    endpoint = register(receiver.url)
    commit(1)
    delivery = WebhookDelivery.objects.get()

    listing = staff_client.get("/admin/optout/webhookendpoint/")
    detail = staff_client.get(f"/admin/optout/webhookendpoint/{endpoint['id']}/change/")
    log = staff_client.get(f"/admin/optout/webhookdelivery/{delivery.pk}/change/")

    assert (listing.status_code, detail.status_code, log.status_code) == (200, 200, 200)
    assert receiver.url in listing.content.decode()
    assert endpoint["secret"] not in listing.content.decode() + detail.content.decode()
    assert delivery.message_id in log.content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_advances_of_one_endpoint_at_once_make_one_batch(receiver, lab):
    endpoint = WebhookEndpoint.objects.create(party=lab, url=receiver.url, secret=webhook_secret_generate())
    change_add()
    start = threading.Barrier(2)
    made: list[WebhookDelivery | None] = []

    def advance() -> None:
        start.wait()
        try:
            made.append(webhook_endpoint_advance(endpoint_id=endpoint.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=advance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(delivery is not None for delivery in made) == 1
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.received) == 1


# --- Through the shipped worker ------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_shipped_worker_delivers_a_signed_batch_after_commit(receiver, lab, tmp_path: Path):
    client = key_client(ApiKeyFactory(party=lab, scopes=["lookup"]).raw)
    with CeleryWorkers(tmp_path, DOMAIN_CHECK_ALLOW_PRIVATE="1") as workers:
        response = client.post(WEBHOOKS, {"url": receiver.url}, format="json")
        assert response.status_code == 201, response.content
        secret = response.json()["secret"]
        workers.start("short", queue=QUEUE_SHORT)

        changes = [change_add(index) for index in range(3)]
        webhook_deliveries_enqueue()  # outside a transaction: publishes at once, as after a commit

        assert receiver.arrived.wait(60), workers.log()
        (payload,) = receiver.verified(secret)
        assert [c["cursor"] for c in payload["changes"]] == [c.pk for c in changes]
        deadline = time.monotonic() + 30
        while WebhookDelivery.objects.get().status != DeliveryStatus.SUCCEEDED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED, workers.log()
