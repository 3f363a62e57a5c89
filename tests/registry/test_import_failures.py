"""A bulk import fails visibly, is retried by staff, and is found by its heartbeat, not its upload time
(the shared job lifecycle, core/jobs.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.html import escape

from core.jobs import jobs_sweep
from registry import services
from registry.imports import work_imports_resume_stalled
from registry.models import AuditEvent, ImportStatus, Work, WorkImport
from registry.tasks import jobs_sweep as registry_jobs_sweep
from registry.tasks import work_import_run, work_imports_resume
from tests.helpers import signed_in
from tests.registry.helpers import bad_isbn, csv_rows, isbn

pytestmark = pytest.mark.django_db

BULK = "/api/v1/works/bulk"
INTERNAL = "An unexpected error stopped this job. The registry's staff have been told and can retry it."


def works_file(first: int = 1) -> SimpleUploadedFile:
    rows = (f"W{first},text,isbn:{isbn(first)}", f"B,text,isbn:{bad_isbn(first + 1)}", f"W,text,isbn:{isbn(first + 2)}")
    return SimpleUploadedFile("works.csv", csv_rows(*rows))


def post_import(client: Any, capture: Any, *, execute: bool = True, first: int = 1) -> WorkImport:
    with capture(execute=execute):
        response = client.post(BULK, {"file": works_file(first)}, format="multipart")
    assert response.status_code == 202, response.content
    return WorkImport.objects.get(pk=response.json()["id"])


@pytest.fixture
def broken_registration(monkeypatch: pytest.MonkeyPatch) -> Any:
    real = services.works_register

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("registration broke")

    monkeypatch.setattr(services, "works_register", broken)
    return lambda: monkeypatch.setattr(services, "works_register", real)


def test_an_import_whose_task_raises_is_failed_with_a_code_and_a_message_its_holder_reads(
    holder_api, owner, holder, staff, broken_registration, django_capture_on_commit_callbacks
):
    work_import = post_import(holder_api, django_capture_on_commit_callbacks)

    body = holder_api.get(f"/api/v1/imports/{work_import.pk}", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (body["status"], body["failure_code"], body["failure_reason"]) == ("failed", "internal_error", INTERNAL)
    assert "RuntimeError" not in str(body)
    assert Work.objects.count() == 0

    page = signed_in(owner).get(f"/dashboard/imports/{work_import.pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert escape(INTERNAL) in page.content.decode()
    status = signed_in(owner).get(f"/dashboard/imports/{work_import.pk}/status.json", HTTP_ACCEPT_LANGUAGE="en").json()
    assert (status["failure_code"], status["finished"]) == ("internal_error", True)

    staff.is_superuser = True
    staff.save()
    admin_page = signed_in(staff).get(f"/admin/registry/workimport/{work_import.pk}/change/")
    assert admin_page.status_code == 200
    assert "RuntimeError: registration broke" in admin_page.content.decode()
    assert AuditEvent.objects.get(code="registry.import.failed").data["code"] == "internal_error"


def test_staff_retry_failed_imports_from_the_admin_and_they_finish(
    holder_api, staff, broken_registration, django_capture_on_commit_callbacks
):
    failed = post_import(holder_api, django_capture_on_commit_callbacks)
    broken_registration()
    done = post_import(holder_api, django_capture_on_commit_callbacks, first=10)
    assert done.status == ImportStatus.PROCESSED
    staff.is_superuser = True
    staff.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(staff).post(
            "/admin/registry/workimport/",
            {"action": "retry_failed", "_selected_action": [failed.pk, done.pk]},
            follow=True,
            HTTP_ACCEPT_LANGUAGE="en",
        )

    assert response.status_code == 200
    said = [str(message) for message in get_messages(response.wsgi_request)]
    assert said == ["1 job was queued again.", "1 job was not retried: only failed jobs are."]
    failed.refresh_from_db()
    assert (failed.status, failed.failure_code, failed.rows_registered, failed.rows_failed) == ("processed", "", 2, 1)
    assert AuditEvent.objects.filter(code="registry.import.retried").count() == 1


def test_only_staff_retry_an_import_through_the_api(
    holder_api, staff_api, broken_registration, django_capture_on_commit_callbacks
):
    failed = post_import(holder_api, django_capture_on_commit_callbacks)
    broken_registration()

    assert holder_api.post(f"/api/v1/imports/{failed.pk}/retry").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_api.post(f"/api/v1/imports/{failed.pk}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "received"
    failed.refresh_from_db()
    assert failed.status == ImportStatus.PROCESSED
    assert staff_api.post("/api/v1/imports/999999/retry").status_code == 404


def test_a_long_import_that_keeps_beating_is_not_queued_again_however_old_its_upload(
    holder_api, settings, django_capture_on_commit_callbacks
):
    settings.JOB_STALE_SECONDS = 180
    work_import = post_import(holder_api, django_capture_on_commit_callbacks, execute=False)
    # Uploaded two hours ago, still running on a worker elsewhere that refreshed its heartbeat just now.
    WorkImport.objects.filter(pk=work_import.pk).update(
        created_at=timezone.now() - timedelta(hours=2),
        status=ImportStatus.PROCESSING,
        started_at=timezone.now() - timedelta(hours=2),
        heartbeat_at=timezone.now() - timedelta(seconds=10),
        claimed_by="worker@elsewhere:1:1",
        attempts=1,
        enqueued_at=timezone.now() - timedelta(hours=2),
    )

    assert work_imports_resume_stalled() == 0
    assert jobs_sweep() == 0
    work_import_run.delay(work_import.pk)  # a duplicate delivery leaves it to that worker
    work_import.refresh_from_db()
    assert (work_import.status, work_import.rows_done, work_import.attempts) == (ImportStatus.PROCESSING, 0, 1)

    # Once its heartbeat is older than JOB_STALE_SECONDS, its worker is taken for dead and it is queued again.
    assert work_imports_resume_stalled(stale_seconds=5) == 1
    work_import.refresh_from_db()
    assert (work_import.status, work_import.rows_registered, work_import.attempts) == (ImportStatus.PROCESSED, 2, 2)


def test_an_import_the_broker_did_not_take_keeps_its_file_and_is_published_by_the_sweep(
    holder_api, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(work_import_run, "delay", broker_down)
    work_import = post_import(holder_api, django_capture_on_commit_callbacks)
    assert (work_import.status, work_import.enqueued_at) == (ImportStatus.RECEIVED, None)
    assert work_import.file.name
    assert work_import.file.storage.exists(work_import.file.name)

    monkeypatch.undo()
    assert jobs_sweep(now=timezone.now() + timedelta(minutes=1)) == 1
    work_import.refresh_from_db()
    assert (work_import.status, work_import.rows_registered) == (ImportStatus.PROCESSED, 2)


def test_the_beat_task_leaves_an_import_uploaded_long_ago_to_the_worker_that_still_beats(
    holder_api, settings, django_capture_on_commit_callbacks
):
    # The bug of the upload-time resume (issue 13): a day-old import, a third done, whose worker beat 10 s ago.
    settings.JOB_STALE_SECONDS = 180
    work_import = post_import(holder_api, django_capture_on_commit_callbacks, execute=False)
    long_ago = timezone.now() - timedelta(days=1)
    running = {
        "status": ImportStatus.PROCESSING,
        "created_at": long_ago,
        "started_at": long_ago,
        "enqueued_at": long_ago,
        "heartbeat_at": timezone.now() - timedelta(seconds=10),
        "claimed_by": "worker@elsewhere:1:1",
        "attempts": 1,
        "rows_total": 3,
        "rows_done": 1,
        "rows_registered": 1,
    }
    WorkImport.objects.filter(pk=work_import.pk).update(**running)

    assert work_imports_resume.delay().get() == 0
    assert registry_jobs_sweep.delay().get() == 0

    work_import.refresh_from_db()
    assert {name: getattr(work_import, name) for name in running} == running
    assert not AuditEvent.objects.filter(code__in=["registry.import.failed", "registry.import.processed"]).exists()


def test_a_chunk_whose_cursor_another_worker_moved_is_not_registered_and_the_worker_stops(
    holder_api, monkeypatch, django_capture_on_commit_callbacks
):
    work_import = post_import(holder_api, django_capture_on_commit_callbacks, execute=False)
    real = services.work_draft_build
    moved: list[int] = []

    def other_worker_commits_first(**kwargs: Any) -> Any:
        # While this worker drafts its first chunk (outside the lock), another one commits the rows.
        if not moved:
            moved.append(WorkImport.objects.filter(pk=work_import.pk).update(rows_done=3))
        return real(**kwargs)

    monkeypatch.setattr(services, "work_draft_build", other_worker_commits_first)
    work_import_run.delay(work_import.pk)

    work_import.refresh_from_db()
    assert moved == [1]
    assert (work_import.status, work_import.rows_done, work_import.rows_registered) == (ImportStatus.PROCESSING, 3, 0)
    assert not Work.objects.exists()
    assert not work_import.row_errors.exists()
