"""Bulk registration of works from a CSV, XLSX or JSON Lines file.

An upload is checked up to its header at once (a wrong file is refused before anything is
stored), then a worker registers its rows in chunks. Each chunk commits as a whole together
with the import's row cursor (``rows_done``), so a worker that dies redoes exactly the chunk
it was in, and a redelivered task resumes where the last commit left off.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import partial
from typing import IO, Any
from xml.etree.ElementTree import ParseError

from django.conf import settings
from django.core.files import File
from django.db import connection, transaction
from django.db.models import F
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from core.actors import Actor
from core.errors import InvalidInput, RegistryError
from core.jobs import job_chunks_process, job_fail, job_finish, job_publish_on_commit, job_run, jobs_sweep
from core.prefetch import ProducerFailed, prefetched_in_process
from core.uploads import (
    UploadLimits,
    UploadTooLarge,
    bounded_binary,
    bounded_lines,
    bounded_text_lines,
    upload_size_check,
)
from registry import catalogues, services
from registry.audit import audit_record
from registry.errors import IdentifierTaken, InvalidIdentifier
from registry.identifiers import IdentifierKey, Scheme, identifier_normalize
from registry.mandates import mandate_require_new_works
from registry.models import (
    WORK_IMPORT_JOB,
    Identifier,
    ImportFormat,
    ImportStatus,
    Party,
    PartyKind,
    Work,
    WorkImport,
    WorkImportRowError,
)

IMPORT_COLUMNS = ("title", "kind", "identifiers", "creators", "language", "creation_year", "share_bp")

# A row as read from the file: column name → cell text. A row that cannot be read at all (a line of
# JSON Lines that is not JSON, cells beyond the header) comes as the error that says why instead, so
# it is reported against its row without stopping the rest of the file.
RowValues = dict[str, str]
ImportRow = tuple[int, RowValues | InvalidInput]

_SCHEME_COLUMNS = frozenset(Scheme.values)
_KNOWN_COLUMNS = frozenset(IMPORT_COLUMNS) | _SCHEME_COLUMNS
_COLUMN_ALIASES = {
    "identifier": "identifiers",
    "creator": "creators",
    "제목": "title",
    "종류": "kind",
    "유형": "kind",
    "식별자": "identifiers",
    "창작자": "creators",
    "저작자": "creators",
    "언어": "language",
    "창작연도": "creation_year",
    "창작년도": "creation_year",
    # Only with the unit: a bare "지분" would invite percentages, and 50 would mean 0.5%.
    "지분_bp": "share_bp",
    "지분(bp)": "share_bp",
}

_EXTENSIONS = {
    ".cwr": ImportFormat.CWR,
    ".v21": ImportFormat.CWR,
    ".v22": ImportFormat.CWR,
    ".csv": ImportFormat.CSV,
    ".xlsx": ImportFormat.XLSX,
    ".jsonl": ImportFormat.JSONL,
    ".ndjson": ImportFormat.JSONL,
}
# Browsers derive these from the extension (Windows even sends CSV as application/vnd.ms-excel), so
# they are only consulted when the file name has no extension we know.
_CONTENT_TYPES = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ImportFormat.XLSX,
    "application/jsonl": ImportFormat.JSONL,
    "application/jsonlines": ImportFormat.JSONL,
    "application/x-jsonlines": ImportFormat.JSONL,
    "application/x-ndjson": ImportFormat.JSONL,
    "application/ndjson": ImportFormat.JSONL,
}

# openpyxl reports a damaged workbook with whatever its zip, XML or model layer raises.
_XLSX_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    InvalidFileException,
    ParseError,
    KeyError,
    ValueError,
    TypeError,
    EOFError,
)

_SEPARATOR = re.compile(r"([;\r\n])")
_SCHEME_PREFIX = re.compile(r"^\s*[A-Za-z][A-Za-z0-9]*\s*:")
_URL_PIECE = re.compile(r"^\s*(?:url\s*:|https?:)", re.IGNORECASE)
_LIST_SEPARATOR = re.compile(r"[;\r\n]")
_WHOLE_NUMBER = re.compile(r"^\+?[0-9]+(?:\.0*)?$")
_GROUPED_NUMBER = re.compile(r"^[0-9]{1,3}(?:,[0-9]{3})+$")
_FIELD_INDEX = re.compile(r"^identifiers\[(\d+)\](.*)$")
_LANGUAGE_MAX = Work._meta.get_field("language").max_length or 35


# --- Formats and headers ------------------------------------------------------------


def _xml_format(head: bytes) -> str | None:
    # Both are XML: the root element says which (an ONIX message or a DDEX ERN release message).
    if b"ONIXMessage" in head:
        return ImportFormat.ONIX
    if b"NewReleaseMessage" in head or b"PurgeReleaseMessage" in head:
        return ImportFormat.DDEX
    return None


def import_format_detect(*, filename: str, content_type: str = "", head: bytes = b"") -> str:
    """The import format of an upload, from its file name's extension, else its content type; an XML file's
    (``.xml``) from its root element, in ``head`` (its first bytes)."""
    extension = os.path.splitext(filename.strip().lower())[1]
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    if extension == ".xml":
        detected = _xml_format(head)
        if detected is None:
            raise InvalidInput(
                _("An XML file is imported when it is an ONIX 3.0 message or a DDEX ERN release message."),
                code="unsupported_format",
                field="file",
            )
        return detected
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _CONTENT_TYPES:
        return _CONTENT_TYPES[media_type]
    if extension == ".xls":
        raise InvalidInput(
            _("Files in the old Excel format (.xls) cannot be read; save the sheet as .xlsx or as CSV UTF-8."),
            code="unsupported_format",
            field="file",
        )
    raise InvalidInput(
        _(
            "Upload a .csv (UTF-8), .xlsx or .jsonl (JSON Lines) file, a CWR file (.cwr, .v21, .v22) "
            "or an ONIX or DDEX .xml file."
        ),
        code="unsupported_format",
        field="file",
    )


def _column_name(label: str) -> str | None:
    key = re.sub(r"[\s\-]+", "_", label.strip().lower())
    if key in _KNOWN_COLUMNS:
        return key
    return _COLUMN_ALIASES.get(key)


def _invalid_header(message: str | Promise) -> InvalidInput:
    return InvalidInput(message, code="invalid_header", field="file")


def _unreadable(message: str | Promise) -> InvalidInput:
    return InvalidInput(message, code="unreadable_file", field="file")


def _columns_check(names: Iterable[str]) -> None:
    """Refuse a set of columns that cannot describe a work."""
    present = set(names)
    missing = [name for name in ("title", "kind") if name not in present]
    if not present & (_SCHEME_COLUMNS | {"identifiers"}):
        missing.append("identifiers")
    if missing:
        raise _invalid_header(
            _(
                "The file lacks the columns: %(missing)s. Identifiers go in a column “identifiers” "
                "(scheme:value, e.g. isbn:9788936434021) or in columns named after a scheme, e.g. “isbn”."
            )
            % {"missing": ", ".join(missing)}
        )


def _header_columns(cells: Sequence[str]) -> list[str | None]:
    """Map each header cell to its column name; blank header cells name no column."""
    columns: list[str | None] = []
    unknown: list[str] = []
    for cell in cells:
        label = cell.strip()
        name = _column_name(label) if label else None
        if label and name is None:
            unknown.append(label)
        elif name is not None and name in columns:
            raise _invalid_header(_("The column “%(column)s” appears twice.") % {"column": label})
        columns.append(name)
    if unknown:
        raise _invalid_header(
            _("Unknown columns: %(unknown)s. The columns are: %(known)s, or a scheme such as isbn or url.")
            % {"unknown": ", ".join(f"“{label[:50]}”" for label in unknown[:10]), "known": ", ".join(IMPORT_COLUMNS)}
        )
    _columns_check(name for name in columns if name is not None)
    return columns


# --- Reading rows -------------------------------------------------------------------


def _number_text(value: int | float) -> str:
    # Spreadsheets keep numbers as floats: an ISBN typed as a number or a year of 2020.0 is still a whole number.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _blank(cells: Sequence[str]) -> bool:
    return all(not cell.strip() for cell in cells)


def _table_rows(records: Iterator[Sequence[str]]) -> Iterator[ImportRow]:
    """Rows of a table whose first non-blank row is the header; row numbers count every row of the file."""
    columns: list[str | None] | None = None
    for number, cells in enumerate(records, start=1):
        if _blank(cells):
            continue
        if columns is None:
            columns = _header_columns(cells)
            continue
        values: RowValues = {}
        stray = False
        for index, cell in enumerate(cells):
            name = columns[index] if index < len(columns) else None
            if name is not None:
                values[name] = cell
            elif cell.strip():
                stray = True
        nul = _nul_field(values)
        if nul is not None:
            yield number, nul
        elif stray:
            yield (
                number,
                InvalidInput(
                    _("This row has a value in a column without a header; name the column or remove the value."),
                    code="unnamed_column",
                ),
            )
        else:
            yield number, values
    if columns is None:
        raise _invalid_header(_("The file is empty; its first row must name the columns."))


def _nul_field(values: Mapping[str, str]) -> InvalidInput | None:
    """A row with a NUL character, refused against its column: PostgreSQL's text cannot hold one."""
    for name, value in values.items():
        if "\x00" in value:
            return InvalidInput(
                _("This value holds a NUL character (U+0000), which text may not hold."),
                code="nul_character",
                field=name[:64],
            )
    return None


def import_limits(*, inspecting: bool = False) -> UploadLimits:
    """The ``WORK_IMPORT_*`` limits. At upload every line counts (a header and ``WORK_IMPORT_MAX_ROWS`` rows,
    blank lines included) and the reading has a deadline; the worker keeps to the line length."""
    return UploadLimits(
        max_bytes=settings.WORK_IMPORT_MAX_UPLOAD_BYTES,
        max_inflated_bytes=settings.WORK_IMPORT_MAX_INFLATED_BYTES,
        max_line_bytes=settings.WORK_IMPORT_MAX_LINE_BYTES,
        max_lines=settings.WORK_IMPORT_MAX_ROWS + 1 if inspecting else 2**62,
        max_seconds=settings.WORK_IMPORT_INSPECT_SECONDS if inspecting else None,
    )


def _csv_records(binary: IO[bytes]) -> Iterator[list[str]]:
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        # Read a bounded line at a time: a file of one endless line never sits whole in memory.
        reader = csv.reader(bounded_text_lines(text, limits=import_limits()))
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise _unreadable(
                    _("The file is not UTF-8 text. In Excel, save it as “CSV UTF-8”, or upload the .xlsx file.")
                ) from None
            except csv.Error as exc:
                raise _unreadable(
                    _("The CSV file cannot be read near row %(row)s: %(reason)s")
                    % {"row": reader.line_num, "reason": str(exc)}
                ) from None
            yield record
    finally:
        # Detach so that closing the wrapper leaves the caller's file open; it may already be closed.
        with suppress(ValueError):
            text.detach()


def _xlsx_records(binary: IO[bytes]) -> Iterator[list[str]]:
    try:
        workbook = load_workbook(binary, read_only=True, data_only=True)
    except _XLSX_ERRORS:
        raise _unreadable(_("The file is not a readable Excel workbook (.xlsx).")) from None
    try:
        if not workbook.worksheets:
            raise _invalid_header(_("The workbook has no sheet."))
        sheet = workbook.worksheets[0]
        # Some programs write a wrong size into the sheet; without it openpyxl reads what is really there.
        if hasattr(sheet, "reset_dimensions"):  # openpyxl's read-only sheet (a class it does not export)
            sheet.reset_dimensions()
        rows = sheet.iter_rows(values_only=True)
        while True:
            try:
                values = next(rows)
            except StopIteration:
                return
            except _XLSX_ERRORS:
                raise _unreadable(_("The Excel workbook is damaged and cannot be read to the end.")) from None
            yield [_cell_text(value) for value in values]
    finally:
        workbook.close()


def _json_scalar(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(value)
    raise InvalidInput(_("“%(field)s” must be text or a number.") % {"field": name}, code="invalid_type", field=name)


def _json_identifier(index: int, item: object) -> str:
    field = f"identifiers[{index}]"
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        scheme = _json_scalar(f"{field}.scheme", item.get("scheme"))
        value = _json_scalar(f"{field}.value", item.get("value"))
        return f"{scheme}:{value}"
    raise InvalidInput(
        _("Each identifier is an object with “scheme” and “value”, or a text such as isbn:9788936434021."),
        code="invalid_type",
        field=field,
    )


def _json_text(name: str, value: object) -> str:
    # Lists become the same text a CSV cell would hold, so every format goes through one parser.
    if name == "identifiers" and isinstance(value, Mapping):
        value = [value]
    if name == "identifiers" and isinstance(value, list):
        return "\n".join(_json_identifier(index, item) for index, item in enumerate(value))
    if name == "creators" and isinstance(value, list):
        return "\n".join(_json_scalar(f"creators[{index}]", item) for index, item in enumerate(value))
    return _json_scalar(name, value)


def _json_values(line: str) -> RowValues | InvalidInput:
    try:
        document = json.loads(line)
    except ValueError as exc:
        return InvalidInput(_("This line is not valid JSON: %(reason)s") % {"reason": str(exc)}, code="invalid_json")
    if not isinstance(document, dict):
        return InvalidInput(_("Each line must be a JSON object."), code="invalid_json")
    values: RowValues = {}
    for key, value in document.items():
        name = _column_name(key)
        if name is None:
            return InvalidInput(
                _("Unknown key “%(key)s”. The keys are: %(known)s, or a scheme such as isbn or url.")
                % {"key": key[:50], "known": ", ".join(IMPORT_COLUMNS)},
                code="unknown_column",
                field=key[:64],
            )
        if name in values:
            return InvalidInput(_("The key “%(key)s” appears twice.") % {"key": key[:50]}, code="duplicate_column")
        try:
            values[name] = _json_text(name, value)
        except InvalidInput as exc:
            return exc
    return _nul_field(values) or values


def _jsonl_rows(binary: IO[bytes]) -> Iterator[ImportRow]:
    for number, raw in bounded_lines(binary, limits=import_limits()):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield number, InvalidInput(_("This line is not UTF-8 text."), code="invalid_encoding")
            continue
        if line.strip():
            yield number, _json_values(line)


def work_import_rows(
    *, path_or_file: str | os.PathLike[str] | IO[bytes], format: str
) -> Generator[ImportRow, None, None]:
    """Stream ``(row number, values)`` from an import file, skipping blank rows.

    Row numbers are what the person sees: in CSV and XLSX the header is row 1, so data starts at
    row 2; in JSON Lines they are line numbers. A file that cannot be read raises ``InvalidInput``
    (``invalid_header`` or ``unreadable_file``) when the iteration reaches the problem.
    """
    if isinstance(path_or_file, str | os.PathLike):
        with open(path_or_file, "rb") as binary:
            yield from _file_rows(binary, format)
        return
    if path_or_file.seekable():
        path_or_file.seek(0)
    yield from _file_rows(path_or_file, format)


def _file_rows(binary: IO[bytes], import_format: str) -> Iterator[ImportRow]:
    if import_format == ImportFormat.CSV:
        yield from _table_rows(_csv_records(binary))
    elif import_format == ImportFormat.XLSX:
        yield from _table_rows(_xlsx_records(binary))
    elif import_format == ImportFormat.JSONL:
        yield from _jsonl_rows(binary)
    elif import_format == ImportFormat.CWR:
        yield from catalogues.cwr_rows(binary, limits=import_limits())
    elif import_format == ImportFormat.DDEX:
        yield from catalogues.ddex_rows(binary)
    elif import_format == ImportFormat.ONIX:
        yield from catalogues.onix_rows(binary)
    else:
        raise InvalidInput(_("Unknown import format."), code="unsupported_format", field="file")


def _upload_check(file: IO[bytes], import_format: str) -> None:
    """Refuse, before anything is stored, a file over the ``WORK_IMPORT_*`` limits or with a NUL character.

    CSV and JSON Lines are read whole, a bounded line at a time (every line counts, blank ones too); an XLSX
    is a zip, refused by what its parts would inflate to (the sizes its directory declares, which reading
    it cannot exceed: ``zipfile`` stops each part there).
    """
    limits = import_limits(inspecting=True)
    upload_size_check(file, max_bytes=limits.max_bytes)
    file.seek(0)
    try:
        if import_format == ImportFormat.XLSX:
            _zip_size_check(file, limits)
            return
        stream, budget = bounded_binary(file, limits=limits)
        if import_format == ImportFormat.CSV:
            # Undecodable bytes are the worker's to report against their row; here only size and NUL matter.
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
            try:
                for _line in bounded_text_lines(text, limits=limits, budget=budget, refuse_nul=True):
                    pass
            finally:
                text.detach()
        elif import_format in (ImportFormat.JSONL, ImportFormat.CWR):
            for _number, _raw in bounded_lines(stream, limits=limits, budget=budget, refuse_nul=True):
                pass
    except UploadTooLarge as exc:
        if exc.code == "too_many_lines":
            raise UploadTooLarge(
                _("The file holds more than %(max)s rows, blank lines included; split it into smaller files.")
                % {"max": settings.WORK_IMPORT_MAX_ROWS},
                code="too_many_lines",
                field="file",
            ) from None
        raise
    finally:
        file.seek(0)


def _zip_size_check(file: IO[bytes], limits: UploadLimits) -> None:
    try:
        with zipfile.ZipFile(file) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # the header check says the workbook cannot be read
    if inflated > limits.max_inflated_bytes:
        raise UploadTooLarge(
            _("Once unzipped, the workbook holds more than %(max)s bytes; split it into several files.")
            % {"max": limits.max_inflated_bytes},
            code="inflated_too_large",
            field="file",
        )


def _header_check(file: IO[bytes], import_format: str) -> None:
    """Read the upload up to its first row, so a wrong file is refused before anything is stored."""
    with closing(work_import_rows(path_or_file=file, format=import_format)) as rows:
        first = next(rows, None)
    if first is None:
        raise InvalidInput(_("The file has no rows to import."), code="empty_file", field="file")
    number, values = first
    # JSON Lines has no header: its first object stands for one, so a file of some other shape is refused now.
    if import_format == ImportFormat.JSONL:
        if isinstance(values, InvalidInput):
            raise _invalid_header(_("Line %(line)s: %(reason)s") % {"line": number, "reason": str(values.message)})
        _columns_check(values)


# --- From a row to a work -----------------------------------------------------------


def _identifier_pieces(text: str) -> list[str]:
    pieces = _SEPARATOR.split(text)
    parts: list[str] = []
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        separator = pieces[index - 1] if index else ""
        # URLs may contain ";" (path parameters): a piece after one that has no scheme of its own belongs to it.
        if (
            parts
            and separator == ";"
            and piece.strip()
            and _URL_PIECE.match(parts[-1])
            and not _SCHEME_PREFIX.match(piece)
        ):
            parts[-1] = f"{parts[-1]};{piece}"
        else:
            parts.append(piece)
    return [part.strip() for part in parts if part.strip()]


def _row_identifiers(values: Mapping[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    """The row's identifiers and, for each, the field an error in it is reported against."""
    identifiers: list[dict[str, str]] = []
    fields: list[str] = []
    for index, part in enumerate(_identifier_pieces(values.get("identifiers", ""))):
        scheme, colon, value = part.partition(":")
        if not colon:
            raise InvalidInput(
                _("Write each identifier as scheme:value, e.g. isbn:9788936434021."),
                code="invalid_format",
                field=f"identifiers[{index}]",
            )
        if scheme.strip().lower() in ("http", "https"):
            scheme, value = Scheme.URL, part
        identifiers.append({"scheme": scheme, "value": value})
        fields.append(f"identifiers[{index}]")
    for name, cell in values.items():
        if name in _SCHEME_COLUMNS and cell.strip():
            identifiers.append({"scheme": name, "value": cell})
            fields.append(name)
    return identifiers, fields


def _whole_number(values: Mapping[str, str], name: str, message: str | Promise) -> int | None:
    text = values.get(name, "").strip()
    if not text:
        return None
    if _GROUPED_NUMBER.match(text):
        text = text.replace(",", "")
    if not _WHOLE_NUMBER.match(text):
        raise InvalidInput(message, code="invalid_format", field=name)
    return int(text.split(".", 1)[0])


def _musical_work_named(iswc: str, known: Mapping[IdentifierKey, Work]) -> Work | None:
    """The registered musical work a DDEX recording names by ISWC (among ``known``, read for its chunk by
    ``_musical_works_named``); a row error when it is not registered."""
    if not iswc:
        return None
    try:
        key = identifier_normalize(scheme=Scheme.ISWC, value=iswc)
    except InvalidIdentifier as exc:
        exc.field = "musical_work"
        raise
    work = known.get(key)
    if work is None:
        raise InvalidInput(
            _("The musical work %(iswc)s is not registered: import its CWR registration (or register it) first.")
            % {"iswc": key.value},
            code="musical_work_unknown",
            field="musical_work",
        )
    return work


def _musical_works_named(iswcs: Iterable[str]) -> dict[IdentifierKey, Work]:
    """The registered works of the ISWCs a chunk's recordings name, read at once (a spelling that is not an ISWC
    is left to its row's error)."""
    values = set()
    for iswc in iswcs:
        with suppress(InvalidIdentifier):
            values.add(identifier_normalize(scheme=Scheme.ISWC, value=iswc).value)
    if not values:
        return {}
    return {
        IdentifierKey(scheme=Scheme.ISWC.value, value=identifier.value): identifier.work
        for identifier in Identifier.objects.filter(scheme=Scheme.ISWC, value__any_of=values).select_related("work")
    }


def _row_draft(values: Mapping[str, str], *, musical_works: Mapping[IdentifierKey, Work]) -> services.WorkDraft:
    identifiers, fields = _row_identifiers(values)
    # A value longer than its column would fail the whole chunk's insert on PostgreSQL, stalling the import.
    if len(values.get("language", "").strip()) > _LANGUAGE_MAX:
        raise InvalidInput(_("Use a language tag such as ko or en-US."), code="too_long", field="language")
    creation_year = _whole_number(values, "creation_year", _("Write the creation year as a number, e.g. 2020."))
    share_bp = _whole_number(
        values, "share_bp", _("Write the share as a whole number of basis points: 10000 is 100%, 2500 is 25%.")
    )
    contributors = json.loads(values["contributors"]) if values.get("contributors") else []
    musical_work = _musical_work_named(values.get("musical_work_iswc", ""), musical_works)
    try:
        return services.work_draft_build(
            title=values.get("title", ""),
            kind=values.get("kind", ""),
            identifiers=identifiers,
            creators=list(_LIST_SEPARATOR.split(values.get("creators", ""))),
            language=values.get("language", ""),
            creation_year=creation_year,
            share_bp=share_bp,
            musical_work=musical_work,
            contributors=contributors,
        )
    except RegistryError as exc:
        # An identifier from a scheme column is reported against that column, not a position in a list.
        match = _FIELD_INDEX.match(exc.field or "")
        if match is not None and int(match.group(1)) < len(fields):
            source = fields[int(match.group(1))]
            exc.field = source + match.group(2) if source.startswith("identifiers[") else source
        raise


# --- Creating and processing imports ------------------------------------------------


def work_import_create(*, actor: Actor, holder: Party, file: File[bytes], filename: str) -> WorkImport:
    """Accept an upload for bulk registration and queue it; the header is checked now."""
    if actor.on_behalf_of is not None and not actor.is_staff:
        # Each row's kind is checked against the mandate when it is registered; here, that one may register.
        mandate_require_new_works(actor=actor, member=holder)
    else:
        services.require_holder_actor(actor, holder)
    if holder.kind != PartyKind.HOLDER:
        raise InvalidInput(_("Only rights holders register works."), code="not_a_holder")
    file.seek(0)
    head = file.read(4096)
    file.seek(0)
    import_format = import_format_detect(
        filename=filename, content_type=getattr(file, "content_type", "") or "", head=head
    )
    _upload_check(file, import_format)
    _header_check(file, import_format)
    work_import = WorkImport(
        holder=holder,
        agent=actor.party if actor.on_behalf_of is not None else None,
        created_by_id=actor.user_id,
        format=import_format,
        original_name=os.path.basename(filename.replace("\\", "/"))[:255],
        language=translation.get_language() or settings.LANGUAGE_CODE,
    )
    # The storage copies (or, for a large upload, moves) the file; it is never read whole into memory.
    work_import.file.save(f"upload.{import_format}", file, save=False)
    try:
        with transaction.atomic():
            work_import.save()
            audit_record(
                code="registry.import.created",
                actor=actor,
                target=work_import,
                data={"format": import_format, "file": work_import.original_name},
            )
            # The outbox: published after commit; if the broker is down, the sweep publishes it later.
            job_publish_on_commit(kind=WORK_IMPORT_JOB, job_id=work_import.pk)
    except BaseException:
        # Only a record that was never committed loses its file (publishing cannot raise into here).
        work_import.file.delete(save=False)
        raise
    return work_import


def _import_actor(work_import: WorkImport) -> Actor:
    # The rows are registered as the person who uploaded them, for the holder they acted for then; an agent's
    # upload stays the agent's act for the member, checked against its mandate as each chunk is registered.
    if work_import.agent is not None:
        return Actor(user=work_import.created_by, party=work_import.agent, on_behalf_of=work_import.holder)
    return Actor(user=work_import.created_by, party=work_import.holder, api_key=None)


def work_import_process(*, import_id: int) -> None:
    """Register the rows of an import, chunk by chunk; safe to run again or after a crash.

    Row errors and the failure reason are written in the language the file was uploaded in.
    """
    language = WorkImport.objects.filter(pk=import_id).values_list("language", flat=True).first()
    with translation.override(language or settings.LANGUAGE_CODE):
        # Claimed (or left to the worker whose heartbeat is fresh), heartbeating, and failed with a code on
        # any exception: the shared lifecycle. A claimed import resumes after its cursor.
        job_run(kind=WORK_IMPORT_JOB, job_id=import_id, work=_import_process)


def _import_process(claimed: WorkImport) -> None:
    import_id = claimed.pk
    work_import = WorkImport.objects.select_related("holder", "created_by").get(pk=import_id)
    actor = _import_actor(work_import)
    try:
        if work_import.rows_total is None:
            # Counting first reads the whole file, so an unreadable one fails before anything is registered.
            total = _rows_count(work_import)
            if total > settings.WORK_IMPORT_MAX_ROWS:
                _import_end(
                    work_import,
                    actor,
                    status=ImportStatus.FAILED,
                    code="too_many_rows",
                    reason=str(
                        _("The file has more than %(max)s rows; split it into files of at most %(max)s rows.")
                        % {"max": settings.WORK_IMPORT_MAX_ROWS}
                    ),
                )
                return
            if total == 0:
                _import_end(
                    work_import,
                    actor,
                    status=ImportStatus.FAILED,
                    code="no_rows",
                    reason=str(_("The file has no rows to import.")),
                )
                return
            WorkImport.objects.filter(pk=import_id).update(rows_total=total)
            work_import.rows_total = total
        if not _import_chunks(work_import, actor):
            return
    except RegistryError as exc:
        _import_end(work_import, actor, status=ImportStatus.FAILED, code=exc.code, reason=str(exc.message))
        return
    _import_end(work_import, actor, status=ImportStatus.PROCESSED)


def _stored_file(work_import: WorkImport) -> File[bytes]:
    # A fresh handle from the storage for each pass, independent of the FieldFile's own state.
    return work_import.file.storage.open(work_import.file.name or "", "rb")


def _stored_rows(work_import: WorkImport, binary: IO[bytes]) -> Generator[ImportRow, None, None]:
    return work_import_rows(path_or_file=binary, format=work_import.format)


def _rows_count(work_import: WorkImport) -> int:
    limit = settings.WORK_IMPORT_MAX_ROWS + 1
    with _stored_file(work_import) as binary, closing(_stored_rows(work_import, binary)) as rows:
        return sum(1 for _row in itertools.islice(rows, limit))


def _import_chunks(work_import: WorkImport, actor: Actor) -> bool:
    """Register the rows after the cursor; False when another worker has taken the import over.

    The rows are read and drafted (parsing, validation, identifier normalisation: Python alone) a chunk ahead of
    their registration, which waits on the database for about half its time. For more than a chunk that runs in a
    forked process of its own, on the other core (``core.prefetch``); a smaller file is drafted here.
    """
    remaining = (work_import.rows_total or 0) - work_import.rows_done
    many = remaining > settings.WORK_IMPORT_CHUNK_ROWS
    produce = partial(_drafted_chunks_of_file, work_import)
    with prefetched_in_process(produce) if many else _drafted_here(produce) as chunks:
        try:
            return job_chunks_process(
                kind=WORK_IMPORT_JOB,
                job=work_import,
                chunks=chunks,
                size=lambda chunk: chunk.rows,
                apply=lambda _cursor, chunk: _chunk_register(work_import, actor, chunk),
            )
        except ProducerFailed as exc:
            # The drafting process's error: a domain error (the file no longer reads) is the owner's to see.
            error = exc.registry_error()
            if error is None:
                raise
            raise error from exc


@contextmanager
def _drafted_here(produce: Callable[[], Iterator[_DraftedChunk]]) -> Iterator[Iterator[_DraftedChunk]]:
    chunks = produce()
    try:
        yield chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True)
class _RowRefused:
    """A row refused while drafting, as its row error will say it (plain values: it may cross a pipe)."""

    row: int
    field: str
    code: str
    message: str


@dataclass
class _DraftedChunk:
    rows: int
    drafts: list[tuple[int, services.WorkDraft]]
    refused: list[_RowRefused]  # the rows refused before registration; the chunk's lock is not held for them
    # Rows drafted at registration, in the chunk's transaction: recordings naming their musical work, which is read
    # from the database (for the whole chunk at once).
    deferred: list[tuple[int, RowValues]]


def _drafted_chunks_of_file(work_import: WorkImport) -> Iterator[_DraftedChunk]:
    with _stored_file(work_import) as binary, closing(_stored_rows(work_import, binary)) as rows:
        yield from work_import_rows_draft(rows=itertools.islice(rows, work_import.rows_done, None))


def work_import_rows_draft(*, rows: Iterator[ImportRow]) -> Iterator[_DraftedChunk]:
    """The rows in chunks of ``WORK_IMPORT_CHUNK_ROWS``, drafted without the database (in the drafting process)."""
    size = settings.WORK_IMPORT_CHUNK_ROWS
    while chunk := list(itertools.islice(rows, size)):
        drafted = _DraftedChunk(rows=len(chunk), drafts=[], refused=[], deferred=[])
        for number, values in chunk:
            try:
                if isinstance(values, InvalidInput):
                    raise values
                if values.get("musical_work_iswc"):
                    drafted.deferred.append((number, values))
                    continue
                drafted.drafts.append((number, _row_draft(values, musical_works={})))
            except RegistryError as exc:
                drafted.refused.append(_refused(number, exc))
        yield drafted


def _refused(row: int, exc: RegistryError) -> _RowRefused:
    return _RowRefused(row=row, field=(exc.field or "")[:64], code=exc.code[:64], message=str(exc.message))


def _chunk_register(work_import: WorkImport, actor: Actor, chunk: _DraftedChunk) -> dict[str, Any]:
    # Runs under the import's lock, once its cursor is checked (job_chunk_commit).
    if connection.vendor == "postgresql":
        # The chunk reads its thousand identifiers three times (taken ones, then the status refresh's works and
        # lookup). With the tables at a few hundred thousand rows, PostgreSQL plans each as a parallel sequential
        # scan of the identifiers, 15-20 ms on both cores, where its index answers in 3-4 ms on one; and the other
        # core is the drafting process's. Until the transaction ends, so only this chunk's statements.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    errors = [
        WorkImportRowError(work_import=work_import, row=r.row, field=r.field, code=r.code, message=r.message)
        for r in chunk.refused
    ]
    drafts = list(chunk.drafts)
    if chunk.deferred:
        musical_works = _musical_works_named(values["musical_work_iswc"] for _number, values in chunk.deferred)
        for number, values in chunk.deferred:
            try:
                drafts.append((number, _row_draft(values, musical_works=musical_works)))
            except RegistryError as exc:
                errors.append(_row_error(work_import, number, exc))
        # In the file's order: of two rows with one identifier, the earlier registers.
        drafts.sort(key=lambda numbered: numbered[0])
    registered = 0
    if drafts:
        registrations = services.works_register(
            actor=actor, holder=work_import.holder, drafts=[draft for _number, draft in drafts]
        )
        # Which row of this chunk first registered each identifier, for refusals of later copies.
        first: dict[str, tuple[int, int]] = {}
        for (number, draft), registration in zip(drafts, registrations, strict=True):
            if registration.work is not None:
                registered += 1
                for key in draft.identifiers:
                    first.setdefault(str(key), (number, registration.work.pk))
            else:
                errors.append(_registration_error(work_import, number, registration.error, first))
    errors.sort(key=lambda error: error.row)
    WorkImportRowError.objects.bulk_create(errors)
    return {"rows_registered": F("rows_registered") + registered, "rows_failed": F("rows_failed") + len(errors)}


def _row_error(
    work_import: WorkImport, row: int, exc: RegistryError, existing_work_id: int | None = None
) -> WorkImportRowError:
    refused = _refused(row, exc)
    return WorkImportRowError(
        work_import=work_import,
        row=row,
        field=refused.field,
        code=refused.code,
        message=refused.message,
        existing_work_id=existing_work_id,
    )


def _registration_error(
    work_import: WorkImport, row: int, error: RegistryError | None, first: Mapping[str, tuple[int, int]]
) -> WorkImportRowError:
    if error is None:  # works_register gives every refused draft its reason; kept total for safety
        error = IdentifierTaken(field="identifiers")
    existing = error.extra.get("existing_work_id")
    earlier = first.get(str(error.extra.get("identifier", "")))
    if existing is None and earlier is not None:
        # Refused because an earlier row of this chunk took the identifier: said the same way as when that
        # row was in an earlier chunk, so the outcome does not depend on where the chunks fall.
        earlier_row, existing = earlier
        error = IdentifierTaken(
            _("The identifier %(key)s is already in row %(row)s of this file (work %(work)s).")
            % {"key": error.extra["identifier"], "row": earlier_row, "work": existing},
            field="identifiers",
        )
    return _row_error(work_import, row, error, existing_work_id=existing)


def _import_end(work_import: WorkImport, actor: Actor, *, status: str, code: str = "", reason: str = "") -> None:
    work_import.refresh_from_db()
    counts = {
        "rows_total": work_import.rows_total,
        "rows_done": work_import.rows_done,
        "rows_registered": work_import.rows_registered,
        "rows_failed": work_import.rows_failed,
    }
    if status == ImportStatus.FAILED:
        job_fail(kind=WORK_IMPORT_JOB, job_id=work_import.pk, code=code, message=reason, audit_data=counts)
        return
    with transaction.atomic():
        if not job_finish(kind=WORK_IMPORT_JOB, job_id=work_import.pk):
            return
        audit_record(code="registry.import.processed", actor=actor, target=work_import, data=counts)


def work_imports_resume_stalled(*, stale_seconds: float | None = None) -> int:
    """Publish the imports the broker never took and queue again those whose worker died (their heartbeat is
    older than ``stale_seconds``, by default ``JOB_STALE_SECONDS``); a running import that beats is left alone,
    however long ago it was uploaded. The every-minute ``jobs_sweep`` does this for every kind of job.
    """
    return jobs_sweep(kinds=[WORK_IMPORT_JOB], stale_seconds=stale_seconds)
