"""Bulk registration of works from CSV, XLSX and JSON Lines files (the service and its worker)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from openpyxl import Workbook

from core.actors import Actor
from core.errors import InvalidInput, NotPermitted
from registry import imports, services
from registry.imports import (
    import_format_detect,
    work_import_create,
    work_import_process,
    work_import_rows,
    work_imports_resume_stalled,
)
from registry.models import (
    AuditEvent,
    ClaimStatus,
    Identifier,
    ImportFormat,
    ImportStatus,
    OwnershipClaim,
    Work,
    WorkImport,
    WorkImportRowError,
)
from tests.registry.helpers import HEADER, bad_isbn, csv_rows, isbn

pytestmark = pytest.mark.django_db


def upload(name: str, content: bytes, content_type: str = "") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


@pytest.fixture
def actor(owner, holder):
    return Actor(user=owner, party=holder)


def run_import(actor, holder, name: str, content: bytes) -> WorkImport:
    work_import = work_import_create(actor=actor, holder=holder, file=upload(name, content), filename=name)
    work_import_process(import_id=work_import.pk)
    work_import.refresh_from_db()
    return work_import


def errors_of(work_import: WorkImport) -> list[tuple[int, str, str]]:
    return [(e.row, e.field, e.code) for e in work_import.row_errors.order_by("row")]


# --- CSV ----------------------------------------------------------------------------


def test_csv_registers_good_rows_and_reports_a_bad_check_digit_by_row_and_field(actor, holder, owner):
    content = csv_rows(
        f"Book one,text,isbn:{isbn(1)},Kim,ko,2020,",
        f"Book two,text,isbn:{bad_isbn(2)},,,,",
        f'Page,text,"isbn:{isbn(3)}; url:https://Example.com:443/a#top","Kim; Lee",en-US,2019,2500',
    )

    work_import = run_import(actor, holder, "works.csv", content)

    assert work_import.status == ImportStatus.PROCESSED
    assert work_import.finished_at is not None
    assert (work_import.rows_total, work_import.rows_done) == (3, 3)
    assert (work_import.rows_registered, work_import.rows_failed) == (2, 1)
    assert errors_of(work_import) == [(3, "identifiers[0].value", "invalid_checksum")]
    page = Work.objects.get(title="Page")
    # The URL's own ":" survives: only the first ":" separates the scheme.
    assert set(page.identifiers.values_list("scheme", "value")) == {
        ("isbn", isbn(3)),
        ("url", "https://example.com/a"),
    }
    assert page.creators == ["Kim", "Lee"]
    assert (page.language, page.creation_year) == ("en-US", 2019)
    claim = OwnershipClaim.objects.get(work=page)
    assert (claim.holder, claim.share_bp, claim.status) == (holder, 2500, ClaimStatus.PENDING)
    assert OwnershipClaim.objects.get(work__title="Book one").share_bp == 10000
    assert not Work.objects.filter(title="Book two").exists()
    registered = AuditEvent.objects.filter(code="registry.work.registered")
    assert registered.count() == 2
    assert {event.actor_user for event in registered} == {owner}
    processed = AuditEvent.objects.get(code="registry.import.processed")
    assert processed.object_id == str(work_import.pk)
    assert processed.data["rows_registered"] == 2
    assert processed.data["rows_failed"] == 1


def test_csv_with_bom_crlf_blank_rows_and_a_multiline_cell_counts_rows_as_a_spreadsheet_does(actor, holder):
    content = (
        "\ufeffTitle , KIND,Identifiers\r\n"
        f"A,text,isbn:{isbn(1)}\r\n"
        "\r\n"
        ",,\r\n"
        f'B,text,"isbn:{isbn(2)}\nurl:https://example.com/b"\r\n'
        f"C,poem,isbn:{isbn(3)}\r\n"
    ).encode()

    rows = list(work_import_rows(path_or_file=io.BytesIO(content), format=ImportFormat.CSV))
    work_import = run_import(actor, holder, "works.csv", content)

    assert [number for number, _values in rows] == [2, 5, 6]
    assert rows[1][1] == {"title": "B", "kind": "text", "identifiers": f"isbn:{isbn(2)}\nurl:https://example.com/b"}
    assert (work_import.rows_total, work_import.rows_registered, work_import.rows_failed) == (3, 2, 1)
    assert errors_of(work_import) == [(6, "kind", "invalid_choice")]
    assert Work.objects.get(title="B").identifiers.count() == 2


def test_scheme_columns_hold_one_identifier_each_and_errors_name_the_column(actor, holder):
    content = csv_rows(
        f"A,text,{isbn(1)},https://example.com/a;v=1",
        f"B,text,{bad_isbn(2)},",
        "C,text,,",
        header="title,kind,ISBN,url\n",
    )

    work_import = run_import(actor, holder, "works.csv", content)

    assert errors_of(work_import) == [(3, "isbn", "invalid_checksum"), (4, "identifiers", "required")]
    assert set(Identifier.objects.values_list("scheme", "value")) == {
        ("isbn", isbn(1)),
        ("url", "https://example.com/a;v=1"),
    }


def test_identifier_cells_split_on_semicolons_and_newlines_but_keep_a_urls_own_semicolons(actor, holder):
    content = csv_rows(
        f'Split,text,"url:https://example.com/a;v=1; isbn:{isbn(1)}\nhttps://example.com/bare"',
        f"No scheme,text,{isbn(2)}",
        f"Unknown scheme,text,isni:0000000121032683; isbn:{isbn(3)}",
        f"Long tag,text,isbn:{isbn(4)},,en-{'a' * 8}-{'b' * 8}-{'c' * 8}-{'d' * 8}",
        header="title,kind,identifiers,creators,language\n",
    )

    work_import = run_import(actor, holder, "works.csv", content)

    assert set(Work.objects.get(title="Split").identifiers.values_list("scheme", "value")) == {
        ("url", "https://example.com/a;v=1"),
        ("isbn", isbn(1)),
        ("url", "https://example.com/bare"),
    }
    assert errors_of(work_import) == [
        (3, "identifiers[0]", "invalid_format"),
        (4, "identifiers[0].scheme", "unknown_scheme"),
        (5, "language", "too_long"),
    ]


def test_korean_headers_are_understood(actor, holder):
    content = csv_rows(f"소년이 온다,text,isbn:{isbn(1)},한강", header="제목,종류,식별자,저작자\n")

    work_import = run_import(actor, holder, "works.csv", content)

    assert work_import.rows_registered == 1
    assert Work.objects.get().creators == ["한강"]


def test_identifier_held_by_another_work_is_refused_with_that_work(actor, holder, other_holder, co_owner):
    draft = services.work_draft_build(title="Theirs", kind="text", identifiers=[{"scheme": "isbn", "value": isbn(1)}])
    theirs, _claim = services.work_register(
        actor=Actor(user=co_owner, party=other_holder), holder=other_holder, draft=draft
    )
    # The same book written with hyphens.
    hyphenated = f"{isbn(1)[:3]}-{isbn(1)[3:]}"

    work_import = run_import(
        actor, holder, "works.csv", csv_rows(f"Mine,text,isbn:{hyphenated}", f"New,text,isbn:{isbn(2)}")
    )

    error = work_import.row_errors.get()
    assert (error.row, error.field, error.code) == (2, "identifiers", "identifier_taken")
    assert error.existing_work == theirs
    assert str(theirs.pk) in error.message
    assert (work_import.rows_registered, work_import.rows_failed) == (1, 1)
    assert Work.objects.count() == 2


@pytest.mark.parametrize("chunk_rows", [1000, 1], ids=["same-chunk", "later-chunk"])
def test_the_same_identifier_twice_in_a_file_refuses_the_second_row(actor, holder, settings, chunk_rows):
    settings.WORK_IMPORT_CHUNK_ROWS = chunk_rows
    content = csv_rows(f"First,text,isbn:{isbn(1)}", f"Other,text,isbn:{isbn(2)}", f"Copy,text,isbn:{isbn(1)}")

    work_import = run_import(actor, holder, "works.csv", content)

    first = Work.objects.get(title="First")
    error = work_import.row_errors.get()
    # The outcome does not depend on whether the two rows fell into one chunk.
    assert (error.row, error.field, error.code) == (4, "identifiers", "identifier_taken")
    assert error.existing_work == first
    assert not Work.objects.filter(title="Copy").exists()
    assert Identifier.objects.filter(value=isbn(1)).count() == 1


# --- XLSX and JSON Lines ------------------------------------------------------------


def xlsx(rows: Sequence[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_with_numeric_cells(actor, holder):
    content = xlsx(
        [
            ["Title", "Kind", "ISBN", "Creation year", "share_bp", None],
            ["Numbers", "text", int(isbn(1)), 2020.0, 5000, None],
            [None, None, None, None, None, None],
            ["Float ISBN", "TEXT", float(isbn(2)), 2021, None, None],
            ["Bad year", "text", int(isbn(3)), 2020.5, None, None],
            [12345, "image", isbn(4), None, None, None],
        ]
    )

    # Django keeps large uploads in a temporary file on disk; the storage moves it rather than copying.
    on_disk = TemporaryUploadedFile("works.xlsx", "", len(content), None)
    on_disk.write(content)
    work_import = work_import_create(actor=actor, holder=holder, file=on_disk, filename="works.xlsx")
    on_disk.close()  # as the request cycle does; the temporary file is gone already
    work_import_process(import_id=work_import.pk)
    work_import.refresh_from_db()

    assert work_import.format == ImportFormat.XLSX
    assert (work_import.rows_total, work_import.rows_registered, work_import.rows_failed) == (4, 3, 1)
    assert errors_of(work_import) == [(5, "creation_year", "invalid_format")]
    numbers = Work.objects.get(title="Numbers")
    assert numbers.creation_year == 2020
    assert list(numbers.identifiers.values_list("value", flat=True)) == [isbn(1)]
    assert OwnershipClaim.objects.get(work=numbers).share_bp == 5000
    assert Work.objects.get(title="Float ISBN").identifiers.get().value == isbn(2)
    assert Work.objects.get(title="12345").kind == "image"


def test_jsonl_with_list_identifiers_and_an_invalid_line(actor, holder):
    lines = [
        json.dumps(
            {
                "title": "Listed",
                "kind": "text",
                "identifiers": [
                    {"scheme": "isbn", "value": isbn(1)},
                    {"scheme": "url", "value": "https://example.com/x"},
                ],
                "creators": ["Kim", "Lee"],
                "creation_year": 2020,
            }
        ),
        "",
        '{"title": "Broken", ',
        json.dumps(
            {"title": "String form", "kind": "text", "identifiers": "doi:10.1000/ABC; url:https://example.com/y"}
        ),
        json.dumps({"title": "Extra", "kind": "text", "isbn": int(isbn(2)), "colour": "red"}),
        json.dumps({"title": "Number ISBN", "kind": "text", "isbn": int(isbn(3))}),
    ]

    work_import = run_import(actor, holder, "works.jsonl", "\n".join(lines).encode())

    assert (work_import.rows_total, work_import.rows_registered, work_import.rows_failed) == (5, 3, 2)
    assert errors_of(work_import) == [(3, "", "invalid_json"), (5, "colour", "unknown_column")]
    listed = Work.objects.get(title="Listed")
    assert listed.creators == ["Kim", "Lee"]
    assert listed.identifiers.count() == 2
    assert set(Work.objects.get(title="String form").identifiers.values_list("scheme", "value")) == {
        ("doi", "10.1000/abc"),
        ("url", "https://example.com/y"),
    }
    assert Work.objects.get(title="Number ISBN").identifiers.get().value == isbn(3)


# --- Creating an import -------------------------------------------------------------


def test_create_stores_the_file_records_it_and_queues_processing_on_commit(
    actor, holder, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        work_import = work_import_create(
            actor=actor,
            holder=holder,
            file=upload("내 작품.csv", csv_rows(f"A,text,isbn:{isbn(1)}")),
            filename="내 작품.csv",
        )

    # The import's task, queued on commit; running eagerly, it registers a work, whose identifiers are in
    # turn queued for re-pricing on commit, and whose keys' new statuses are offered to webhooks on commit.
    assert len(callbacks) == 3
    work_import.refresh_from_db()
    assert (work_import.holder, work_import.created_by) == (holder, owner)
    assert work_import.original_name == "내 작품.csv"
    assert work_import.file.read().startswith(b"title,kind")
    # Celery runs eagerly in tests, so the queued task has already processed the file.
    assert work_import.status == ImportStatus.PROCESSED
    assert work_import.rows_registered == 1
    assert AuditEvent.objects.get(code="registry.import.created").object_id == str(work_import.pk)


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("kind,identifiers\n", "title"),
        ("title,kind\n", "identifiers"),
        ("title,kind,isbn,colour\n", None),
        ("title,kind,isbn,ISBN\n", None),
    ],
)
def test_a_wrong_header_is_refused_at_upload_and_nothing_is_created(actor, holder, settings, header, missing):
    with pytest.raises(InvalidInput) as caught:
        work_import_create(
            actor=actor, holder=holder, file=upload("works.csv", (header + "x,y,z,w\n").encode()), filename="works.csv"
        )

    assert (caught.value.code, caught.value.field) == ("invalid_header", "file")
    if missing:
        assert missing in str(caught.value.message)
    assert WorkImport.objects.count() == 0
    assert not AuditEvent.objects.filter(code="registry.import.created").exists()
    media = settings.MEDIA_ROOT
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("works.csv", "제목,종류,식별자\n".encode("cp949"), "unreadable_file"),
        ("works.xlsx", b"PK\x03\x04 not really a workbook", "unreadable_file"),
        ("works.csv", b"", "invalid_header"),
        ("works.csv", HEADER.encode(), "empty_file"),
        ("works.jsonl", b'{"title": "x", "kind": "text"}\n', "invalid_header"),
        ("works.jsonl", b"not json\n", "invalid_header"),
        ("works.xls", b"\xd0\xcf\x11\xe0", "unsupported_format"),
    ],
)
def test_unreadable_files_are_refused_at_upload(actor, holder, name, content, code):
    with pytest.raises(InvalidInput) as caught:
        work_import_create(actor=actor, holder=holder, file=upload(name, content), filename=name)

    assert caught.value.code == code
    assert WorkImport.objects.count() == 0


def test_another_party_cannot_import_for_a_holder(holder, other_holder, co_owner):
    with pytest.raises(NotPermitted):
        work_import_create(
            actor=Actor(user=co_owner, party=other_holder),
            holder=holder,
            file=upload("works.csv", csv_rows(f"A,text,isbn:{isbn(1)}")),
            filename="works.csv",
        )
    assert WorkImport.objects.count() == 0


def test_format_is_detected_from_the_extension_then_the_content_type():
    assert import_format_detect(filename="Works.XLSX") == ImportFormat.XLSX
    assert import_format_detect(filename="works.ndjson") == ImportFormat.JSONL
    # Windows browsers label CSV files as Excel; the extension decides.
    assert import_format_detect(filename="works.csv", content_type="application/vnd.ms-excel") == ImportFormat.CSV
    assert import_format_detect(filename="upload", content_type="text/csv; charset=utf-8") == ImportFormat.CSV
    with pytest.raises(InvalidInput) as caught:
        import_format_detect(filename="works.pdf", content_type="application/pdf")
    assert (caught.value.code, caught.value.field) == ("unsupported_format", "file")


# --- Processing: failures, limits, crashes and re-runs ------------------------------


def test_too_many_rows_fails_the_import_before_registering_anything(actor, holder, settings):
    settings.WORK_IMPORT_MAX_ROWS = 3
    # A CSV or JSON Lines file is refused at upload (tests/registry/test_hostile_input.py); a workbook's rows
    # are counted by the worker.
    content = xlsx([["title", "kind", "identifiers"], *[[f"W{n}", "text", f"isbn:{isbn(n)}"] for n in range(4)]])

    work_import = run_import(actor, holder, "works.xlsx", content)

    assert work_import.status == ImportStatus.FAILED
    assert "3" in work_import.failure_reason
    assert work_import.rows_done == 0
    assert Work.objects.count() == 0
    assert AuditEvent.objects.get(code="registry.import.failed").data["reason"] == work_import.failure_reason


def test_a_file_unreadable_past_its_header_fails_before_registering_anything(actor, holder):
    # The upload check reads only the start of the file; the bad bytes come later.
    good = csv_rows(*(f"Work {n},text,isbn:{isbn(n)}" for n in range(1000)))
    content = good + "깨진 줄,text,isbn:9780306406157\n".encode("cp949")

    work_import = run_import(actor, holder, "works.csv", content)

    assert work_import.status == ImportStatus.FAILED
    assert "UTF-8" in work_import.failure_reason
    assert Work.objects.count() == 0


def test_a_file_that_stops_reading_while_its_rows_are_drafted_fails_with_the_reason(
    actor, holder, settings, monkeypatch
):
    # A file of more than a chunk is drafted in a process of its own. This one changes after it was counted (a
    # storage that lost its bytes), so that process meets bad bytes only once some chunks have registered (the
    # CSV reader decodes 8 KB at a time, so they come after a few hundred rows).
    settings.WORK_IMPORT_CHUNK_ROWS = 100
    rows = [f"Work {n},text,isbn:{isbn(n)}" for n in range(1000)]
    work_import = work_import_create(
        actor=actor, holder=holder, file=upload("works.csv", csv_rows(*rows)), filename="works.csv"
    )
    counted = imports._rows_count

    def count_then_damage(stored: WorkImport) -> int:
        total = counted(stored)
        with open(stored.file.path, "wb") as damaged:
            damaged.write(csv_rows(*rows[:900]) + "깨진 줄,text,isbn:9780306406157\n".encode("cp949"))
        return total

    monkeypatch.setattr(imports, "_rows_count", count_then_damage)

    work_import_process(import_id=work_import.pk)

    work_import.refresh_from_db()
    # The drafting process's error reaches the owner as the same domain error, code and message, as it would
    # have if read in the worker itself.
    assert (work_import.status, work_import.failure_code) == (ImportStatus.FAILED, "unreadable_file")
    assert "UTF-8" in work_import.failure_reason
    assert work_import.rows_total == 1000
    assert 0 < work_import.rows_done < 900
    assert work_import.rows_registered == work_import.rows_done == Work.objects.count()
    assert set(Work.objects.values_list("title", flat=True)) == {f"Work {n}" for n in range(work_import.rows_done)}


class WorkerKilled(BaseException):
    """A worker's death as the task sees it: no ``except Exception`` gets to record it."""


def test_a_crash_mid_import_resumes_at_the_cursor_and_ends_as_one_clean_run(actor, holder, settings, monkeypatch):
    settings.WORK_IMPORT_CHUNK_ROWS = 2
    content = csv_rows(
        f"W1,text,isbn:{isbn(1)}",
        f"W2,text,isbn:{isbn(2)}",
        f"W3,text,isbn:{bad_isbn(3)}",
        f"W4,text,isbn:{isbn(4)}",
        f"W5,text,isbn:{isbn(5)}",
    )
    work_import = work_import_create(
        actor=actor, holder=holder, file=upload("works.csv", content), filename="works.csv"
    )
    real_register = services.works_register
    calls = {"n": 0}

    def dies_on_the_second_chunk(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            # After writing, as a worker killed before the commit would: nothing catches a kill.
            real_register(**kwargs)
            raise WorkerKilled
        return real_register(**kwargs)

    monkeypatch.setattr(services, "works_register", dies_on_the_second_chunk)

    with pytest.raises(WorkerKilled):
        work_import_process(import_id=work_import.pk)

    work_import.refresh_from_db()
    assert work_import.status == ImportStatus.PROCESSING
    assert (work_import.rows_done, work_import.rows_registered, work_import.rows_failed) == (2, 2, 0)
    assert set(Work.objects.values_list("title", flat=True)) == {"W1", "W2"}
    assert WorkImportRowError.objects.count() == 0

    # Its heartbeat goes stale; the sweep queues it again, and it resumes at the cursor.
    assert work_imports_resume_stalled(stale_seconds=0) == 1

    work_import.refresh_from_db()
    assert work_import.status == ImportStatus.PROCESSED
    assert (work_import.rows_total, work_import.rows_done) == (5, 5)
    assert (work_import.rows_registered, work_import.rows_failed) == (4, 1)
    assert sorted(Work.objects.values_list("title", flat=True)) == ["W1", "W2", "W4", "W5"]
    assert Identifier.objects.count() == 4
    assert OwnershipClaim.objects.count() == 4
    assert AuditEvent.objects.filter(code="registry.work.registered").count() == 4
    assert errors_of(work_import) == [(4, "identifiers[0].value", "invalid_checksum")]
    assert AuditEvent.objects.filter(code="registry.import.processed").count() == 1


def test_processing_a_processed_import_again_changes_nothing(actor, holder):
    work_import = run_import(
        actor, holder, "works.csv", csv_rows(f"A,text,isbn:{isbn(1)}", f"B,text,isbn:{bad_isbn(2)}")
    )
    before = (Work.objects.count(), WorkImportRowError.objects.count(), AuditEvent.objects.count())

    work_import_process(import_id=work_import.pk)
    work_import_process(import_id=work_import.pk + 1000)  # gone: nothing to do

    after = WorkImport.objects.get(pk=work_import.pk)
    assert (Work.objects.count(), WorkImportRowError.objects.count(), AuditEvent.objects.count()) == before
    assert (after.status, after.rows_registered, after.rows_failed) == (ImportStatus.PROCESSED, 1, 1)
    assert after.finished_at == work_import.finished_at


def test_stalled_imports_are_queued_again_and_finish(holder, owner, settings):
    from datetime import timedelta

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from registry.imports import work_import_create, work_imports_resume_stalled
    from registry.models import ImportStatus, WorkImport

    upload = SimpleUploadedFile("w.csv", b"title,kind,isbn\nBook,text,9780306406157\n")
    # Created outside a commit hook's reach: the task it queued is "lost".
    work_import = work_import_create(
        actor=Actor(user=owner, party=holder), holder=holder, file=upload, filename="w.csv"
    )
    WorkImport.objects.filter(pk=work_import.pk).update(created_at=timezone.now() - timedelta(hours=1))

    assert work_imports_resume_stalled() == 1

    work_import.refresh_from_db()
    assert work_import.status == ImportStatus.PROCESSED
    assert work_import.rows_registered == 1
    assert work_imports_resume_stalled() == 0
