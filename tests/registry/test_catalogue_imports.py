"""Bulk imports of the trade's catalogue formats by the import task: CWR (musical works), DDEX ERN (recordings) and
ONIX 3.0 (books), with progress and per-row errors; a malformed file is refused with nothing written.

The sample files are written here from the specifications' examples: CWR 2.1's fixed-width NWR/SPU/SWR/PWR
records (CISAC, field positions of the specification), a DDEX ERN 4.3 NewReleaseMessage and an ERN 3.8
SoundRecording, and ONIX for Books 3.0 reference-tag Products (EDItEUR's sample shapes).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from registry.models import ImportStatus, MusicalWorkContributor, Work, WorkImport


def _record(kind: str, fields: dict[tuple[int, int], str], transaction: int = 0, sequence: int = 0) -> str:
    """One CWR record: type, transaction and record sequence, then each field at its (start, end) positions."""
    line = [" "] * max((end for _start, end in fields), default=19)
    prefix = f"{kind}{transaction:08d}{sequence:08d}"
    line[: len(prefix)] = prefix
    for (start, end), value in fields.items():
        width = end - start + 1
        text = value.rjust(width, "0") if value.isdigit() and len(value) < width and (end - start) < 12 else value
        line[start - 1 : end] = list(text.ljust(width)[:width])
    return "".join(line)


HDR = "HDR" + "PB" + "000000199" + "HANGANG MUSIC PUBLISHING".ljust(45) + "01.10" + "20260115" + "120000" + "20260115"


def _cwr_work(
    transaction: int,
    *,
    title: str,
    iswc: str,
    writers: list[tuple[str, str, str, str, int]],
    publishers: list[tuple[str, str, str, int]],
    record: str = "NWR",
) -> list[str]:
    lines = [
        _record(
            record, {(20, 79): title, (80, 81): "KO", (82, 95): f"HM{transaction:06d}", (96, 106): iswc}, transaction
        )
    ]
    sequence = 1
    for ip, name, ptype, share in publishers:
        lines.append(
            _record(
                "SPU",
                {
                    (20, 21): "01",
                    (22, 30): ip,
                    (31, 75): name,
                    (77, 78): ptype,
                    (88, 98): "00000123456",
                    (116, 120): f"{share:05d}",
                },
                transaction,
                sequence,
            )
        )
        sequence += 1
    for ip, last, first, designation, share in writers:
        lines.append(
            _record(
                "SWR",
                {
                    (20, 28): ip,
                    (29, 73): last,
                    (74, 103): first,
                    (105, 106): designation,
                    (116, 126): "00014107338",
                    (130, 134): f"{share:05d}",
                },
                transaction,
                sequence,
            )
        )
        sequence += 1
        if publishers:
            lines.append(
                _record(
                    "PWR",
                    {(20, 28): publishers[0][0], (29, 73): publishers[0][1], (102, 110): ip},
                    transaction,
                    sequence,
                )
            )
            sequence += 1
    return lines


def _upload(api: APIClient, name: str, body: bytes, capture: Any) -> dict[str, Any]:
    with capture(execute=True):
        response = api.post("/api/v1/works/bulk", {"file": SimpleUploadedFile(name, body)})
    assert response.status_code == 202, response.content
    return dict(api.get(response["Location"]).json())


def test_cwr_registers_musical_works_with_writers_publishers_and_shares(
    holder_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    lines = [
        HDR,
        _record("GRH", {(4, 6): "NWR"}),
        *_cwr_work(
            0,
            title="ARIRANG FANTASY",
            iswc="T0345246801",
            publishers=[("P0001", "HANGANG MUSIC PUBLISHING", "E", 5000)],
            writers=[("W0001", "KIM", "MINSU", "C", 2500), ("W0002", "LEE", "JIWON", "A", 2500)],
        ),
        # A revision of another work, with a share that is not a number: its row is refused, the rest registers.
        *_cwr_work(
            1,
            title="BROKEN SHARES",
            iswc="T0345246812",
            record="REV",
            publishers=[("P0001", "HANGANG MUSIC PUBLISHING", "E", 5000)],
            writers=[("W0003", "PARK", "SOYEON", "CA", 5000)],
        ),
        *_cwr_work(2, title="NO ISWC YET", iswc="", publishers=[], writers=[("W0004", "CHOI", "YUNA", "CA", 10000)]),
        _record("GRT", {}),
        _record("TRL", {}),
    ]
    lines[lines.index(next(x for x in lines if x.startswith("SWR00000001")))] = (
        next(x for x in lines if x.startswith("SWR00000001"))[:129] + "5O.00"
    )
    progress = _upload(
        holder_api, "HANGANG.V21", ("\r\n".join(lines) + "\r\n").encode("ascii"), django_capture_on_commit_callbacks
    )
    assert (progress["status"], progress["format"]) == ("processed", "cwr")
    assert (progress["rows_total"], progress["rows_registered"], progress["rows_failed"]) == (3, 1, 2)
    errors = {e["row"]: e["code"] for e in holder_api.get(f"/api/v1/imports/{progress['id']}/errors").json()["results"]}
    # Rows are the lines of the NWR/REV records: HDR 1, GRH 2, the first work 3-8, the second 9-12, the third 13.
    assert errors == {9: "invalid_share", 13: "required"}
    work = Work.objects.get(kind="musical_work")
    assert work.title == "ARIRANG FANTASY"
    assert [str(i) for i in work.identifiers.all()] == ["iswc:T0345246801"]
    assert list(
        MusicalWorkContributor.objects.filter(work=work).values_list("role", "designation", "name", "ipi", "share_bp")
    ) == [
        ("publisher", "E", "HANGANG MUSIC PUBLISHING", "00000123456", 5000),
        ("writer", "C", "MINSU KIM", "00014107338", 2500),
        ("writer", "A", "JIWON LEE", "00014107338", 2500),
    ]
    assert work.creators == ["MINSU KIM", "JIWON LEE"]


ERN_43 = """<?xml version="1.0" encoding="UTF-8"?>
<ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/43" LanguageAndScriptCode="ko" AvsVersionId="4">
  <MessageHeader><MessageId>MSG-2026-001</MessageId></MessageHeader>
  <ResourceList>
    <SoundRecording>
      <ResourceReference>A1</ResourceReference>
      <Type>MusicalWorkSoundRecording</Type>
      <SoundRecordingEdition><ResourceId><ISRC>KRA012600001</ISRC></ResourceId></SoundRecordingEdition>
      <DisplayTitleText>Arirang Fantasy (Live)</DisplayTitleText>
      <DisplayArtistName>Seoul Strings</DisplayArtistName>
      <WorkId><ISWC>T-034.524.680-1</ISWC></WorkId>
    </SoundRecording>
    <SoundRecording>
      <ResourceReference>A2</ResourceReference>
      <SoundRecordingEdition><ResourceId><ISRC>KRA012600002</ISRC></ResourceId></SoundRecordingEdition>
      <DisplayTitleText>Unknown composition</DisplayTitleText>
      <WorkId><ISWC>T-000.000.001-0</ISWC></WorkId>
    </SoundRecording>
    <SoundRecording>
      <ResourceReference>A3</ResourceReference>
      <SoundRecordingEdition><ResourceId><ISRC>NOT-AN-ISRC</ISRC></ResourceId></SoundRecordingEdition>
      <DisplayTitleText>Bad ISRC</DisplayTitleText>
    </SoundRecording>
  </ResourceList>
</ern:NewReleaseMessage>
"""

ERN_38 = """<?xml version="1.0" encoding="UTF-8"?>
<ernm:NewReleaseMessage xmlns:ernm="http://ddex.net/xml/ern/382" MessageSchemaVersionId="ern/382">
  <ResourceList>
    <SoundRecording>
      <SoundRecordingId><ISRC>KRA012600003</ISRC></SoundRecordingId>
      <IndirectSoundRecordingId><ISWC>T0345246801</ISWC></IndirectSoundRecordingId>
      <ReferenceTitle><TitleText>Arirang Fantasy (Studio)</TitleText></ReferenceTitle>
      <SoundRecordingDetailsByTerritory>
        <DisplayArtist><PartyName><FullName>Seoul Strings</FullName></PartyName></DisplayArtist>
      </SoundRecordingDetailsByTerritory>
    </SoundRecording>
  </ResourceList>
</ernm:NewReleaseMessage>
"""


@pytest.fixture
def arirang(holder: Any) -> Work:
    from tests.factories import WorkFactory

    return WorkFactory(
        holder=holder, kind="musical_work", title="ARIRANG FANTASY", identifiers=[("iswc", "T0345246801")]
    )


def test_ddex_ern_registers_recordings_linked_to_their_musical_work(
    other_holder_api: APIClient, arirang: Work, django_capture_on_commit_callbacks: Any
) -> None:
    progress = _upload(other_holder_api, "release.xml", ERN_43.encode(), django_capture_on_commit_callbacks)
    assert (progress["format"], progress["rows_registered"], progress["rows_failed"]) == ("ddex", 1, 2)
    errors = other_holder_api.get(f"/api/v1/imports/{progress['id']}/errors").json()["results"]
    # Row numbers are the lines the SoundRecording elements start on.
    assert [(e["row"], e["code"], e["field"]) for e in errors] == [
        (
            ERN_43.count("\n", 0, ERN_43.rindex("<SoundRecording>", 0, ERN_43.index(">A2<"))) + 1,
            "musical_work_unknown",
            "musical_work",
        ),
        (
            ERN_43.count("\n", 0, ERN_43.rindex("<SoundRecording>", 0, ERN_43.index(">A3<"))) + 1,
            "invalid_length",
            "identifiers[0].value",
        ),
    ]
    recording = Work.objects.get(identifiers__value="KRA012600001")
    assert (recording.kind, recording.title, recording.creators) == (
        "audio",
        "Arirang Fantasy (Live)",
        ["Seoul Strings"],
    )
    assert recording.musical_work == arirang

    older = _upload(other_holder_api, "release-382.xml", ERN_38.encode(), django_capture_on_commit_callbacks)
    assert (older["rows_registered"], older["rows_failed"]) == (1, 0)
    studio = Work.objects.get(identifiers__value="KRA012600003")
    assert (studio.title, studio.creators, studio.musical_work) == (
        "Arirang Fantasy (Studio)",
        ["Seoul Strings"],
        arirang,
    )


def _ern(*recordings: tuple[str, str, str]) -> str:
    """An ERN 4.3 release of SoundRecordings, each (ISRC, title, ISWC or "")."""
    resources = "".join(
        f"""
    <SoundRecording>
      <SoundRecordingEdition><ResourceId><ISRC>{isrc}</ISRC></ResourceId></SoundRecordingEdition>
      <DisplayTitleText>{title}</DisplayTitleText>{f"<WorkId><ISWC>{iswc}</ISWC></WorkId>" if iswc else ""}
    </SoundRecording>"""
        for isrc, title, iswc in recordings
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ern:NewReleaseMessage xmlns:ern="http://ddex.net/xml/ern/43" AvsVersionId="4">
  <ResourceList>{resources}
  </ResourceList>
</ern:NewReleaseMessage>
"""


def test_ddex_recordings_find_their_musical_works_in_every_chunk_and_keep_the_files_order(
    other_holder_api: APIClient, arirang: Work, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # Three rows a chunk, so the file is drafted in a process of its own and each chunk's recordings that name a
    # musical work are drafted at registration, where that work is read.
    settings.WORK_IMPORT_CHUNK_ROWS = 3
    body = _ern(
        ("KRA012600011", "Live", "T-034.524.680-1"),
        # The same ISRC, a row later and without a musical work: the earlier row keeps it.
        ("KRA012600011", "Live again", ""),
        ("KRA012600013", "Studio", "T0345246801"),
        ("KRA012600014", "Unknown composition", "T-000.000.001-0"),
        ("KRA012600013", "Studio copy", ""),
        ("KRA012600016", "Misspelt composition", "T-034.524.680-9"),
        ("KRA012600017", "Plain", ""),
    )
    progress = _upload(other_holder_api, "release.xml", body.encode(), django_capture_on_commit_callbacks)

    assert (progress["status"], progress["rows_registered"], progress["rows_failed"]) == ("processed", 3, 4)
    live = Work.objects.get(identifiers__value="KRA012600011")
    studio = Work.objects.get(identifiers__value="KRA012600013")
    assert (live.title, live.musical_work, studio.title, studio.musical_work) == ("Live", arirang, "Studio", arirang)
    assert Work.objects.get(identifiers__value="KRA012600017").musical_work is None
    errors = other_holder_api.get(f"/api/v1/imports/{progress['id']}/errors").json()["results"]
    lines = [n + 1 for n, line in enumerate(body.splitlines()) if "<SoundRecording>" in line]
    assert [(e["row"], e["code"], e["field"], e["existing_work"]) for e in errors] == [
        (lines[1], "identifier_taken", "identifiers", live.pk),
        (lines[3], "musical_work_unknown", "musical_work", None),
        (lines[4], "identifier_taken", "identifiers", studio.pk),
        (lines[5], "invalid_checksum", "musical_work", None),
    ]


ONIX = """<?xml version="1.0" encoding="UTF-8"?>
<ONIXMessage release="3.0" xmlns="http://ns.editeur.org/onix/3.0/reference">
  <Header><Sender><SenderName>Hangang Press</SenderName></Sender><SentDateTime>20260115</SentDateTime></Header>
  <Product>
    <RecordReference>kr.hangang.9788936434021</RecordReference>
    <NotificationType>03</NotificationType>
    <ProductIdentifier><ProductIDType>15</ProductIDType><IDValue>9788936434021</IDValue></ProductIdentifier>
    <DescriptiveDetail>
      <ProductComposition>00</ProductComposition><ProductForm>BC</ProductForm>
      <TitleDetail><TitleType>01</TitleType>
        <TitleElement><TitleElementLevel>01</TitleElementLevel><TitleText>소년이 온다</TitleText></TitleElement>
      </TitleDetail>
      <Contributor><SequenceNumber>1</SequenceNumber><ContributorRole>A01</ContributorRole>
        <PersonName>한강</PersonName></Contributor>
      <Contributor><SequenceNumber>2</SequenceNumber><ContributorRole>B06</ContributorRole>
        <NamesBeforeKey>Deborah</NamesBeforeKey><KeyNames>Smith</KeyNames></Contributor>
      <Language><LanguageRole>01</LanguageRole><LanguageCode>kor</LanguageCode></Language>
    </DescriptiveDetail>
    <PublishingDetail><Publisher><PublishingRole>01</PublishingRole><PublisherName>창비</PublisherName></Publisher></PublishingDetail>
  </Product>
  <Product>
    <RecordReference>kr.hangang.bad</RecordReference>
    <ProductIdentifier><ProductIDType>15</ProductIDType><IDValue>9788936434022</IDValue></ProductIdentifier>
    <DescriptiveDetail><TitleDetail><TitleType>01</TitleType>
      <TitleElement><TitleElementLevel>01</TitleElementLevel><TitlePrefix>The</TitlePrefix>
        <TitleWithoutPrefix>Wrong Check Digit</TitleWithoutPrefix></TitleElement></TitleDetail></DescriptiveDetail>
  </Product>
</ONIXMessage>
"""


def test_onix_registers_books_with_contributors_and_publisher(
    holder_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    progress = _upload(holder_api, "catalogue.xml", ONIX.encode(), django_capture_on_commit_callbacks)
    assert (progress["format"], progress["rows_registered"], progress["rows_failed"]) == ("onix", 1, 1)
    (error,) = holder_api.get(f"/api/v1/imports/{progress['id']}/errors").json()["results"]
    assert error["code"] == "invalid_checksum"
    book = Work.objects.get()
    assert (book.kind, book.title, book.language, book.creators) == (
        "text",
        "소년이 온다",
        "kor",
        ["한강", "Deborah Smith"],
    )
    assert list(MusicalWorkContributor.objects.filter(work=book).values_list("role", "name")) == [
        ("writer", "한강"),
        ("writer", "Deborah Smith"),
        ("publisher", "창비"),
    ]


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("broken.xml", ONIX[: ONIX.index("</Product>") + 30].encode() + b"<Product><Unclosed>", "unreadable_file"),
        ("release.xml", ERN_43.replace("</ResourceList>", "").encode(), "unreadable_file"),
        ("works.cwr", b"NWR0000000000000000NOT A HEADER\r\n", "unreadable_file"),
        ("other.xml", b"<?xml version='1.0'?><Catalogue/>", "unsupported_format"),
    ],
)
def test_malformed_catalogue_files_write_nothing(
    holder_api: APIClient, name: str, body: bytes, code: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.post("/api/v1/works/bulk", {"file": SimpleUploadedFile(name, body)})
    if response.status_code == 400:
        assert response.json()["error"]["code"] in (code, "invalid_header")
    else:
        # Refused at upload only as far as its first record: the worker's first pass reads the rest.
        assert response.status_code == 202
        work_import = WorkImport.objects.get()
        assert work_import.status == ImportStatus.FAILED
        assert work_import.failure_code == code
    assert not Work.objects.exists()


def test_xml_external_entities_are_never_resolved(
    holder_api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    hostile = ONIX.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE ONIXMessage [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
    ).replace("<TitleText>소년이 온다</TitleText>", "<TitleText>&secret;</TitleText>")
    progress = _upload(holder_api, "catalogue.xml", hostile.encode(), django_capture_on_commit_callbacks)
    assert progress["status"] == "processed"
    assert not Work.objects.filter(title__contains="root:").exists()


def _catalogue_rows(holder: Any) -> dict[str, Any]:
    """What an import wrote, with keys and instants replaced by what they name (works by title), so that two runs
    compare equal when they wrote the same rows."""
    from optout.models import StatusChange, StatusSegment
    from registry.models import AuditEvent, Identifier, OwnershipClaim, WorkImportRowError

    titles = dict(Work.objects.values_list("pk", "title"))
    claims = {pk: titles[work_id] for pk, work_id in OwnershipClaim.objects.values_list("pk", "work_id")}
    events = {
        event.pk: (event.code, titles.get(int(event.object_id)) if event.object_type == "registry.work" else "")
        for event in AuditEvent.objects.all()
    }
    return {
        "works": sorted(
            Work.objects.values_list("title", "kind", "creators", "language", "creation_year", "status", "musical_work")
        ),
        "identifiers": sorted(
            (titles[w], s, v, sp)
            for w, s, v, sp in Identifier.objects.values_list("work_id", "scheme", "value", "spelling")
        ),
        "claims": sorted(
            (titles[w], h, share, status, agent)
            for w, h, share, status, agent in OwnershipClaim.objects.values_list(
                "work_id", "holder_id", "share_bp", "status", "filed_by_agent"
            )
        ),
        "contributors": sorted(
            (titles[w], *rest)
            for w, *rest in MusicalWorkContributor.objects.values_list(
                "work_id", "role", "designation", "name", "ipi", "share_bp", "position"
            )
        ),
        "audit": sorted(
            (code, events[pk][1], str({**data, "claim": claims.get(data.get("claim"))} if "claim" in data else data))
            for pk, code, data in AuditEvent.objects.exclude(object_type="registry.workimport").values_list(
                "pk", "code", "data"
            )
        ),
        "segments": sorted(
            (t, s, p, st, comp, reg, pending, titles.get(w), wt, wk, to is None)
            for t, s, p, st, comp, reg, pending, w, wt, wk, to in StatusSegment.objects.values_list(
                "subject_type",
                "subject",
                "purpose",
                "status",
                "compensation",
                "regime",
                "pending_refusal",
                "work_id",
                "work_title",
                "work_kind",
                "valid_to",
            )
        ),
        "changes": sorted(
            (s, p, old, new, code, events.get(cause, ("", ""))[1])
            for s, p, old, new, code, cause in StatusChange.objects.values_list(
                "subject", "purpose", "old_status", "new_status", "cause_code", "cause_id"
            )
        ),
        "row_errors": sorted(
            (row, field, code, re.sub(r"work (\d+)", lambda m: titles[int(m.group(1))], message), titles.get(existing))
            for row, field, code, message, existing in WorkImportRowError.objects.values_list(
                "row", "field", "code", "message", "existing_work_id"
            )
        ),
    }


@pytest.mark.postgres
@pytest.mark.django_db
def test_cwr_import_writes_the_same_rows_by_copy_as_by_bulk_create(
    holder: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django.db import transaction
    from django.utils import translation

    from core import bulk
    from core.actors import Actor
    from registry.imports import work_import_create, work_import_process
    from tests.factories import WorkFactory

    taken = WorkFactory(title="ALREADY HERE", kind="musical_work")
    taken.identifiers.create(scheme="iswc", value="T0345246823")
    lines = [HDR, _record("GRH", {(4, 6): "NWR"})]
    works = [
        ("ARIRANG FANTASY", "T0345246801"),
        ("TAKEN ELSEWHERE", "T0345246823"),  # registered before: refused, naming that work
        ("SECOND SONG", "T0345246812"),
        ("SAME ISWC AGAIN", "T0345246801"),  # an earlier row of the file took it
        ("THIRD SONG", "T0345246834"),
    ]
    for n, (title, iswc) in enumerate(works):
        lines += _cwr_work(
            n,
            title=title,
            iswc=iswc,
            publishers=[("P0001", "HANGANG MUSIC PUBLISHING", "E", 5000)],
            writers=[("W0001", "KIM", "MINSU", "C", 2500), ("W0002", "LEE", "JIWON", "A", 2500)],
        )
    lines += [_record("GRT", {}), _record("TRL", {})]
    body = ("\r\n".join(lines) + "\r\n").encode("ascii")
    settings.WORK_IMPORT_CHUNK_ROWS = 2  # the duplicate falls in another chunk than the row it repeats

    written: dict[bool, dict[str, Any]] = {}
    for copy in (True, False):
        monkeypatch.setattr(bulk, "copy_available", lambda copy=copy: copy)
        # In English, whose messages name the existing work as "work <id>" (compared by its title below).
        with translation.override("en"), transaction.atomic():
            work_import = work_import_create(
                actor=Actor(party=holder, is_system=True),
                holder=holder,
                file=SimpleUploadedFile("works.v21", body),
                filename="works.v21",
            )
            work_import_process(import_id=work_import.pk)
            work_import.refresh_from_db()
            assert (work_import.rows_registered, work_import.rows_failed) == (3, 2)
            written[copy] = _catalogue_rows(holder)
            transaction.set_rollback(True)

    assert written[True] == written[False]
    assert len(written[True]["segments"]) == 2 * 4  # two purposes for each key: the three new ones and the taken one
    assert [(row, code) for row, _f, code, _m, _w in written[True]["row_errors"]] == [
        (9, "identifier_taken"),
        (21, "identifier_taken"),
    ]
