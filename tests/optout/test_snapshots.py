"""Snapshots over the API: who may read them, the signed manifest, the files (hashes, the membership format as the
README states it, ETag, conditional GET, Range), staff's request, the command, the task, retention and failures.

The status projection is written directly here (segments and changes as the lead's ``status_refresh`` would leave
them), so that each test states exactly what the snapshot must list; ``test_snapshot_feed_property.py`` drives the
real services instead. Builds run in the test process (Celery eager) and outside any transaction, as a worker does
(the consistent read opens its own), hence ``transaction=True``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from core.dates import rfc3339
from core.jobs import jobs_sweep
from core.tasks import QUEUE_LONG
from optout import tasks
from optout.models import Snapshot, SnapshotStatus, StatusChange, StatusSegment
from registry.models import AuditEvent
from tests.factories import ApiKeyFactory
from tests.helpers import key_client, streamed
from tests.workers import CeleryWorkers

pytestmark = pytest.mark.django_db(transaction=True)

SNAPSHOTS = "/api/v1/snapshots"
REFUSED_BOTH = ["isbn:9788936434021", "doi:10.1000/182", "url:https://news.example.kr/a/1"]
GENAI_ONLY = "isbn:9791100000019"
LICENSED = "isrc:KRA012300001"
PERMITTED = "isbn:9791100000026"
ENDED = "isbn:9791100000033"  # refused until yesterday
LATER = "isbn:9791100000040"  # refused from tomorrow


def segment(subject: str, purpose: str, status: str, *, since: Any, until: Any = None, **fields: Any) -> None:
    StatusSegment.objects.create(
        subject_type=fields.pop("subject_type", "key"),
        subject=subject,
        purpose=purpose,
        status=status,
        valid_from=since,
        valid_to=until,
        **fields,
    )


def change(subject: str, purpose: str, old: str, new: str, *, at: Any, **fields: Any) -> StatusChange:
    return StatusChange.objects.create(
        subject_type=fields.pop("subject_type", "key"),
        subject=subject,
        purpose=purpose,
        old_status=old,
        new_status=new,
        effective_at=at,
        cause_code="optout.refusal.filed",
        **fields,
    )


@pytest.fixture
def registry_state() -> dict[str, Any]:
    """A projection with every case a snapshot must tell apart, and the change feed that led to it."""
    now = timezone.now()
    # Half a second past: PostgreSQL writes the fraction as ".5", the snapshot as rfc3339 does (".500000").
    week_ago = now.replace(microsecond=500_000) - timedelta(days=7)
    yesterday, tomorrow = now - timedelta(days=1), now + timedelta(days=1)
    for key in REFUSED_BOTH:
        for purpose in ("train-ai", "train-genai"):
            segment(key, purpose, "refused", since=week_ago)
    segment(GENAI_ONLY, "train-ai", "permitted", since=week_ago)
    segment(GENAI_ONLY, "train-genai", "refused", since=week_ago.replace(microsecond=0))
    for purpose in ("train-ai", "train-genai"):
        segment(LICENSED, purpose, "license_required", since=week_ago)
        segment(PERMITTED, purpose, "permitted", since=week_ago)
        segment(ENDED, purpose, "refused", since=week_ago, until=yesterday)
        segment(ENDED, purpose, "permitted", since=yesterday)
        segment(LATER, purpose, "permitted", since=week_ago, until=tomorrow)
        segment(LATER, purpose, "refused", since=tomorrow)
        segment(
            "https://news.example.kr/opinion/",
            purpose,
            "refused",
            since=week_ago,
            subject_type="url_prefix",
            host="news.example.kr",
        )
        segment("audio", purpose, "license_required", since=week_ago, subject_type="kind")
        segment("text", purpose, "permitted", since=week_ago, subject_type="kind")
    past = change(REFUSED_BOTH[0], "train-ai", "permitted", "refused", at=week_ago)
    scheduled = change(LATER, "train-ai", "permitted", "refused", at=tomorrow)
    return {"past": past, "scheduled": scheduled, "tomorrow": tomorrow, "week_ago": week_ago}


def build(staff_api: Any) -> dict[str, Any]:
    response = staff_api.post(SNAPSHOTS)
    assert response.status_code == 202, response.content
    assert response["Location"] == f"{SNAPSHOTS}/{response.json()['snapshot_id']}"
    manifest = staff_api.get(response["Location"])
    assert manifest.status_code == 200, manifest.content
    return dict(manifest.json())


def download(client: Any, manifest: dict[str, Any], name: str, **headers: Any) -> Any:
    return client.get(f"{SNAPSHOTS}/{manifest['snapshot_id']}/files/{name}", **headers)


def body(response: Any) -> bytes:
    return streamed(response) if response.streaming else bytes(response.content)


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines()]


def spec_membership(keys: list[str]) -> bytes:
    """The membership file exactly as the README specifies it, written independently of the builder."""
    hashes = sorted({int.from_bytes(hashlib.sha256(k.encode("utf-8")).digest()[:8], "big") for k in keys})
    return b"".join(h.to_bytes(8, "big") for h in hashes)


# --- Building and reading ---------------------------------------------------------------------------------


def test_staff_build_lists_what_is_not_permitted_now(staff_api, lab_api, registry_state):
    manifest = build(staff_api)

    assert manifest["format"] == "optout-registry-snapshot/2"
    assert manifest["membership_hash"] == "sha256-64-be"
    assert manifest["purposes"] == ["train-ai", "train-genai"]
    assert manifest["cursor"] == registry_state["scheduled"].pk
    assert manifest["counts"] == {
        "keys": {"train-ai": 4, "train-genai": 5},
        "url_prefixes": {"train-ai": 1, "train-genai": 1},
        "kinds": {"train-ai": 1, "train-genai": 1},
        "scheduled": 1,
    }
    snapshot = Snapshot.objects.get(snapshot_id=manifest["snapshot_id"])
    assert snapshot.status == SnapshotStatus.READY
    assert snapshot.as_of is not None
    assert rfc3339(snapshot.as_of) == manifest["as_of"]
    assert [f["name"] for f in manifest["files"]] == [
        "keys-train-ai.bin",
        "keys-train-genai.bin",
        "url-prefixes.jsonl.gz",
        "kinds.json",
        "scheduled.jsonl.gz",
        "keys.jsonl.gz",
    ]
    files = {f["name"]: body(download(lab_api, manifest, f["name"])) for f in manifest["files"]}

    assert files["keys-train-ai.bin"] == spec_membership([*REFUSED_BOTH, LICENSED])
    assert files["keys-train-genai.bin"] == spec_membership([*REFUSED_BOTH, GENAI_ONLY, LICENSED])
    listing = jsonl(files["keys.jsonl.gz"])
    assert sorted((row["key"], row["purpose"], row["status"]) for row in listing) == sorted(
        [(k, p, "refused") for k in REFUSED_BOTH for p in ("train-ai", "train-genai")]
        + [(GENAI_ONLY, "train-genai", "refused")]
        + [(LICENSED, p, "license_required") for p in ("train-ai", "train-genai")]
    )
    assert set(listing[0]) == {"key", "purpose", "status", "work_id", "refusal_id", "since"}
    assert {row["since"] for row in listing if row["key"] != GENAI_ONLY} == {rfc3339(registry_state["week_ago"])}
    assert [row["since"] for row in listing if row["key"] == GENAI_ONLY] == [
        rfc3339(registry_state["week_ago"].replace(microsecond=0))
    ]
    assert jsonl(files["url-prefixes.jsonl.gz"]) == [
        {"purpose": p, "host": "news.example.kr", "prefix": "https://news.example.kr/opinion/", "refusal_id": None}
        for p in ("train-ai", "train-genai")
    ]
    assert json.loads(files["kinds.json"]) == {"train-ai": ["audio"], "train-genai": ["audio"]}
    [scheduled] = jsonl(files["scheduled.jsonl.gz"])
    assert scheduled == {
        "cursor": registry_state["scheduled"].pk,
        "subject_type": "key",
        "subject": LATER,
        "host": "",
        "purpose": "train-ai",
        "old_status": "permitted",
        "new_status": "refused",
        "effective_at": rfc3339(registry_state["tomorrow"]),
        "recorded_at": rfc3339(registry_state["scheduled"].recorded_at),
        "cause": {"event_id": None, "code": "optout.refusal.filed"},
    }
    assert AuditEvent.objects.filter(code="optout.snapshot.built", object_id=str(snapshot.pk)).count() == 1


def test_every_file_matches_its_manifest_entry(staff_api, lab_api, registry_state):
    manifest = build(staff_api)

    for entry in manifest["files"]:
        response = download(lab_api, manifest, entry["name"])
        assert response.status_code == 200
        data = body(response)
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert response["ETag"] == f'"{entry["sha256"]}"'
        assert response["Content-Type"] == entry["media_type"]
        assert response["Accept-Ranges"] == "bytes"
    stored = default_storage.open(f"snapshots/{manifest['snapshot_id']}/manifest.json").read()
    assert json.loads(stored) == manifest
    assert body(download(lab_api, manifest, "manifest.json")) == stored


def test_manifest_signature_verifies_with_the_published_key(staff_api, api, registry_state):
    manifest = build(staff_api)
    receipt = manifest.pop("receipt")
    keys = {key["kid"]: key for key in api.get("/.well-known/optout-registry/keys.json").json()["keys"]}

    jwk = keys[receipt["key_id"]]
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))
    # JCS of an ASCII, float-free object: sorted keys, no whitespace.
    signed = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    signature = base64.urlsafe_b64decode(receipt["signature"] + "=" * (-len(receipt["signature"]) % 4))
    public.verify(signature, signed)  # raises if it does not verify
    assert (receipt["alg"], receipt["canonicalization"]) == ("Ed25519", "JCS (RFC 8785)")
    verified = api.post("/api/v1/receipts/verify", {"payload": manifest, "receipt": receipt}, format="json")
    assert verified.json()["valid"] is True
    tampered = {**manifest, "cursor": manifest["cursor"] + 1}
    assert api.post("/api/v1/receipts/verify", {"payload": tampered, "receipt": receipt}, format="json").json() == {
        "valid": False,
        "key_id": receipt["key_id"],
        "reason": "bad_signature",
    }


def test_empty_registry_builds_an_empty_snapshot(staff_api, lab_api):
    manifest = build(staff_api)

    assert manifest["cursor"] == 0
    assert manifest["counts"]["keys"] == {"train-ai": 0, "train-genai": 0}
    assert body(download(lab_api, manifest, "keys-train-ai.bin")) == b""
    assert jsonl(body(download(lab_api, manifest, "keys.jsonl.gz"))) == []


def test_latest_is_the_newest_ready_snapshot(staff_api, lab_api, registry_state):
    assert lab_api.get(f"{SNAPSHOTS}/latest").json()["error"]["code"] == "snapshot_not_found"
    first = build(staff_api)
    second = build(staff_api)

    latest = lab_api.get(f"{SNAPSHOTS}/latest")

    assert latest.status_code == 200
    assert latest.json() == second != first
    assert latest["Content-Location"] == f"{SNAPSHOTS}/{second['snapshot_id']}"
    assert latest["Cache-Control"] == "private, no-cache"
    again = lab_api.get(f"{SNAPSHOTS}/latest", HTTP_IF_NONE_MATCH=latest["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    listed = lab_api.get(SNAPSHOTS).json()
    assert [s["snapshot_id"] for s in listed["results"]] == [second["snapshot_id"], first["snapshot_id"]]
    assert listed["results"][0]["counts"] == second["counts"]
    assert listed["results"][0]["files"][0]["url"] == f"{SNAPSHOTS}/{second['snapshot_id']}/files/keys-train-ai.bin"


# --- Who may read --------------------------------------------------------------------------------------------


def test_anonymous_callers_are_asked_to_authenticate(api, staff_api, registry_state):
    manifest = build(staff_api)
    for path in (SNAPSHOTS, f"{SNAPSHOTS}/latest", f"{SNAPSHOTS}/{manifest['snapshot_id']}"):
        assert api.get(path).status_code == 401
    assert download(api, manifest, "keys-train-ai.bin").status_code == 401
    assert api.post(SNAPSHOTS).status_code == 401


def test_keys_without_the_lookup_scope_are_refused(holder, staff_api, registry_state):
    manifest = build(staff_api)
    writer = key_client(ApiKeyFactory(party=holder, scopes=["works:write"]).raw)

    for response in (
        writer.get(SNAPSHOTS),
        writer.get(f"{SNAPSHOTS}/latest"),
        writer.get(f"{SNAPSHOTS}/{manifest['snapshot_id']}"),
        download(writer, manifest, "keys-train-ai.bin"),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_scope"


def test_lab_reads_but_only_staff_build(lab_api, session_api, staff_api):
    refused = lab_api.post(SNAPSHOTS)
    assert refused.status_code == 403
    assert session_api.post(SNAPSHOTS).status_code == 403
    assert not Snapshot.objects.exists()
    manifest = build(staff_api)
    assert lab_api.get(f"{SNAPSHOTS}/{manifest['snapshot_id']}").json() == manifest
    assert session_api.get(f"{SNAPSHOTS}/latest").json() == manifest


def test_staff_see_failed_snapshots_and_labs_do_not(staff_api, lab_api, settings, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("storage cannot write under a file")
    settings.STORAGES = {
        **settings.STORAGES,
        "snapshots": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": blocked}},
    }
    settings.SNAPSHOT_STORAGE = "snapshots"

    response = staff_api.post(SNAPSHOTS)

    snapshot = Snapshot.objects.get()
    assert snapshot.status == SnapshotStatus.FAILED
    assert snapshot.failure_code == "internal_error"
    detail = staff_api.get(response["Location"])
    assert detail.status_code == 409
    assert detail.json()["error"]["code"] == "snapshot_failed"
    assert detail.json()["error"]["failure_code"] == "internal_error"
    assert [s["status"] for s in staff_api.get(SNAPSHOTS).json()["results"]] == ["failed"]
    assert lab_api.get(SNAPSHOTS).json()["results"] == []
    assert lab_api.get(response["Location"]).status_code == 404
    assert AuditEvent.objects.filter(code="optout.snapshot.failed").count() == 1


# --- Conditional GET and ranges -------------------------------------------------------------------------------


def test_file_etag_and_conditional_get(staff_api, lab_api, registry_state):
    manifest = build(staff_api)
    entry = manifest["files"][0]

    full = download(lab_api, manifest, entry["name"])
    assert full["Cache-Control"] == "private, max-age=31536000, immutable"
    unchanged = download(lab_api, manifest, entry["name"], HTTP_IF_NONE_MATCH=full["ETag"])
    assert unchanged.status_code == 304
    assert unchanged["ETag"] == full["ETag"]
    assert download(lab_api, manifest, entry["name"], HTTP_IF_NONE_MATCH=f"W/{full['ETag']}").status_code == 304
    assert download(lab_api, manifest, entry["name"], HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert download(lab_api, manifest, entry["name"], HTTP_IF_NONE_MATCH="*").status_code == 304


def test_file_ranges(staff_api, lab_api, registry_state):
    manifest = build(staff_api)
    entry = next(f for f in manifest["files"] if f["name"] == "keys.jsonl.gz")
    whole = body(download(lab_api, manifest, entry["name"]))
    size = len(whole)

    first = download(lab_api, manifest, entry["name"], HTTP_RANGE="bytes=0-9")
    assert first.status_code == 206
    assert first["Content-Range"] == f"bytes 0-9/{size}"
    assert first["Content-Length"] == "10"
    head = body(first)
    assert head == whole[:10]
    rest = download(lab_api, manifest, entry["name"], HTTP_RANGE="bytes=10-")
    assert head + body(rest) == whole
    tail = download(lab_api, manifest, entry["name"], HTTP_RANGE="bytes=-5")
    assert (tail.status_code, body(tail)) == (206, whole[-5:])
    beyond = download(lab_api, manifest, entry["name"], HTTP_RANGE=f"bytes=5-{size + 100}")
    assert beyond["Content-Range"] == f"bytes 5-{size - 1}/{size}"
    unsatisfiable = download(lab_api, manifest, entry["name"], HTTP_RANGE=f"bytes={size}-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable["Content-Range"] == f"bytes */{size}"
    assert unsatisfiable.json()["error"]["code"] == "range_not_satisfiable"
    # If-Range names another version: the whole (current) file instead of a range of it.
    stale = download(lab_api, manifest, entry["name"], HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"older"')
    assert (stale.status_code, body(stale)) == (200, whole)
    fresh = download(lab_api, manifest, entry["name"], HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{entry["sha256"]}"')
    assert fresh.status_code == 206
    several = download(lab_api, manifest, entry["name"], HTTP_RANGE="bytes=0-1,5-6")
    assert (several.status_code, body(several)) == (200, whole)


def test_unknown_names_and_ids_are_not_found(staff_api, lab_api, registry_state):
    manifest = build(staff_api)
    assert download(lab_api, manifest, "secrets.txt").json()["error"]["code"] == "snapshot_file_not_found"
    assert lab_api.get(f"{SNAPSHOTS}/{'0' * 32}").json()["error"]["code"] == "snapshot_not_found"
    default_storage.delete(f"snapshots/{manifest['snapshot_id']}/kinds.json")
    assert download(lab_api, manifest, "kinds.json").json()["error"]["code"] == "snapshot_file_missing"


# --- Command, task, beat, retention, the lifecycle ---------------------------------------------------------------


def test_snapshot_create_command_builds_in_process(registry_state):
    out = io.StringIO()
    call_command("snapshot_create", stdout=out)

    snapshot = Snapshot.objects.get()
    assert snapshot.status == SnapshotStatus.READY
    assert snapshot.trigger == "operator"
    assert out.getvalue().splitlines()[-1] == snapshot.snapshot_id
    assert "keys train-ai 4, train-genai 5" in out.getvalue()


def test_beat_queues_one_snapshot_at_a_time(settings, django_capture_on_commit_callbacks):
    assert settings.CELERY_BEAT_SCHEDULE["snapshot-scheduled"]["task"] == "optout.tasks.snapshot_scheduled"
    assert settings.CELERY_BEAT_SCHEDULE["snapshot-scheduled"]["schedule"] == timedelta(days=1)
    settings.CELERY_TASK_ALWAYS_EAGER = False  # nothing is built: the queued snapshot stays queued
    from config.celery import app

    app.conf.task_always_eager = False
    try:
        Snapshot.objects.create(trigger="schedule")  # queued, as if its message were in the broker
        first = tasks.snapshot_scheduled()
        second = tasks.snapshot_scheduled()
    finally:
        app.conf.task_always_eager = True
    assert first == second
    assert Snapshot.objects.count() == 1


def test_task_builds_a_queued_snapshot_once(registry_state):
    snapshot = Snapshot.objects.create(trigger="schedule")

    assert tasks.snapshot_build(snapshot.pk) == SnapshotStatus.READY
    built = Snapshot.objects.get()
    assert tasks.snapshot_build(snapshot.pk) == SnapshotStatus.READY  # redelivered: left as it is
    assert Snapshot.objects.get().manifest == built.manifest
    assert tasks.snapshot_build(snapshot.pk + 1000) is None  # gone


def test_retention_keeps_the_newest(staff_api, settings, registry_state):
    settings.SNAPSHOT_KEEP = 2
    ids = [build(staff_api)["snapshot_id"] for _ in range(4)]

    kept = list(Snapshot.objects.order_by("as_of").values_list("snapshot_id", flat=True))
    assert kept == ids[2:]
    for removed in ids[:2]:
        assert not default_storage.exists(f"snapshots/{removed}/manifest.json")
        assert not default_storage.exists(f"snapshots/{removed}/keys-train-ai.bin")
    assert default_storage.exists(f"snapshots/{ids[-1]}/keys-train-ai.bin")
    assert AuditEvent.objects.filter(code="optout.snapshot.removed").count() == 2


def test_a_build_whose_worker_died_is_not_left_building(settings):
    """The jobs sweep queues a silent build again; one started JOB_MAX_ATTEMPTS times fails with a reason."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 60)
    snapshot = Snapshot.objects.create(
        trigger="schedule", status="building", heartbeat_at=stale, attempts=settings.JOB_MAX_ATTEMPTS
    )

    jobs_sweep()

    snapshot.refresh_from_db()
    assert snapshot.status == SnapshotStatus.FAILED
    assert snapshot.failure_code == "too_many_attempts"


def test_schema_documents_the_snapshot_operations(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/snapshots"]) >= {"get", "post"}
    assert "get" in paths["/api/v1/snapshots/latest"]
    assert {"200", "206", "304", "416"} <= set(
        paths["/api/v1/snapshots/{snapshot_id}/files/{name}"]["get"]["responses"]
    )


# --- A real worker --------------------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
def test_staff_request_is_built_by_the_long_queue_worker(staff_api, lab_api, registry_state, tmp_path):
    with CeleryWorkers(tmp_path) as workers:
        worker = workers.start(queue=QUEUE_LONG)
        response = staff_api.post(SNAPSHOTS)
        assert response.status_code == 202
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            detail = staff_api.get(response["Location"])
            if detail.status_code != 202:
                break
            assert worker.poll() is None, workers.log()
            time.sleep(0.5)
    assert detail.status_code == 200, workers.log()
    manifest = detail.json()
    assert manifest["counts"]["keys"] == {"train-ai": 4, "train-genai": 5}
    data = body(download(lab_api, manifest, "keys-train-genai.bin"))
    assert data == spec_membership([*REFUSED_BOTH, GENAI_ONLY, LICENSED])
