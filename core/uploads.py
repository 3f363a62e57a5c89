"""Bounds on reading an uploaded file: its size as sent, its size inflated, each line, every line, and time.

A few megabytes of gzip can inflate to gigabytes, hold one line of gigabytes (read whole, it exhausts the web
worker's memory) or billions of blank lines (each cheap, together minutes of CPU). Uploads are therefore read
through these readers, at the upload (with every limit and a deadline) and again by the worker (with the line
limit, so it never holds an unbounded line either). Each refusal is a ``RegistryError`` with its own code and,
where it applies, the line.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, AnyStr

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.utils.translation import gettext_lazy as _

from core.errors import InvalidInput

# How many lines are read between two looks at the clock: often enough for the deadline, rarely enough to be free.
_CLOCK_EVERY = 1024


class UploadTooLarge(InvalidInput):
    """An upload over one of its size limits. ``code``: ``file_too_large`` (bytes as sent),
    ``inflated_too_large`` (bytes once decompressed), ``too_many_lines`` (lines, blank ones included) or
    ``inspection_timeout`` (reading it to check it took longer than allowed)."""

    code = "file_too_large"
    status = 413
    default_message = _("The file is too large.")


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may hold. ``max_seconds`` is None where nobody waits on the reading (the worker)."""

    max_bytes: int
    max_inflated_bytes: int
    max_line_bytes: int
    max_lines: int
    max_seconds: float | None = None


def _line_error(code: str, message: Any, line: int) -> InvalidInput:
    return InvalidInput(message, code=code, field="file", extra={"line": line})


def upload_size_check(file: IO[bytes], *, max_bytes: int) -> None:
    """Refuse a file larger than ``max_bytes`` as sent, before anything reads it."""
    size = getattr(file, "size", None)
    if not isinstance(size, int):
        position = file.tell()
        size = file.seek(0, io.SEEK_END)
        file.seek(position)
    if size > max_bytes:
        raise UploadTooLarge(
            _("The file is %(size)s bytes; at most %(max)s bytes are accepted. Split it into several files.")
            % {"size": size, "max": max_bytes},
            code="file_too_large",
            field="file",
        )


class _Budget:
    """Inflated bytes and time spent, shared by every reader of one pass over a file."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.read = 0
        self.deadline = time.monotonic() + limits.max_seconds if limits.max_seconds is not None else None

    def spend(self, size: int) -> None:
        self.read += size
        if self.read > self.limits.max_inflated_bytes:
            raise UploadTooLarge(
                _("Once decompressed, the file holds more than %(max)s bytes; split it into several files.")
                % {"max": self.limits.max_inflated_bytes},
                code="inflated_too_large",
                field="file",
            )

    def clock(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise UploadTooLarge(
                _("Checking the file took longer than %(seconds)s seconds; split it into smaller files.")
                % {"seconds": self.limits.max_seconds},
                code="inspection_timeout",
                field="file",
            )


class _Counted(io.RawIOBase):
    """A binary stream that charges what it reads to a budget (the bytes after decompression)."""

    def __init__(self, inner: IO[bytes], budget: _Budget) -> None:
        self.inner = inner
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.budget.spend(len(data))
        buffer[: len(data)] = data
        return len(data)


def bounded_binary(binary: IO[bytes], *, limits: UploadLimits) -> tuple[IO[bytes], _Budget]:
    """``binary`` read through the inflated-bytes limit and the deadline; lines come from ``bounded_lines``."""
    budget = _Budget(limits)
    return io.BufferedReader(_Counted(binary, budget), buffer_size=1 << 16), budget


def _too_many_lines(limits: UploadLimits) -> UploadTooLarge:
    return UploadTooLarge(
        _("The file holds more than %(max)s lines (blank lines count too); split it into several files.")
        % {"max": limits.max_lines},
        code="too_many_lines",
        field="file",
    )


def _too_long(limits: UploadLimits, line: int) -> InvalidInput:
    return _line_error(
        "line_too_long",
        _("Line %(line)s is longer than %(max)s bytes.") % {"line": line, "max": limits.max_line_bytes},
        line,
    )


def nul_refused(line: int) -> InvalidInput:
    return _line_error(
        "nul_character",
        _("Line %(line)s contains a NUL character (U+0000), which text may not hold.") % {"line": line},
        line,
    )


def _bounded(
    readline: Callable[[int], AnyStr],
    *,
    line_end: AnyStr,
    nul_marks: tuple[AnyStr, ...],
    limits: UploadLimits,
    budget: _Budget | None,
    first_line: int,
    refuse_nul: bool,
) -> Iterator[tuple[int, AnyStr]]:
    """The lines ``readline`` gives, numbered, counted and bounded: what both readers below share."""
    limit = limits.max_line_bytes
    count = 0
    # Two more than the limit: a line of exactly the limit comes whole with its CR LF.
    while line := readline(limit + 2):
        number = first_line + count
        count += 1
        if count > limits.max_lines:
            raise _too_many_lines(limits)
        if len(line) > limit and len(line.rstrip(line_end)) > limit:
            raise _too_long(limits, number)
        if refuse_nul and any(mark in line for mark in nul_marks):
            raise nul_refused(number)
        if budget is not None and count % _CLOCK_EVERY == 0:
            budget.clock()
        yield number, line


def bounded_lines(
    binary: IO[bytes],
    *,
    limits: UploadLimits,
    budget: _Budget | None = None,
    first_line: int = 1,
    refuse_nul: bool = False,
) -> Iterator[tuple[int, bytes]]:
    """Every line of ``binary`` (blank ones included) with its number, none longer than the limit.

    ``first_line`` is the number of the file's first line (0 when a header line goes unnumbered). With
    ``refuse_nul``, a line holding a NUL byte, or JSON's escape for one, is refused.
    """
    return _bounded(
        binary.readline,
        line_end=b"\r\n",
        nul_marks=(b"\x00", b"\\u0000"),
        limits=limits,
        budget=budget,
        first_line=first_line,
        refuse_nul=refuse_nul,
    )


def bounded_text_lines(
    text: IO[str],
    *,
    limits: UploadLimits,
    budget: _Budget | None = None,
    first_line: int = 1,
    refuse_nul: bool = False,
) -> Iterator[str]:
    """Like ``bounded_lines`` for text (the line limit counts characters): what ``csv.reader`` reads from.

    Reading through ``readline`` with a size keeps universal newlines (a bare CR ends a line, as ``newline=""``
    does) and never holds more than the limit.
    """
    numbered = _bounded(
        text.readline,
        line_end="\r\n",
        nul_marks=("\x00",),
        limits=limits,
        budget=budget,
        first_line=first_line,
        refuse_nul=refuse_nul,
    )
    return (line for _number, line in numbered)


class UploadCeilingHandler(FileUploadHandler):
    """Stops receiving a file upload past the largest any upload may be (``UPLOAD_CEILING_BYTES``), so a huge
    body is not spooled to disk whole before the service refuses it. The services apply each kind's own limit
    (``upload_size_check``); this bounds what reaches them. The API answers 413, the portal 400."""

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.UPLOAD_CEILING_BYTES:
            raise RequestDataTooBig("An uploaded file exceeded settings.UPLOAD_CEILING_BYTES.")
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
