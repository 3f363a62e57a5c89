"""Cells of the CSV and XLSX files the registry writes, made safe to open in a spreadsheet program.

Those files carry text that other parties chose: a lab's manifest id and model name in a holder's statement,
a holder's work titles in a lab's invoice, identifiers in outcome files. A cell whose text starts like a
formula would run as one in Excel or LibreOffice (CSV injection). Following OWASP's guidance, every text cell
that starts with ``=``, ``+``, ``-``, ``@``, a tab, a line break or NUL, also after leading blanks, gets a leading
apostrophe, and every CSV text field is quoted. Numbers stay numbers: only text is ever changed, so a
negative amount is still a negative number in the sheet.

Every CSV and XLSX writer of the project goes through ``csv_writer``/``csv_stream`` or ``xlsx_text_cell``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

# What a spreadsheet may read as the start of a formula (OWASP, "CSV Injection"; OWASP ASVS 1.2.10 adds the NUL
# character). A line break is there too: some programs drop it and read what follows as the cell's start.
_FORMULA_STARTS = frozenset("=+-@\t\r\n\0")
_OPERATORS = frozenset("=+-@")


def formula_like(text: str) -> bool:
    """Whether a spreadsheet could take ``text`` for a formula: it starts with an operator, a tab or a line
    break, or with an operator after blanks (spreadsheets skip leading spaces, including the full-width one)."""
    if not text:
        return False
    first = text[0]
    if first in _FORMULA_STARTS:
        return True
    if not first.isspace():
        return False
    rest = text.lstrip()
    return bool(rest) and rest[0] in _OPERATORS


def text_cell(text: str) -> str:
    """``text`` as it is safe to show in a spreadsheet: with a leading apostrophe if it looks like a formula.
    The apostrophe is what spreadsheet programs themselves use to mark a cell typed as text."""
    return "'" + text if formula_like(text) else text


class _Numeral:
    """A number written in plain notation (never ``1E+3``). It has ``__float__``, so that the csv module,
    with ``QUOTE_NONNUMERIC``, writes it unquoted, as it does ints."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __float__(self) -> float:
        return float(self.text)


def csv_field(value: Any) -> Any:
    """One CSV field: numbers as numbers (unquoted), dates in ISO 8601, everything else as neutralised text."""
    # Text and ints first: they are nearly every cell of a large file.
    kind = type(value)
    if kind is str:
        return "'" + value if formula_like(value) else value
    if kind is int:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return text_cell(str(value))
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return _Numeral(format(value, "f"))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return text_cell(str(value))


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


class SafeCsvWriter:
    """``csv.writer`` whose rows are made of ``csv_field``s: text quoted and neutralised, numbers bare."""

    def __init__(self, stream: _Writable) -> None:
        self._writer = csv.writer(stream, quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, cells: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_field(cell) for cell in cells])


def csv_writer(stream: _Writable) -> SafeCsvWriter:
    return SafeCsvWriter(stream)


class _Echo:
    def write(self, text: str) -> str:
        return text


def csv_stream(rows: Iterable[Iterable[Any]], *, byte_order_mark: bool = False) -> Iterator[str]:
    """The CSV text of ``rows``, a line at a time, for a ``StreamingHttpResponse``. The byte-order mark makes
    Excel read the file as UTF-8 (Korean text)."""
    if byte_order_mark:
        yield "\ufeff"
    writer = csv_writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def xlsx_text_cell(cell: Any) -> None:
    """Make an openpyxl cell holding text store it as text: openpyxl turns a string starting with ``=`` into a
    formula and ``#N/A`` and the like into error values. Text that looks like a formula is also marked with
    the quote prefix, so that it stays text when someone edits the cell."""
    value = cell.value
    if not isinstance(value, str):
        return
    cell.data_type = "s"
    if formula_like(value):
        cell.quotePrefix = True
