"""Bulk imports and work files queued through Redis and processed by a real Celery worker process."""

from __future__ import annotations

import io
import time

import pytest

from core.tasks import QUEUE_LONG
from registry.models import ImportStatus, Work, WorkImport
from tests.workers import CeleryWorkers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def real_worker(tmp_path):
    """Start the Procfile's worker of the long queue against the test database and Redis; stop it afterwards."""
    with CeleryWorkers(tmp_path) as workers:
        yield workers.start(queue=QUEUE_LONG)


def test_bulk_import_is_processed_by_a_real_worker(real_worker, holder_api, tmp_path):
    content = "title,kind,url\n" + "".join(f"Poem {n},text,https://poems.example.kr/{n}\n" for n in range(250))
    content += "Broken,text,ftp://poems.example.kr/x\n"
    upload = io.BytesIO(content.encode())
    upload.name = "poems.csv"

    accepted = holder_api.post("/api/v1/works/bulk", {"file": upload}, format="multipart")

    assert accepted.status_code == 202, accepted.content
    import_id = accepted.json()["id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = WorkImport.objects.get(pk=import_id).status
        if status in (ImportStatus.PROCESSED, ImportStatus.FAILED):
            break
        assert real_worker.poll() is None, (tmp_path / "worker.log").read_text()
        time.sleep(0.5)
    progress = holder_api.get(f"/api/v1/imports/{import_id}").json()
    assert progress["status"] == ImportStatus.PROCESSED, (tmp_path / "worker.log").read_text()
    assert (progress["rows_total"], progress["rows_registered"], progress["rows_failed"]) == (251, 250, 1)
    assert progress["progress"] == 1.0
    assert progress["row_errors"][0]["row"] == 252
    assert Work.objects.count() == 250


def test_work_file_is_fingerprinted_by_a_real_worker(real_worker, holder_api, tmp_path):
    content = ("실제 작업자가 지문을 계산하는 원고입니다. A manuscript a real worker fingerprints.\n" * 2000).encode()
    upload = io.BytesIO(content)
    upload.name = "manuscript.txt"

    started = time.monotonic()
    accepted = holder_api.post("/api/v1/works", {"title": "원고", "kind": "text", "file": upload}, format="multipart")
    answered_in = time.monotonic() - started

    assert accepted.status_code == 202, accepted.content
    # The request only stores the file: it answers before the worker's fingerprinting.
    assert answered_in < 5
    location = accepted["Location"]
    deadline = time.monotonic() + 90
    job = holder_api.get(location).json()
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        assert real_worker.poll() is None, (tmp_path / "worker.log").read_text()
        time.sleep(0.5)
        job = holder_api.get(location).json()
    assert job["status"] == "done", (job, (tmp_path / "worker.log").read_text())
    assert (job["bytes_done"], job["progress"]) == (len(content), 1.0)
    work = holder_api.get(f"/api/v1/works/{accepted.json()['id']}").json()
    assert {i["scheme"]: i["value"] for i in work["identifiers"]} == {"sha256": job["sha256"], "iscc": job["iscc"]}
    assert not any(p.is_file() for p in (tmp_path / "media").rglob("*"))


def test_a_real_worker_reads_a_signed_c2pa_declaration(real_worker, holder_api, tmp_path):
    from tests.registry.test_embedded_rights import c2pa_signed_jpeg

    upload = io.BytesIO(c2pa_signed_jpeg({"ai_training": "notAllowed"}))
    upload.name = "photo.jpg"

    accepted = holder_api.post("/api/v1/works", {"title": "사진", "kind": "image", "file": upload}, format="multipart")

    assert accepted.status_code == 202, accepted.content
    location = accepted["Location"]
    deadline = time.monotonic() + 90
    job = holder_api.get(location).json()
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        assert real_worker.poll() is None, (tmp_path / "worker.log").read_text()
        time.sleep(0.5)
        job = holder_api.get(location).json()
    assert job["status"] == "done", (job, (tmp_path / "worker.log").read_text())
    rights = job["embedded_rights"]
    assert rights["read"] == ["cawg:ai_training=notAllowed"]
    assert rights["c2pa"]["validation_state"] == "Valid"
    assert rights["refusal_offer"]["body"] == {"scope": "work", "work": job["work"], "purposes": ["train-ai"]}
