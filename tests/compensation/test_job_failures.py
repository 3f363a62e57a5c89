"""Background jobs fail visibly and are never lost (core/jobs.py), for usage manifests, exports,
settlements and market-share distributions (bulk imports: tests/registry/test_import_failures.py).

- An exception in a job marks it ``failed`` with a ``failure_code`` and a message its owner reads in the API,
  the portal and the admin; staff retry it, and it continues without posting anything twice.
- A running job whose heartbeat went stale lost its worker: the sweep queues it again; one that keeps beating
  is left alone. A job whose worker dies every time is failed instead of looping.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from compensation.models import (
    Export,
    ExportStatus,
    LedgerEntry,
    ManifestLine,
    ManifestStatus,
    MarketShareDistribution,
    Settlement,
    Statement,
    UsageManifest,
)
from compensation.settlement.periods import books_closed
from compensation.tasks import usage_manifest_run
from compensation.usage import services as usage_module
from compensation.usage.manifests import content_hash
from core import jobs as jobs_module
from core.jobs import jobs_sweep
from core.tasks import QUEUE_LONG
from registry.models import AuditEvent, WorkImport
from tests.compensation.helpers import BOOK, MANIFESTS, assert_conserved, csv_bytes, line, manifest
from tests.helpers import seoul
from tests.registry.helpers import csv_rows, isbn

pytestmark = pytest.mark.django_db

INTERNAL = "An unexpected error stopped this job. The registry's staff have been told and can retry it."
INTERNAL_KO = "예상하지 못한 오류로 작업이 멈췄습니다."


def signed_in(user: Any, *, superuser: bool = False) -> Client:
    if superuser:
        user.is_superuser = True
        user.save()
    client = Client()
    client.force_login(user)
    return client


def breaking(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, *, at_call: int = 1) -> Callable[[], None]:
    """Make ``target.name`` raise a RuntimeError at its ``at_call``-th call; returns a function that mends it."""
    real = getattr(target, name)
    calls = {"n": 0}

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == at_call:
            raise RuntimeError(f"{name} broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, broken)
    return lambda: monkeypatch.setattr(target, name, real)


# --- Usage manifests -------------------------------------------------------------------------------


@pytest.fixture
def failed_manifest(
    lab_api, tariffs, settings, monkeypatch, django_capture_on_commit_callbacks
) -> tuple[UsageManifest, Callable[[], None]]:
    """Six lines in chunks of two; the task raises at the second chunk, after the first committed."""
    settings.USAGE_CHUNK_LINES = settings.USAGE_FIRST_CHUNK_LINES = 2
    mend = breaking(monkeypatch, usage_module, "_chunk_settle", at_call=2)
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(MANIFESTS, manifest([line(units=1000 + n) for n in range(6)]), format="json")
    assert response.status_code == 202, response.content
    return UsageManifest.objects.get(pk=response.json()["id"]), mend


def test_a_manifest_whose_task_raises_is_failed_with_a_code_and_a_message_its_lab_reads(
    failed_manifest, lab_api, lab, staff
):
    stored, _mend = failed_manifest

    stored.refresh_from_db()
    assert (stored.status, stored.failure_code, stored.lines_done) == (ManifestStatus.FAILED, "internal_error", 2)
    assert stored.failure_detail == "RuntimeError: _chunk_settle broke"
    assert stored.finished_at is not None

    # The API, in the reader's language; the error behind it is for staff only.
    body = lab_api.get(f"{MANIFESTS}/{stored.pk}", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (body["status"], body["failure_code"], body["failure_reason"]) == ("failed", "internal_error", INTERNAL)
    assert "RuntimeError" not in str(body)
    korean = lab_api.get(f"{MANIFESTS}/{stored.pk}", HTTP_ACCEPT_LANGUAGE="ko").json()
    assert korean["failure_reason"].startswith(INTERNAL_KO)

    # The portal's manifest page.
    page = signed_in(lab.memberships.get().user).get(f"/dashboard/manifests/{stored.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert escape(INTERNAL) in page.content.decode()
    assert "internal_error" in page.content.decode()

    # The admin shows the code, the message and the error behind it.
    admin_page = signed_in(staff, superuser=True).get(f"/admin/compensation/usagemanifest/{stored.pk}/change/")
    assert admin_page.status_code == 200
    assert "internal_error" in admin_page.content.decode()
    assert "RuntimeError: _chunk_settle broke" in admin_page.content.decode()

    failed = AuditEvent.objects.get(code="compensation.manifest.failed")
    assert (failed.data["code"], failed.data["detail"]) == ("internal_error", "RuntimeError: _chunk_settle broke")


def test_staff_retry_a_failed_manifest_and_it_finishes_without_posting_a_chunk_twice(
    failed_manifest, lab_api, staff_api, lab, django_capture_on_commit_callbacks
):
    stored, mend = failed_manifest
    mend()

    # The lab cannot retry its own manifest; staff can, once it has failed.
    assert lab_api.post(f"{MANIFESTS}/{stored.pk}/retry").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        retried = staff_api.post(f"{MANIFESTS}/{stored.pk}/retry")
    assert retried.status_code == 202, retried.content
    assert (retried.json()["status"], retried.json()["failure_code"]) == ("received", "")

    stored.refresh_from_db()
    assert (stored.status, stored.lines_done, stored.failure_code) == (ManifestStatus.PROCESSED, 6, "")
    keys = list(LedgerEntry.objects.values_list("idempotency_key", flat=True).order_by("pk"))
    assert keys == [f"usage:{stored.pk}:lines:{span}" for span in ("1-2", "3-4", "5-6")]
    assert ManifestLine.objects.filter(manifest=stored).values("line_no").annotate(n=Count("pk")).count() == 6
    assert_conserved(lab)
    assert AuditEvent.objects.filter(code="compensation.manifest.retried").count() == 1

    # A manifest that has not failed is not retried.
    again = staff_api.post(f"{MANIFESTS}/{stored.pk}/retry")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_failed")


def test_a_manifest_whose_stored_file_is_gone_fails_saying_so(lab_api, tariffs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = lab_api.post(MANIFESTS, manifest([line()]), format="json")
    stored = UsageManifest.objects.get(pk=response.json()["id"])
    assert stored.file.name
    stored.file.storage.delete(stored.file.name)

    usage_manifest_run.delay(stored.pk)

    body = lab_api.get(f"{MANIFESTS}/{stored.pk}", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (body["status"], body["failure_code"]) == ("failed", "input_missing")
    assert "missing from storage" in body["failure_reason"]


# --- Heartbeats and the sweep ----------------------------------------------------------------------


def _accepted(lab_api: Any, capture: Any, manifest_id: str = "run-1") -> UsageManifest:
    """A manifest accepted and queued, whose task has not run."""
    with capture(execute=False):
        response = lab_api.post(MANIFESTS, manifest([line()], manifest_id=manifest_id), format="json")
    assert response.status_code == 202
    return UsageManifest.objects.get(pk=response.json()["id"])


def _as_if_a_worker_holds_it(manifest: UsageManifest, *, beat_ago: timedelta, attempts: int = 1) -> None:
    # What a worker leaves on the row when it claims the manifest (and, if it died, stops refreshing).
    UsageManifest.objects.filter(pk=manifest.pk).update(
        status=ManifestStatus.PROCESSING,
        started_at=timezone.now() - timedelta(hours=2),
        heartbeat_at=timezone.now() - beat_ago,
        claimed_by="worker@elsewhere:123:1",
        attempts=attempts,
    )


def test_a_manifest_whose_worker_died_is_queued_again_by_the_sweep_and_finishes(
    lab_api, tariffs, settings, django_capture_on_commit_callbacks
):
    settings.JOB_STALE_SECONDS = 180
    stored = _accepted(lab_api, django_capture_on_commit_callbacks)
    _as_if_a_worker_holds_it(stored, beat_ago=timedelta(minutes=4))

    assert jobs_sweep() == 1

    stored.refresh_from_db()
    assert (stored.status, stored.lines_done, stored.attempts) == (ManifestStatus.PROCESSED, 1, 2)
    assert jobs_sweep() == 0


def test_a_manifest_that_keeps_beating_is_left_to_its_worker_however_long_it_runs(
    lab_api, tariffs, settings, django_capture_on_commit_callbacks
):
    settings.JOB_STALE_SECONDS = 180
    stored = _accepted(lab_api, django_capture_on_commit_callbacks)
    _as_if_a_worker_holds_it(stored, beat_ago=timedelta(seconds=20))

    # Neither the sweep nor a duplicate delivery of its task touches it: its worker is alive.
    assert jobs_sweep() == 0
    usage_manifest_run.delay(stored.pk)
    stored.refresh_from_db()
    assert (stored.status, stored.lines_done, stored.attempts) == (ManifestStatus.PROCESSING, 0, 1)

    # Four minutes on, its heartbeat is stale: now it is taken over.
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=4)) == 1
    stored.refresh_from_db()
    assert stored.status == ManifestStatus.PROCESSED


def test_a_manifest_whose_worker_dies_every_time_is_failed_instead_of_looping(
    lab_api, tariffs, settings, django_capture_on_commit_callbacks
):
    settings.JOB_MAX_ATTEMPTS = 3
    stored = _accepted(lab_api, django_capture_on_commit_callbacks)
    _as_if_a_worker_holds_it(stored, beat_ago=timedelta(minutes=10), attempts=3)

    assert jobs_sweep() == 1

    body = lab_api.get(f"{MANIFESTS}/{stored.pk}", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (body["status"], body["failure_code"], body["attempts"]) == ("failed", "too_many_attempts", 3)
    assert "stopped every time" in body["failure_reason"]
    assert AuditEvent.objects.get(code="compensation.manifest.failed").data["code"] == "too_many_attempts"


def test_a_manifest_the_broker_never_took_is_published_by_the_sweep(
    lab_api, tariffs, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(usage_manifest_run, "delay", broker_down)
    body = manifest([line()])
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(MANIFESTS, body, format="json")
    # Accepted all the same: the record and its file are committed; publishing is the sweep's to retry.
    assert response.status_code == 202, response.content
    stored = UsageManifest.objects.get(pk=response.json()["id"])
    assert (stored.status, stored.enqueued_at) == (ManifestStatus.RECEIVED, None)
    assert stored.file.name
    assert stored.file.storage.exists(stored.file.name)
    # The same upload again answers with it, file and all.
    with django_capture_on_commit_callbacks(execute=True):
        again = lab_api.post(MANIFESTS, body, format="json")
    assert (again.status_code, again.json()["id"]) == (200, stored.pk)

    # Within the grace a request has to hand its job over, the sweep leaves it alone.
    assert jobs_sweep() == 0
    monkeypatch.undo()
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)) == 1
    stored.refresh_from_db()
    assert stored.status == ManifestStatus.PROCESSED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_long_chunk_keeps_the_heartbeat_fresh_from_a_thread(lab_api, tariffs, settings, monkeypatch):
    settings.JOB_HEARTBEAT_SECONDS = 0.05
    commit = jobs_module.job_chunk_commit
    beats: list[Any] = []

    def slow_chunk(**kwargs: Any) -> bool:
        # The chunk waits (outside its transaction) until the heartbeat thread has refreshed the row twice.
        first = UsageManifest.objects.get(pk=kwargs["job_id"]).heartbeat_at
        deadline = time.monotonic() + 30
        while len(beats) < 2 and time.monotonic() < deadline:
            beat = UsageManifest.objects.get(pk=kwargs["job_id"]).heartbeat_at
            if beat != first and beat not in beats:
                beats.append(beat)
            time.sleep(0.02)
        return commit(**kwargs)

    monkeypatch.setattr(jobs_module, "job_chunk_commit", slow_chunk)
    # Without a test transaction around it, the upload's commit runs the task (eagerly) at once.
    response = lab_api.post(MANIFESTS, manifest([line()]), format="json")

    assert len(beats) == 2
    stored = UsageManifest.objects.get(pk=response.json()["id"])
    assert stored.status == ManifestStatus.PROCESSED
    assert not any(thread.name.startswith("heartbeat-") for thread in threading.enumerate())


# --- Exports ----------------------------------------------------------------------------------------


def test_a_failed_export_says_why_to_its_reader_and_staff_retry_it(
    settled, holder, holder_api, staff_api, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from compensation.documents import exports

    settings.EXPORT_SYNC_MAX_LINES = 1
    statement = settled["statement"]
    mend = breaking(monkeypatch, exports, "render")
    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.get(f"/api/v1/statements/{statement.pk}/export?format=csv", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 202

    polled = holder_api.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").json()
    assert (polled["status"], polled["failure_code"], polled["failure_reason"]) == (
        "failed",
        "internal_error",
        INTERNAL,
    )
    assert polled["download"] is None
    page = signed_in(holder.memberships.get().user).get(
        f"/dashboard/exports/{polled['id']}/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert escape(INTERNAL) in page.content.decode()

    mend()
    assert holder_api.post(f"/api/v1/exports/{polled['id']}/retry").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.post(f"/api/v1/exports/{polled['id']}/retry").status_code == 202
    export = Export.objects.get(pk=polled["id"])
    assert (export.status, export.failure_code) == (ExportStatus.DONE, "")
    assert holder_api.get(f"/api/v1/exports/{export.pk}").json()["download"] == f"/api/v1/exports/{export.pk}/file"


# --- Settlements --------------------------------------------------------------------------------------


def test_a_settlement_that_fails_after_its_statements_keeps_its_period_closed_and_a_retry_finishes_it(
    clock, world, report, settle, staff_api, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from compensation.settlement import services as settlements

    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 1
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "5000001"))
    clock(seoul(2026, 10, 3, 9))
    mend = breaking(monkeypatch, settlements, "_invoices_build")

    body = settle("2026-09-01", "2026-09-30")

    assert (body["status"], body["step"], body["failure_code"]) == ("failed", "statements", "internal_error")
    assert body["failure_reason"]
    # Its statements stand for the period: the books stay closed through its end.
    closed = books_closed()
    assert closed is not None
    assert closed.settlement_id == body["id"]

    mend()
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.post(f"/api/v1/settlements/{body['id']}/retry").status_code == 202
    settlement = Settlement.objects.get(pk=body["id"])
    assert (settlement.status, settlement.step, settlement.failure_code) == ("settled", "payouts", "")
    paid = Statement.objects.filter(settlement=settlement, payout_micro__gt=0).count()
    assert paid > 0
    assert LedgerEntry.objects.filter(kind="payout").count() == paid


def test_a_settlement_that_fails_before_its_statements_reopens_its_period(clock, world, report, settle, monkeypatch):
    from compensation.settlement import services as settlements

    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "5000001"))
    clock(seoul(2026, 10, 3, 9))
    breaking(monkeypatch, settlements, "_statements_build")

    body = settle("2026-09-01", "2026-09-30")

    assert (body["status"], body["step"], body["failure_code"]) == ("failed", "", "internal_error")
    assert books_closed() is None


# --- Market-share distributions ----------------------------------------------------------------------


def test_a_failed_distribution_leaves_nothing_behind_and_staff_retry_it(
    staff_api, monkeypatch, django_capture_on_commit_callbacks
):
    from compensation.settlement import distribution

    mend = breaking(monkeypatch, distribution, "_distribute")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_api.post("/api/v1/distributions", {"hold_month": "2000-01"}, format="json")
    assert response.status_code == 202
    body = staff_api.get("/api/v1/distributions", HTTP_ACCEPT_LANGUAGE="en").json()["results"][0]
    assert (body["status"], body["failure_code"], body["failure_reason"]) == ("failed", "internal_error", INTERNAL)
    assert AuditEvent.objects.get(code="compensation.distribution.failed").data["detail"] == (
        "RuntimeError: _distribute broke"
    )

    mend()
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.post(f"/api/v1/distributions/{body['id']}/retry").status_code == 202
    assert MarketShareDistribution.objects.get(pk=body["id"]).status == "done"


# --- A broker outage, with a Redis of the test's own and a real worker -------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redis_start(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return server
        time.sleep(0.05)
    server.kill()
    raise AssertionError(f"redis-server on port {port} did not start")


def _redis_stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=20)


@contextlib.contextmanager
def _broker_at(url: str) -> Iterator[None]:
    """Point this process's Celery app (which publishes the tasks) at ``url``, then back."""
    from config.celery import app as celery_app

    # kombu's pools are not in Celery's types.
    app: Any = celery_app

    def reset(*, close: bool) -> None:
        # kombu keeps one pool per broker URL for the whole process: only this test's own is closed.
        if close and app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    before = app.conf.broker_url
    app.conf.broker_url = url
    reset(close=False)
    try:
        yield
    finally:
        reset(close=True)
        app.conf.broker_url = before


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_uploads_accepted_while_the_broker_is_down_keep_their_files_and_are_processed_once_it_is_back(
    lab_api, holder_api, settings, monkeypatch, tmp_path
):
    from tests.workers import CeleryWorkers

    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_start(port)
    try:
        with _broker_at(url):
            # Redis stops in the middle of the manifest's upload, after its file is read and before it is stored.
            real_hash = content_hash  # the real one, which usage calls by the name it imported

            def broker_dies(*args: Any) -> str:
                if server.poll() is None:
                    _redis_stop(server)
                return real_hash(*args)

            monkeypatch.setattr(usage_module, "content_hash", broker_dies)
            from config.celery import app

            app.conf.task_always_eager = False
            rows = [
                [line_["scheme"], line_["value"], line_["units"], line_["unit"], line_["used_at"]] for line_ in [line()]
            ]
            upload = io.BytesIO(csv_bytes(rows))
            upload.name = "run.csv"
            fields = {"manifest_id": "outage-1", "model": "hangul-7b", "file": upload}
            response = lab_api.post(MANIFESTS, fields, format="multipart")
            assert server.poll() is not None  # the broker was down when the manifest was queued
            # Accepted, with its file; the publish that failed is the sweep's to do again.
            assert response.status_code == 202, response.content
            stored = UsageManifest.objects.get(pk=response.json()["id"])
            assert (stored.status, stored.enqueued_at) == (ManifestStatus.RECEIVED, None)
            assert stored.file.name
            assert stored.file.storage.exists(stored.file.name)
            upload.seek(0)
            again = lab_api.post(MANIFESTS, fields, format="multipart")
            assert (again.status_code, again.json()["id"]) == (200, stored.pk)
            assert stored.file.storage.exists(stored.file.name)
            # A bulk import while it is still down: the same.
            works = SimpleUploadedFile("works.csv", csv_rows(f"Outage,text,isbn:{isbn(77)}"))
            response = holder_api.post("/api/v1/works/bulk", {"file": works}, format="multipart")
            assert response.status_code == 202, response.content
            work_import = WorkImport.objects.get(pk=response.json()["id"])
            assert work_import.enqueued_at is None
            assert work_import.file.name
            assert work_import.file.storage.exists(work_import.file.name)

            # The broker comes back (empty: it kept nothing), a worker starts, and the sweep publishes both.
            server = _redis_start(port)
            with CeleryWorkers(tmp_path, REDIS_URL=url) as workers:
                workers.start("worker", queue=QUEUE_LONG)
                assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)) == 2
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    stored.refresh_from_db()
                    work_import.refresh_from_db()
                    if stored.status == ManifestStatus.PROCESSED and work_import.status == "processed":
                        break
                    time.sleep(0.2)
                assert (stored.status, work_import.status) == ("processed", "processed"), workers.log()
            assert stored.enqueued_at is not None
            assert ManifestLine.objects.filter(manifest=stored).count() == 1
            assert work_import.rows_registered == 1
    finally:
        if server.poll() is None:
            _redis_stop(server)


def test_a_settlement_and_an_export_asked_for_while_the_broker_is_down_are_run_once_it_is_back(
    clock, world, report, staff_api, holder, holder_api, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from compensation import tasks

    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 1
    settings.EXPORT_SYNC_MAX_LINES = 0
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "5000001"))
    clock(seoul(2026, 10, 3, 9))

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.settlement_run, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_api.post("/api/v1/settlements", {"period_start": "2026-09-01", "period_end": "2026-09-30"})
    assert response.status_code == 202, response.content
    settlement = Settlement.objects.get(pk=response.json()["id"])
    assert (settlement.status, settlement.enqueued_at) == ("pending", None)

    monkeypatch.undo()
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)) == 1
    settlement.refresh_from_db()
    assert settlement.status == "settled"

    statement = Statement.objects.get(settlement=settlement, holder=holder)
    monkeypatch.setattr(tasks.export_run, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.get(f"/api/v1/statements/{statement.pk}/export?format=csv")
    assert response.status_code == 202, response.content
    assert holder_api.get(response["Location"]).json()["status"] == "pending"

    monkeypatch.undo()
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)) == 1
    assert holder_api.get(response["Location"]).json()["status"] == "done"
