"""Reading usage manifests: formats, canonical hashing and line validation.

A manifest's lines are kept exactly as sent (a CSV or JSON Lines file, maybe gzip-compressed) and read
again, streaming, by the worker; nothing here holds a whole manifest in memory or touches the database.

Line numbers are the file's own: line 1 is the first line after a CSV header, or the first line of a JSON
Lines file. Empty lines are skipped (they keep their numbers), so an acknowledgement row points at the
line a person would find in an editor.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import IO, Any, TypeVar

import orjson
from django.conf import settings
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from compensation.models import ManifestFormat, UsageUnit
from core.dates import CLOCK_SKEW, DATE_OUT_OF_RANGE, date_in_range, date_out_of_range_message
from core.errors import InvalidInput
from core.uploads import UploadLimits, UploadTooLarge, bounded_binary, bounded_lines, bounded_text_lines
from optout.models import Purpose
from registry.errors import InvalidIdentifier
from registry.identifiers import IdentifierKey, identifier_normalize
from registry.models import WorkKind

T = TypeVar("T")

COLUMNS = ("scheme", "value", "units", "unit", "used_at")
# An optional column: the work kind a line names, which prices it when no registered work has its identifier.
KIND_COLUMN = "kind"
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
GZIP_MAGIC = b"\x1f\x8b"
_UNITS = frozenset(UsageUnit.values)
_KINDS = frozenset(WorkKind.values)
_MAX_UNITS = Decimal(10) ** 24
_MICRO_EXPONENT = -6
_TEXT_LIMIT = 2000


# --- Why a line is invalid ------------------------------------------------------------------------------
# The worker stores an invalid line's reason as it says it then (in the registry's default language); the
# outcome files say it again in their reader's language (``line_reason``), from its code and these messages.

WRONG_COLUMNS = _("The line has %(got)s columns; the header has %(want)s.")
BAD_JSON = _("The line is not valid JSON.")
NOT_AN_OBJECT = _("Each line is one JSON object.")
BAD_ENCODING = _("The value is not valid UTF-8; save the file as UTF-8.")
NUL_IN_LINE = _("The line holds a NUL character (U+0000).")
UNITS_MISSING = _("units is required: a number of units used.")
UNITS_NOT_A_NUMBER = _("units is not a number.")
UNITS_NEGATIVE = _("units is negative.")
UNITS_ZERO = _("units must be more than zero.")
UNITS_TOO_LARGE = _("units is too large.")
UNITS_TOO_PRECISE = _("units has more than six decimal places.")
UNKNOWN_UNIT = _("“%(unit)s” is not a unit; use one of %(units)s.")
UNKNOWN_KIND = _("“%(kind)s” is not a work kind; use one of %(kinds)s.")
USED_AT_INVALID = _("used_at is not an ISO 8601 date or date and time.")
USED_AT_IN_FUTURE = _("used_at is after the manifest was received.")
USED_AT_OUTSIDE_PERIOD = _("used_at is outside the manifest's period.")

# Each code's possible messages: a template (its %(name)s parameters are read back from the stored text) or
# a function that says the message in the active language.
_LINE_REASONS: dict[str, tuple[Promise | Callable[[], str], ...]] = {
    "wrong_columns": (WRONG_COLUMNS,),
    "bad_json": (BAD_JSON,),
    "not_an_object": (NOT_AN_OBJECT,),
    "bad_encoding": (BAD_ENCODING,),
    "nul_character": (NUL_IN_LINE,),
    "invalid_units": (UNITS_MISSING, UNITS_NOT_A_NUMBER, UNITS_ZERO, UNITS_TOO_LARGE, UNITS_TOO_PRECISE),
    "negative_units": (UNITS_NEGATIVE,),
    "unknown_unit": (UNKNOWN_UNIT,),
    "unknown_kind": (UNKNOWN_KIND,),
    "invalid_used_at": (USED_AT_INVALID, date_out_of_range_message),
    "used_at_in_future": (USED_AT_IN_FUTURE,),
    "used_at_outside_period": (USED_AT_OUTSIDE_PERIOD,),
}
# Codes of ``identifier_normalize``: the reason is said again by validating the stored identifier again.
_IDENTIFIER_CODES = frozenset(
    {"unknown_scheme", "empty", "too_long", "invalid_format", "invalid_length", "invalid_checksum", "invalid_component"}
)
_PARAMETER = re.compile(r"%\((\w+)\)[sd]")


def _message_in(message: Promise | Callable[[], str], language: str) -> str:
    with translation.override(language):
        return message() if callable(message) else str(message)


@lru_cache(maxsize=256)
def _reason_pattern(code: str, index: int, language: str) -> re.Pattern[str]:
    """The stored text of one of ``code``'s messages, as the worker writes it in ``language``."""
    text = _message_in(_LINE_REASONS[code][index], language)
    if not isinstance(_LINE_REASONS[code][index], Promise):
        return re.compile(re.escape(text))
    parts, seen, last = [], set(), 0
    for match in _PARAMETER.finditer(text):
        parts.append(re.escape(text[last : match.start()]))
        name = match.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
        seen.add(name)
        last = match.end()
    parts.append(re.escape(text[last:]))
    return re.compile("".join(parts), re.DOTALL)


def line_reason(*, code: str, reason: str, scheme: str, value: str, language: str) -> str:
    """An invalid line's stored ``reason`` said in ``language``: recognised among its code's messages in any
    of the registry's languages (with the values it names), or for an identifier by validating it again.
    A reason it does not recognise is returned as stored."""
    if code in _IDENTIFIER_CODES:
        # An identifier's message depends on its scheme and on which check failed, which the stored text
        # already tells: lines that differ only in their value share one validation (a file of a million
        # mistyped ISBNs validates one of them per distinct reason, not each).
        key = (code, reason, scheme, language)
        said = _IDENTIFIER_REASONS.get(key)
        if said is None:
            said = _identifier_reason(code=code, reason=reason, scheme=scheme, value=value, language=language)
            if len(_IDENTIFIER_REASONS) >= 4096:
                _IDENTIFIER_REASONS.clear()
            _IDENTIFIER_REASONS[key] = said
        return said
    return _template_reason(code=code, reason=reason, language=language)


_IDENTIFIER_REASONS: dict[tuple[str, str, str, str], str] = {}


def _identifier_reason(*, code: str, reason: str, scheme: str, value: str, language: str) -> str:
    with translation.override(language):
        try:
            identifier_normalize(scheme=scheme, value=value)
        except InvalidIdentifier as exc:
            if exc.code == code:
                return str(exc.message)
    return reason


@lru_cache(maxsize=4096)
def _template_reason(*, code: str, reason: str, language: str) -> str:
    messages = _LINE_REASONS.get(code, ())
    for index, message in enumerate(messages):
        for known, _name in settings.LANGUAGES:
            found = _reason_pattern(code, index, known).fullmatch(reason)
            if found is None:
                continue
            said = _message_in(message, language)
            if isinstance(message, Promise) and found.groupdict():
                with translation.override(language):
                    said = str(message) % found.groupdict()
            return said
    return reason


# --- Manifest metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestMeta:
    manifest_id: str
    model: str
    model_version: str
    purpose: str
    period_start: datetime | None
    period_end: datetime | None

    def canonical(self) -> bytes:
        return orjson.dumps(
            {
                "manifest_id": self.manifest_id,
                "model": self.model,
                "model_version": self.model_version,
                "purpose": self.purpose,
                # In UTC: the same instant written with another offset is the same manifest.
                "period_start": _utc_text(self.period_start),
                "period_end": _utc_text(self.period_end),
            },
            option=orjson.OPT_SORT_KEYS,
        )


def _utc_text(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _text_field(data: Mapping[str, Any], name: str, *, required: bool) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(_("This field is required."), code="required", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidInput(_("Send this field as text."), code="invalid", field=name)
    value = value.strip()
    if required and not value:
        raise InvalidInput(_("This field is required."), code="required", field=name)
    if "\x00" in value:
        # PostgreSQL's text refuses it: said here, with the field, rather than as a failed insert.
        raise InvalidInput(_("Text may not hold a NUL character (U+0000)."), code="nul_character", field=name)
    if len(value) > 200:
        raise InvalidInput(_("At most 200 characters."), code="too_long", field=name)
    return value


def _instant_field(data: Mapping[str, Any], name: str, *, end_of_day: bool = False) -> datetime | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    parsed = _instant(value) if isinstance(value, str) else None
    if parsed is not None and not date_in_range(parsed):
        raise InvalidInput(date_out_of_range_message(), code=DATE_OUT_OF_RANGE, field=name)
    if parsed is not None and end_of_day and _DATE_ONLY.fullmatch(value.strip()):
        # A period that ends on a day includes that day.
        parsed += timedelta(days=1) - timedelta(microseconds=1)
    if parsed is None:
        raise InvalidInput(
            _("Send an ISO 8601 date or date and time, e.g. 2026-05-01T00:00:00+09:00."),
            code="invalid_datetime",
            field=name,
        )
    return parsed


def meta_clean(data: Mapping[str, Any]) -> ManifestMeta:
    """The manifest's own fields, validated; raises ``InvalidInput`` naming the field."""
    purpose = _text_field(data, "purpose", required=False) or Purpose.TRAIN_GENAI.value
    if purpose not in Purpose.values:
        raise InvalidInput(_("The purpose is train-ai or train-genai."), code="invalid_purpose", field="purpose")
    period_start = _instant_field(data, "period_start")
    period_end = _instant_field(data, "period_end", end_of_day=True)
    if period_start and period_end and period_start > period_end:
        raise InvalidInput(_("The period ends before it starts."), code="invalid_period", field="period_end")
    return ManifestMeta(
        manifest_id=_text_field(data, "manifest_id", required=True),
        model=_text_field(data, "model", required=True),
        model_version=_text_field(data, "model_version", required=False),
        purpose=purpose,
        period_start=period_start,
        period_end=period_end,
    )


# --- Formats --------------------------------------------------------------------------------------


def format_detect(*, filename: str, explicit: str = "") -> str:
    """CSV or JSON Lines, from an explicit ``format`` field or the file name (``.gz`` is looked through)."""
    explicit = explicit.strip().lower()
    if explicit:
        if explicit in ("jsonl", "ndjson", "json"):
            return ManifestFormat.JSONL
        if explicit == "csv":
            return ManifestFormat.CSV
        raise InvalidInput(_("The format is csv or jsonl."), code="invalid_format", field="format")
    name = filename.lower().removesuffix(".gz").removesuffix(".gzip")
    if name.endswith(".csv"):
        return ManifestFormat.CSV
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return ManifestFormat.JSONL
    raise InvalidInput(
        _("Name the file .csv or .jsonl (optionally .gz), or send format=csv|jsonl."),
        code="invalid_format",
        field="file",
    )


def is_gzip(binary: IO[bytes]) -> bool:
    start = binary.read(2)
    binary.seek(0)
    return start == GZIP_MAGIC


def decompressed(binary: IO[bytes], *, compressed: bool) -> IO[bytes]:
    if compressed:
        # typeshed makes GzipFile an io.BufferedIOBase, which it keeps apart from typing.IO; it reads as one.
        return gzip.GzipFile(fileobj=binary, mode="rb")  # type: ignore[return-value]
    return binary


@dataclass(frozen=True)
class Record:
    """One non-empty line: its number and its fields, or why it could not be read at all."""

    line_no: int
    fields: Mapping[str, Any] | None
    error: tuple[str, str] | None = None


def _csv_header(row: list[str]) -> list[str]:
    names = [cell.strip().lower().lstrip("\ufeff") for cell in row]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise InvalidInput(
            _("The CSV header lacks the columns %(missing)s; it needs %(columns)s.")
            % {"missing": ", ".join(missing), "columns": ", ".join(COLUMNS)},
            code="invalid_header",
            field="file",
        )
    return names


def _csv_rows(
    text: IO[str], limits: UploadLimits, inspect: _Inspect | None
) -> Iterator[tuple[int, list[str], list[str]]]:
    """The header's column names, and each non-empty row with the line it starts on."""
    # The header is line 0: line 1 is the first line after it, and the limit counts the lines after it.
    reader = csv.reader(
        bounded_text_lines(
            text,
            limits=replace(limits, max_lines=limits.max_lines + 1),
            budget=inspect.budget if inspect else None,
            first_line=0,
            refuse_nul=inspect is not None,
        )
    )
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(_("The file is empty."), code="empty_file", field="file") from None
    names = _csv_header(header)
    ended = reader.line_num
    for row in reader:
        # A quoted cell may span lines: a record is numbered by the line it starts on.
        line_no, ended = ended, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield line_no, names, row


def _csv_records(text: IO[str], limits: UploadLimits, inspect: _Inspect | None) -> Iterator[Record]:
    for line_no, names, row in _csv_rows(text, limits, inspect):
        if len(row) != len(names):
            yield Record(
                line_no,
                None,
                (
                    "wrong_columns",
                    str(WRONG_COLUMNS % {"got": len(row), "want": len(names)}),
                ),
            )
            continue
        yield Record(line_no, dict(zip(names, row, strict=True)))


def _jsonl_lines(binary: IO[bytes], limits: UploadLimits, inspect: _Inspect | None) -> Iterator[tuple[int, bytes]]:
    """Each non-blank line with its number."""
    for line_no, raw in bounded_lines(
        binary, limits=limits, budget=inspect.budget if inspect else None, refuse_nul=inspect is not None
    ):
        if line_no == 1:
            # Windows tools often start UTF-8 text with a byte-order mark; it is no part of the first object.
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        yield line_no, raw


def _jsonl_records(binary: IO[bytes], limits: UploadLimits, inspect: _Inspect | None) -> Iterator[Record]:
    for line_no, raw in _jsonl_lines(binary, limits, inspect):
        try:
            fields = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield Record(line_no, None, ("bad_json", str(BAD_JSON)))
            continue
        if not isinstance(fields, dict):
            yield Record(line_no, None, ("not_an_object", str(NOT_AN_OBJECT)))
            continue
        yield Record(line_no, fields)


def manifest_limits(*, max_lines: int | None = None, inspecting: bool = False) -> UploadLimits:
    """The ``USAGE_MANIFEST_*`` limits; the deadline only where a request waits on the reading."""
    return UploadLimits(
        max_bytes=settings.USAGE_MANIFEST_MAX_UPLOAD_BYTES,
        max_inflated_bytes=settings.USAGE_MANIFEST_MAX_INFLATED_BYTES,
        max_line_bytes=settings.USAGE_MANIFEST_MAX_LINE_BYTES,
        max_lines=max_lines if max_lines is not None else settings.USAGE_MANIFEST_MAX_LINES,
        max_seconds=settings.USAGE_MANIFEST_INSPECT_SECONDS if inspecting else None,
    )


@dataclass
class _Inspect:
    """The upload's check: it refuses NUL characters and keeps to the deadline; the worker does neither."""

    budget: Any


def records_read(binary: IO[bytes], *, format: str, compressed: bool) -> Iterator[Record]:
    """Every non-empty line of a stored manifest, streamed, no line longer than ``USAGE_MANIFEST_MAX_LINE_BYTES``.
    Raises ``InvalidInput`` for a file that cannot be read (or no longer fits the limits)."""
    try:
        yield from _read(
            binary,
            format=format,
            compressed=compressed,
            limits=manifest_limits(),
            inspect=False,
            csv_reader=_csv_records,
            jsonl_reader=_jsonl_records,
        )
    except InvalidInput as exc:
        # The worker fails the manifest on an ``InvalidInput`` (named so across its parsing process): a limit's
        # own error class is given that name.
        raise InvalidInput(exc.message, code=exc.code, field=exc.field, extra=exc.extra) from None


def _line_numbers(binary: IO[bytes], *, format: str, limits: UploadLimits) -> Iterator[int]:
    """The line number of each record ``records_read`` yields, found by the same readers without building the
    records (no dict per CSV row, no JSON decoding): what counting an upload needs."""
    yield from _read(
        binary,
        format=format,
        compressed=False,
        limits=limits,
        inspect=True,
        csv_reader=lambda text, limits, inspect: (
            line_no for line_no, _names, _row in _csv_rows(text, limits, inspect)
        ),
        jsonl_reader=lambda stream, limits, inspect: (
            line_no for line_no, _raw in _jsonl_lines(stream, limits, inspect)
        ),
    )


def _read(
    binary: IO[bytes],
    *,
    format: str,
    compressed: bool,
    limits: UploadLimits,
    inspect: bool,
    csv_reader: Callable[[IO[str], UploadLimits, _Inspect | None], Iterator[T]],
    jsonl_reader: Callable[[IO[bytes], UploadLimits, _Inspect | None], Iterator[T]],
) -> Iterator[T]:
    stream, budget = bounded_binary(decompressed(binary, compressed=compressed), limits=limits)
    checking = _Inspect(budget) if inspect else None
    try:
        if format == ManifestFormat.CSV:
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
            try:
                yield from csv_reader(text, limits, checking)
            finally:
                # The caller owns the binary stream: the wrapper must not close it when collected.
                text.detach()
        else:
            yield from jsonl_reader(stream, limits, checking)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInput(
            _("The file could not be read: %(error)s") % {"error": exc}, code="unreadable_file", field="file"
        ) from None
    except csv.Error as exc:
        raise InvalidInput(
            _("The CSV could not be read: %(error)s") % {"error": exc}, code="unreadable_file", field="file"
        ) from None


@dataclass(frozen=True)
class UploadSummary:
    lines: int
    content_sha256: str


def upload_inspect(binary: IO[bytes], *, format: str, compressed: bool, limits: UploadLimits) -> UploadSummary:
    """Read an upload once, streaming: check it can be read and fits ``limits``, count its lines, hash its
    (decompressed) bytes. Every line counts toward ``limits.max_lines``, blank ones too (a CSV's header aside);
    a line holding a NUL character is refused with its number.

    Counting uses the readers processing uses, so ``lines_total`` is exactly what the worker will see.
    """
    digest = hashlib.sha256()

    class _Hashing(io.RawIOBase):
        def __init__(self, inner: IO[bytes]) -> None:
            self.inner = inner

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            data = self.inner.read(len(buffer))
            digest.update(data)
            buffer[: len(data)] = data
            return len(data)

    binary.seek(0)
    hashing = io.BufferedReader(_Hashing(decompressed(binary, compressed=compressed)), buffer_size=1 << 16)
    try:
        count = sum(1 for _line_no in _line_numbers(hashing, format=format, limits=limits))
    except UploadTooLarge as exc:
        if exc.code != "too_many_lines":
            raise
        from compensation.errors import ManifestTooLarge

        raise ManifestTooLarge(
            _("A manifest file holds at most %(max)s lines, blank lines included; split it into several manifests.")
            % {"max": limits.max_lines},
            field="file",
        ) from None
    # Whatever the reader did not need (a trailing newline) still belongs to the content.
    while hashing.read(1 << 16):
        pass
    binary.seek(0)
    if count == 0:
        raise InvalidInput(_("The manifest has no lines."), code="empty_manifest", field="file")
    return UploadSummary(lines=count, content_sha256=digest.hexdigest())


def lines_as_jsonl(lines: Any, *, max_lines: int, max_line_bytes: int) -> tuple[bytes, int]:
    """The ``lines`` of a JSON manifest as JSON Lines (each object with sorted keys), and how many; each line
    within ``max_line_bytes`` and free of NUL characters, as a file's lines must be."""
    from compensation.errors import ManifestTooLarge

    if not isinstance(lines, list) or not lines:
        raise InvalidInput(_("Send a non-empty list of lines."), code="required", field="lines")
    if len(lines) > max_lines:
        raise ManifestTooLarge(
            _("A JSON manifest holds at most %(max)s lines; upload a file for more.") % {"max": max_lines},
            field="lines",
        )
    out = bytearray()
    for index, line in enumerate(lines):
        if not isinstance(line, dict):
            raise InvalidInput(_("Each line is a JSON object."), code="not_an_object", field=f"lines[{index}]")
        encoded = orjson.dumps(line, option=orjson.OPT_SORT_KEYS)
        if len(encoded) > max_line_bytes:
            raise InvalidInput(
                _("A line is at most %(max)s bytes of JSON.") % {"max": max_line_bytes},
                code="line_too_long",
                field=f"lines[{index}]",
            )
        if b"\\u0000" in encoded:
            raise InvalidInput(
                _("Text may not hold a NUL character (U+0000)."), code="nul_character", field=f"lines[{index}]"
            )
        out += encoded
        out += b"\n"
    return bytes(out), len(lines)


def content_hash(meta: ManifestMeta, content_sha256: str) -> str:
    """What makes two submissions "the same manifest": its fields and its decompressed lines."""
    return hashlib.sha256(meta.canonical() + b"\n" + content_sha256.encode()).hexdigest()


# --- Lines ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class ParsedLine:
    line_no: int
    scheme: str
    value: str
    key: IdentifierKey | None
    units: Decimal | None
    unit: str
    used_at: datetime | None
    error_code: str = ""
    error_message: str = ""
    # Identifies "the same use reported again": same identifier, units, unit and instant. Valid lines only.
    dedupe: uuid.UUID | None = None
    # The work kind the line names (optional): what an identifier no work has is priced as (``kind_for_unmatched``).
    kind: str = ""

    @property
    def valid(self) -> bool:
        return not self.error_code


def _dedupe(key: IdentifierKey, units: Decimal, unit: str, used_at: datetime) -> uuid.UUID:
    text = f"{key.scheme}:{key.value}|{units.normalize():f}|{unit}|{used_at.timestamp():.6f}"
    return uuid.UUID(bytes=hashlib.md5(text.encode(), usedforsecurity=False).digest())


def _instant(value: str) -> datetime | None:
    value = value.strip()
    try:
        # The C parser takes every ISO 8601 form labs normally send; Django's covers the rest.
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed
    try:
        parsed = parsed or parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return None
        parsed = datetime(day.year, day.month, day.day)
    if not date_in_range(parsed):
        # Making year 1 or 9999 local overflows; the caller refuses it as out of range, by its year.
        return parsed.replace(tzinfo=UTC)
    if timezone.is_naive(parsed):
        # A time without an offset is the registry's local time (TIME_ZONE), like the rest of the service.
        parsed = timezone.make_aware(parsed)
    return parsed


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return str(value)


def _units(value: Any) -> Decimal | tuple[str, Promise]:
    if isinstance(value, bool) or value is None or value == "":
        return "invalid_units", UNITS_MISSING
    try:
        units = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        return "invalid_units", UNITS_NOT_A_NUMBER
    if not units.is_finite():
        return "invalid_units", UNITS_NOT_A_NUMBER
    if units < 0:
        return "negative_units", UNITS_NEGATIVE
    if units == 0:
        return "invalid_units", UNITS_ZERO
    if units >= _MAX_UNITS:
        return "invalid_units", UNITS_TOO_LARGE
    exponent = units.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < _MICRO_EXPONENT:
        return "invalid_units", UNITS_TOO_PRECISE
    return units


def line_parse(
    record: Record, *, period_start: datetime | None, period_end: datetime | None, received_at: datetime
) -> ParsedLine:
    """Validate one line. An unreadable line is returned with its error, never raised: the rest go on."""
    if record.fields is None:
        code, message = record.error or ("invalid", "")
        return ParsedLine(record.line_no, "", "", None, None, "", None, code, message)
    fields = record.fields
    scheme = _as_text(fields.get("scheme"))[:32]
    value = _as_text(fields.get("value"))[:_TEXT_LIMIT]
    unit = _as_text(fields.get("unit")).lower()[:16]
    line = ParsedLine(record.line_no, scheme, value, None, None, unit, None)

    def failed(code: str, message: str | Promise) -> ParsedLine:
        line.error_code, line.error_message = code, str(message)
        return line

    if "\ufffd" in value:
        return failed("bad_encoding", BAD_ENCODING)
    if "\x00" in scheme or "\x00" in value or "\x00" in unit:
        # Uploads refuse such lines; one stored before that rule must not fail the chunk's insert, so its echoed
        # texts are kept with the NUL shown as U+FFFD.
        line.scheme, line.value, line.unit = (text.replace("\x00", "\ufffd") for text in (scheme, value, unit))
        return failed("nul_character", NUL_IN_LINE)
    try:
        line.key = identifier_normalize(scheme=scheme, value=value)
    except InvalidIdentifier as exc:
        return failed(exc.code, exc.message)
    units = _units(fields.get("units"))
    if isinstance(units, tuple):
        return failed(*units)
    line.units = units
    if unit not in _UNITS:
        return failed(
            "unknown_unit",
            UNKNOWN_UNIT % {"unit": unit, "units": ", ".join(UsageUnit.values)},
        )
    raw_used_at = fields.get("used_at")
    used_at = _instant(raw_used_at) if isinstance(raw_used_at, str) else None
    if used_at is None:
        return failed("invalid_used_at", USED_AT_INVALID)
    if not date_in_range(used_at):
        return failed("invalid_used_at", date_out_of_range_message())
    line.used_at = used_at
    kind = _as_text(fields.get(KIND_COLUMN)).lower()[:16]
    if kind and kind not in _KINDS:
        return failed("unknown_kind", UNKNOWN_KIND % {"kind": kind, "kinds": ", ".join(WorkKind.values)})
    line.kind = kind
    if used_at > received_at + CLOCK_SKEW:
        return failed("used_at_in_future", USED_AT_IN_FUTURE)
    if (period_start and used_at < period_start) or (period_end and used_at > period_end):
        return failed("used_at_outside_period", USED_AT_OUTSIDE_PERIOD)
    line.dedupe = _dedupe(line.key, units, unit, used_at)
    return line
