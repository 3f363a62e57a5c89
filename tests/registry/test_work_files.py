"""A work's file: stored at upload, fingerprinted by a job, its SHA-256 and ISCC-CODE added to the work."""

from __future__ import annotations

import hashlib
import io
import wave
from datetime import timedelta
from typing import Any

import iscc_core
import numpy as np
import pytest
from django.test import Client
from django.utils import timezone

from registry import fingerprints, work_files
from registry.models import AuditEvent, Identifier, Work, WorkFile, WorkFileStatus

pytestmark = pytest.mark.django_db

TEXT = ("저작권자는 AI 학습을 거부할 수 있습니다. Rights holders may refuse AI training.\n" * 200).encode()


@pytest.fixture
def session_client(owner: Any, holder: Any) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def upload(data: bytes, name: str) -> io.BytesIO:
    file = io.BytesIO(data)
    file.name = name
    return file


def register_with_file(client: Any, data: bytes, *, kind: str = "text", name: str = "work.txt", **extra: Any) -> Any:
    # In English: the job writes its failure reason in the uploader's language.
    return client.post(
        "/api/v1/works",
        {"title": "원고", "kind": kind, "file": upload(data, name), **extra},
        format="multipart",
        HTTP_ACCEPT_LANGUAGE="en",
    )


def media_files(settings: Any) -> list[Any]:
    media = settings.MEDIA_ROOT
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def tone_wav(seconds: float = 6.0, seed: int = 3) -> bytes:
    rate = 22050
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * (300 + 100 * t) * t)
    step = rate // 4
    for start in range(0, len(t), step):
        part = t[start : start + step] - t[start]
        frequency = 220 * 2 ** (int(rng.integers(0, 12)) / 12)
        signal[start : start + step] += np.sin(2 * np.pi * frequency * part) * np.exp(-part * 4)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((signal / np.abs(signal).max() * 0.8 * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def test_upload_is_accepted_at_once_and_the_job_adds_the_fingerprints(
    holder_api, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = register_with_file(holder_api, TEXT)

    assert response.status_code == 202, response.content
    body = response.json()
    location = response["Location"]
    (file_body,) = body["files"]
    assert location == f"/api/v1/works/{body['id']}/files/{file_body['id']}" == file_body["url"]
    assert (file_body["status"], file_body["bytes_done"], file_body["size"]) == ("queued", 0, len(TEXT))
    # Nothing is fingerprinted in the request: the work has no identifier yet, the file waits in storage.
    assert body["identifiers"] == []
    assert len(media_files(settings)) == 1
    assert len(queued) == 1

    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()

    done = holder_api.get(location).json()
    assert done["status"] == "done", done
    assert (done["bytes_done"], done["progress"]) == (len(TEXT), 1.0)
    assert done["sha256"] == hashlib.sha256(TEXT).hexdigest()
    assert done["iscc"].startswith("ISCC:")
    assert [(i["scheme"], i["outcome"], i["work_id"]) for i in done["identifiers"]] == [
        ("sha256", "added", body["id"]),
        ("iscc", "added", body["id"]),
    ]
    work = Work.objects.get(pk=body["id"])
    assert set(work.identifiers.values_list("scheme", "value")) == {
        ("sha256", done["sha256"]),
        ("iscc", done["iscc"]),
    }
    # Added through the one service that adds identifiers: its audit events, then the job's.
    assert AuditEvent.objects.filter(code="registry.work.identifier_added").count() == 2
    assert AuditEvent.objects.filter(code="registry.work_file.fingerprinted").count() == 1
    assert media_files(settings) == []


def test_a_file_is_added_to_a_registered_work(holder_api, django_capture_on_commit_callbacks):
    work = holder_api.post(
        "/api/v1/works",
        {"title": "Poem", "kind": "text", "identifiers": [{"scheme": "url", "value": "https://poems.example.kr/1"}]},
        format="json",
    ).json()

    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.post(
            f"/api/v1/works/{work['id']}/files", {"file": upload(TEXT, "poem.txt")}, format="multipart"
        )

    assert response.status_code == 202, response.content
    assert response["Location"] == f"/api/v1/works/{work['id']}/files/{response.json()['id']}"
    assert holder_api.get(response["Location"]).json()["status"] == "done"
    assert Identifier.objects.filter(work_id=work["id"]).count() == 3


def test_progress_moves_while_the_file_is_read(holder_api, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(fingerprints, "_CHUNK_SIZE", 1024)
    monkeypatch.setattr(work_files, "_PROGRESS_EVERY_SECONDS", 0)
    seen: list[tuple[str, int]] = []
    original = fingerprints.fingerprint_file

    def watched(**options: Any) -> fingerprints.Fingerprints:
        report = options["on_progress"]

        def on_progress(done: int) -> None:
            report(done)
            seen.append(WorkFile.objects.values_list("status", "bytes_done").get())

        return original(**{**options, "on_progress": on_progress})

    monkeypatch.setattr(work_files, "fingerprint_file", watched)

    with django_capture_on_commit_callbacks(execute=True):
        register_with_file(holder_api, TEXT)

    assert len(seen) == -(-len(TEXT) // 1024)
    assert {status for status, _done in seen} == {WorkFileStatus.PROCESSING}
    done = [bytes_done for _status, bytes_done in seen]
    assert done == sorted(done)
    assert (done[0], done[-1]) == (1024, len(TEXT))


@pytest.mark.parametrize(
    ("data", "kind", "name", "reason"),
    [
        ("한국어 원고".encode("euc-kr"), "text", "euc-kr.txt", "UTF-8"),
        (b"\x89PNG\r\n\x1a\n but not really", "image", "broken.png", "image file could not be read"),
    ],
)
def test_an_unreadable_file_fails_the_job_with_its_reason(
    holder_api, session_client, settings, data, kind, name, reason, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register_with_file(holder_api, data, kind=kind, name=name)

    assert response.status_code == 202
    failed = holder_api.get(response["Location"]).json()
    assert (failed["status"], failed["failure_code"]) == ("failed", "unreadable_file")
    assert reason in failed["failure_reason"]
    assert Identifier.objects.count() == 0
    # The file itself was the problem: a retry cannot help, so it is not kept.
    assert media_files(settings) == []
    page = session_client.get(f"/dashboard/works/{response.json()['id']}/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert reason in page.content.decode()


def test_a_file_over_the_limit_is_refused_and_nothing_is_stored(holder_api, settings):
    settings.WORK_FILE_MAX_UPLOAD_BYTES = 1024

    response = register_with_file(holder_api, b"x" * 1025)

    assert response.status_code == 413, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("file_too_large", "file")
    assert Work.objects.count() == 0
    assert WorkFile.objects.count() == 0
    assert media_files(settings) == []


def test_a_fingerprint_held_by_another_work_is_reported_on_the_job(
    holder_api, other_holder_api, session_client, django_capture_on_commit_callbacks
):
    theirs = other_holder_api.post(
        "/api/v1/works",
        {
            "title": "Theirs",
            "kind": "text",
            "identifiers": [{"scheme": "sha256", "value": hashlib.sha256(TEXT).hexdigest()}],
        },
        format="json",
    ).json()

    with django_capture_on_commit_callbacks(execute=True):
        response = register_with_file(holder_api, TEXT)

    job = holder_api.get(response["Location"]).json()
    assert job["status"] == "done"
    outcomes = {i["scheme"]: (i["outcome"], i["work_id"]) for i in job["identifiers"]}
    assert outcomes == {"sha256": ("taken", theirs["id"]), "iscc": ("added", response.json()["id"])}
    assert list(Identifier.objects.filter(work_id=response.json()["id"]).values_list("scheme", flat=True)) == ["iscc"]
    page = session_client.get(f"/dashboard/works/{response.json()['id']}/", HTTP_ACCEPT_LANGUAGE="en")
    assert f"held by another work (no. {theirs['id']})" in page.content.decode()


def test_running_the_job_again_changes_nothing(holder_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = register_with_file(holder_api, TEXT)
    work_file = WorkFile.objects.get()
    first = holder_api.get(response["Location"]).json()
    # A worker that died after adding the identifiers and before finishing: the sweep queues the job again.
    WorkFile.objects.filter(pk=work_file.pk).update(
        status=WorkFileStatus.PROCESSING, heartbeat_at=timezone.now() - timedelta(hours=1), file="x"
    )
    (tmp := work_file.file.storage).save("x", io.BytesIO(TEXT))

    work_files.work_file_fingerprint(work_file_id=work_file.pk)
    work_files.work_file_fingerprint(work_file_id=work_file.pk)

    again = holder_api.get(response["Location"]).json()
    assert again["status"] == "done"
    assert again["identifiers"] == first["identifiers"]
    assert Identifier.objects.count() == 2
    assert not tmp.exists("x")


def test_an_outsider_cannot_add_a_file_to_someone_elses_work(holder_api, other_holder_api):
    work = holder_api.post(
        "/api/v1/works",
        {"title": "Poem", "kind": "text", "identifiers": [{"scheme": "url", "value": "https://poems.example.kr/2"}]},
        format="json",
    ).json()

    response = other_holder_api.post(
        f"/api/v1/works/{work['id']}/files", {"file": upload(TEXT, "x.txt")}, format="multipart"
    )

    assert response.status_code == 404
    assert WorkFile.objects.count() == 0


@pytest.mark.skipif(fingerprints.fpcalc_path() is None, reason="fpcalc (libchromaprint-tools) missing")
def test_audio_gets_an_audio_code(holder_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = register_with_file(holder_api, tone_wav(), kind="audio", name="song.wav")

    job = holder_api.get(response["Location"]).json()
    assert job["status"] == "done", job
    assert job["audio_code_missing"] == ""
    kinds = {iscc_core.Code(unit).subtype for unit in iscc_core.iscc_decompose(job["iscc"])}
    assert iscc_core.ST_CC.AUDIO in kinds


def test_audio_without_fpcalc_finishes_with_data_and_instance_codes_and_says_why(
    holder_api, session_client, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(fingerprints, "fpcalc_path", lambda: None)

    with django_capture_on_commit_callbacks(execute=True):
        response = register_with_file(holder_api, tone_wav(2), kind="audio", name="song.wav")

    job = holder_api.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").json()
    assert job["status"] == "done"
    assert job["audio_code_missing"] == "fpcalc_missing"
    assert "fpcalc" in job["audio_code_missing_reason"]
    assert {i["scheme"] for i in job["identifiers"]} == {"sha256", "iscc"}
    page = session_client.get(f"/dashboard/works/{response.json()['id']}/", HTTP_ACCEPT_LANGUAGE="en")
    assert "Audio-Code was not computed" in page.content.decode()


def test_the_deployment_check_warns_without_fpcalc(monkeypatch):
    from registry import checks

    monkeypatch.setattr(checks, "fpcalc_path", lambda: None)

    (warning,) = checks.fpcalc_installed()

    assert warning.id == "registry.W001"


def test_the_portal_uploads_a_file_and_shows_its_job(session_client, holder_api, django_capture_on_commit_callbacks):
    work = holder_api.post(
        "/api/v1/works",
        {"title": "Poem", "kind": "text", "identifiers": [{"scheme": "url", "value": "https://poems.example.kr/3"}]},
        format="json",
    ).json()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = session_client.post(
            f"/dashboard/works/{work['id']}/files/", {"file": upload(TEXT, "poem.txt")}, HTTP_ACCEPT_LANGUAGE="en"
        )

    assert response.status_code == 302
    work_file = WorkFile.objects.get()
    assert (work_file.work_id, work_file.status) == (work["id"], WorkFileStatus.QUEUED)
    page = session_client.get(f"/dashboard/works/{work['id']}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'<progress max="{len(TEXT)}" value="0">' in page
    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()
    page = session_client.get(f"/dashboard/works/{work['id']}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "sha256 is an identifier of this work." in page
