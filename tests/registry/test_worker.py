"""A bulk import queued through Redis and processed by a real Celery worker process."""

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
