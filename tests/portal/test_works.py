"""A rights holder's works through the portal: register one, import many, a work's page, fingerprints."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import AuditEvent, Identifier, OwnershipClaim, Work, WorkImport
from tests.factories import WorkFactory

pytestmark = pytest.mark.django_db


def _work_post(**overrides: str) -> dict[str, str]:
    data = {
        "title": "바람의 노래",
        "kind": "text",
        "creators": "김작가\nLee Writer",
        "language": "ko",
        "creation_year": "2020",
        "share_percent": "50",
        "identifiers-TOTAL_FORMS": "2",
        "identifiers-INITIAL_FORMS": "0",
        "identifiers-MIN_NUM_FORMS": "0",
        "identifiers-MAX_NUM_FORMS": "20",
        "identifiers-0-scheme": "isbn",
        "identifiers-0-value": "978-89-364-3402-1",
        "identifiers-1-scheme": "url",
        "identifiers-1-value": "https://Books.Example.kr/wind",
    }
    data.update(overrides)
    return data


def test_registering_a_work_calls_the_same_service_as_the_api(owner_client, holder):
    response = owner_client.post("/dashboard/works/new/", _work_post())
    assert response.status_code == 302
    work = Work.objects.get()
    assert response["Location"] == f"/dashboard/works/{work.pk}/"
    assert work.creators == ["김작가", "Lee Writer"]
    assert sorted(Identifier.objects.values_list("scheme", "value")) == [
        ("isbn", "9788936434021"),
        ("url", "https://books.example.kr/wind"),
    ]
    claim = OwnershipClaim.objects.get()
    assert (claim.holder, claim.share_bp, claim.status) == (holder, 5000, "pending")
    assert AuditEvent.objects.filter(code="registry.work.registered", actor_party=holder).count() == 1
    page = owner_client.get(response["Location"]).content.decode()
    assert "바람의 노래" in page
    assert "50%" in page


def test_a_wrong_identifier_is_shown_on_its_row_with_the_reason_and_nothing_typed_is_lost(owner_client):
    response = owner_client.post(
        "/dashboard/works/new/", _work_post(**{"identifiers-1-scheme": "isbn", "identifiers-1-value": "9788936434022"})
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="id_identifiers-1-value_error"' in body
    assert "check digit" in body
    assert 'value="9788936434022"' in body
    assert 'value="바람의 노래"' in body
    assert "김작가" in body
    assert not Work.objects.exists()


def test_an_identifier_of_another_work_points_to_that_work(owner_client, other_holder):

    existing = WorkFactory(holder=other_holder, identifiers=[("isbn", "9788936434021")])
    response = owner_client.post("/dashboard/works/new/", _work_post())
    assert response.status_code == 200
    assert f'href="/works/{existing.pk}"' in response.content.decode()
    assert Work.objects.count() == 1


def test_identifier_check_answers_as_you_type(owner_client, book):
    check = owner_client.get("/dashboard/works/check-identifier", {"scheme": "isbn", "value": "89-364-3402-X"}).json()
    assert check["valid"] is False
    assert check["code"] == "invalid_checksum"
    check = owner_client.get(
        "/dashboard/works/check-identifier", {"scheme": "isbn", "value": "978-89-364-3402-1"}
    ).json()
    assert check == {"valid": True, "taken": True, "key": "isbn:9788936434021", "message": check["message"]}
    check = owner_client.get("/dashboard/works/check-identifier", {"scheme": "doi", "value": "10.1000/ABC"}).json()
    assert (check["valid"], check["taken"], check["key"]) == (True, False, "doi:10.1000/abc")


def test_work_list_searches_titles_and_identifiers_and_paginates(owner_client, holder):

    for n in range(30):
        WorkFactory(holder=holder, identifiers=[("url", f"https://books.example.kr/{n}")])
    body = owner_client.get("/dashboard/works/").content.decode()
    assert "30 works" in body
    assert "Page 1 of 2" in body
    body = owner_client.get("/dashboard/works/", {"q": "url:https://BOOKS.example.kr/7"}).content.decode()
    assert "1 work" in body
    assert "https://books.example.kr/7" in body


def test_bulk_import_registers_good_rows_and_reports_bad_ones(owner_client, holder, django_capture_on_commit_callbacks):
    csv = (
        b"title,kind,identifiers\r\n"
        b"Good one,text,isbn:9788936434021\r\n"
        b"Bad one,text,isbn:9788936434022\r\n"
        b"Also good,image,url:https://img.example.kr/1\r\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/dashboard/imports/new/", {"file": SimpleUploadedFile("works.csv", csv, "text/csv")}
        )
    assert response.status_code == 302
    work_import = WorkImport.objects.get()
    assert response["Location"] == f"/dashboard/imports/{work_import.pk}/"
    state = owner_client.get(f"/dashboard/imports/{work_import.pk}/status.json").json()
    assert (state["status"], state["percent"], state["rows_registered"], state["rows_failed"]) == (
        "processed",
        100,
        2,
        1,
    )
    assert state["errors"][0]["row"] == 3
    page = owner_client.get(response["Location"]).content.decode()
    assert "Good one" in page  # the preview of the first rows
    assert "check digit" in page
    errors = b"".join(owner_client.get(f"/dashboard/imports/{work_import.pk}/errors.csv").streaming_content).decode()
    assert '3,"identifiers[0].value","invalid_checksum"' in errors


def test_a_file_with_a_wrong_header_is_refused_on_the_file_field(owner_client):
    response = owner_client.post(
        "/dashboard/imports/new/", {"file": SimpleUploadedFile("works.csv", b"name,type\r\nx,y\r\n", "text/csv")}
    )
    assert response.status_code == 200
    assert 'id="id_file_error"' in response.content.decode()
    assert not WorkImport.objects.exists()


def test_a_files_sha256_is_attached_to_a_work(owner_client, book):
    digest = hashlib.sha256(b"the work's file").hexdigest()
    response = owner_client.post(
        f"/dashboard/works/{book.pk}/identifiers/", {"scheme": "sha256", "value": digest.upper()}
    )
    assert response.status_code == 302
    assert Identifier.objects.filter(work=book, scheme="sha256", value=digest).exists()
    assert AuditEvent.objects.filter(code="registry.work.identifier_added").count() == 1
    response = owner_client.post(f"/dashboard/works/{book.pk}/identifiers/", {"scheme": "sha256", "value": "abc"})
    assert response.status_code == 400
    assert 'id="id_value_error"' in response.content.decode()


def test_the_dashboard_counts_what_the_holder_has(owner_client, book, holder):

    WorkFactory(holder=holder, identifiers=[("isbn", "9780306406157")])
    body = owner_client.get("/dashboard/").content.decode()
    assert "works registered" in body
    assert "Work registered" in body  # recent activity
    assert "<strong>2</strong>" in body


def test_a_taken_identifier_leads_to_claiming_a_share_of_that_work(owner_client, holder, other_holder):

    existing = WorkFactory(holder=other_holder, identifiers=[("isbn", "9788936434021")], share_bp=6000)
    page = owner_client.post("/dashboard/works/new/", _work_post()).content.decode()
    assert f'href="/dashboard/works/{existing.pk}/claim/"' in page
    response = owner_client.post(f"/dashboard/works/{existing.pk}/claim/", {"share_percent": "40"})
    assert response.status_code == 302
    claim = OwnershipClaim.objects.get(work=existing, holder=holder)
    assert (claim.share_bp, claim.status) == (4000, "pending")
    response = owner_client.post(f"/dashboard/works/{existing.pk}/claim/", {"share_percent": "40"})
    assert "You already have a claim on this work." in response.content.decode()
