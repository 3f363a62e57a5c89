"""The trade's catalogue formats as import rows: CWR for musical works, DDEX ERN for recordings, ONIX 3.0 for books.

Each reader streams a file and yields ``(row number, values)`` exactly as the CSV, XLSX and JSON Lines readers do
(``registry.imports``), so the import task registers them in chunks with its progress and per-row errors. The row
number is where the person finds the record: the line of a CWR transaction's NWR/REV record, the line of a DDEX
``SoundRecording`` or of an ONIX ``Product``. A record that cannot become a work comes as the ``InvalidInput`` that
says why, reported against its row; a file that is not of its format at all (not XML, no CWR header) raises when the
reading reaches it, which the task's first pass (counting the rows) does before anything is registered.

The XML formats are read with lxml's ``iterparse`` (libxml2; no DTDs, no entities, no network), element by element,
each cleared once read, so a large file is never held in memory. CWR is fixed-width text read line by line, by the
field positions of the CISAC CWR 2.1 specification (no maintained Python parser exists: ``CWR-API`` was last
released in 2017).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from django.utils.translation import gettext_lazy as _
from lxml import etree

from core.errors import InvalidInput
from core.uploads import bounded_lines
from registry.models import ContributorRole, WorkKind

RowValues = dict[str, str]
ImportRow = tuple[int, RowValues | InvalidInput]


def _unreadable(message: Any) -> InvalidInput:
    return InvalidInput(message, code="unreadable_file", field="file")


# --- CWR (Common Works Registration, CISAC) ------------------------------------------------------------

# Field positions (1-based, inclusive) of the CWR 2.1 records read here; every record starts with its type (1-3),
# transaction sequence (4-11) and record sequence (12-19).
_NWR = {"title": (20, 79), "language": (80, 81), "submitter_work": (82, 95), "iswc": (96, 106)}
# SPU (publisher controlled by the submitter) and OPU (other publisher) share a layout.
_PUBLISHER = {"ip": (22, 30), "name": (31, 75), "type": (77, 78), "ipi": (88, 98), "pr_share": (116, 120)}
# SWR (writer controlled by the submitter) and OWR (other writer) share a layout.
_WRITER = {
    "ip": (20, 28),
    "last_name": (29, 73),
    "first_name": (74, 103),
    "designation": (105, 106),
    "ipi": (116, 126),
    "pr_share": (130, 134),
}
# PWR: the publisher a controlled writer is bound to.
_PWR = {"publisher_ip": (20, 28), "writer_ip": (102, 110)}
_WORK_RECORDS = ("NWR", "REV")
_IGNORED_RECORDS = frozenset({"HDR", "GRH", "GRT", "TRL", "ALT", "PER", "REC", "ORN", "INS", "IND", "COM", "MSG"})


def _field(line: str, span: tuple[int, int]) -> str:
    return line[span[0] - 1 : span[1]].strip()


def _share(line: str, span: tuple[int, int], *, row: int) -> int:
    # CWR writes a share as 999V99 (three whole digits, two decimals): hundredths of a percent, our basis points.
    text = _field(line, span) or "0"
    if not text.isdigit():
        raise InvalidInput(
            _("Line %(line)s: the share %(share)s is not a number.") % {"line": row, "share": text},
            code="invalid_share",
            field="contributors",
        )
    return int(text)


class _CwrWork:
    def __init__(self, number: int, kind: str, line: str) -> None:
        self.number = number
        self.values: RowValues = {
            "title": _field(line, _NWR["title"]),
            "kind": WorkKind.MUSICAL_WORK,
            "identifiers": f"iswc:{_field(line, _NWR['iswc'])}" if _field(line, _NWR["iswc"]) else "",
            "language": _field(line, _NWR["language"]).lower(),
        }
        self.contributors: list[dict[str, Any]] = []
        self.publisher_ips: set[str] = set()
        self.writer_ips: set[str] = set()
        self.error: InvalidInput | None = None

    def add(self, record: str, line: str, number: int) -> None:
        if self.error is not None:
            return
        try:
            if record in ("SPU", "OPU"):
                ip = _field(line, _PUBLISHER["ip"])
                self.publisher_ips.add(ip)
                self.contributors.append(
                    {
                        "role": ContributorRole.PUBLISHER,
                        "designation": _field(line, _PUBLISHER["type"]),
                        "name": _field(line, _PUBLISHER["name"]),
                        "ipi": _field(line, _PUBLISHER["ipi"]),
                        "share_bp": _share(line, _PUBLISHER["pr_share"], row=number),
                    }
                )
            elif record in ("SWR", "OWR"):
                ip = _field(line, _WRITER["ip"])
                self.writer_ips.add(ip)
                first, last = _field(line, _WRITER["first_name"]), _field(line, _WRITER["last_name"])
                self.contributors.append(
                    {
                        "role": ContributorRole.WRITER,
                        "designation": _field(line, _WRITER["designation"]),
                        "name": f"{first} {last}".strip(),
                        "ipi": _field(line, _WRITER["ipi"]),
                        "share_bp": _share(line, _WRITER["pr_share"], row=number),
                    }
                )
            elif record == "PWR":
                publisher, writer = _field(line, _PWR["publisher_ip"]), _field(line, _PWR["writer_ip"])
                if publisher not in self.publisher_ips or (writer and writer not in self.writer_ips):
                    raise InvalidInput(
                        _("Line %(line)s: PWR names a publisher or writer this work does not list before it.")
                        % {"line": number},
                        code="invalid_record",
                        field="contributors",
                    )
        except InvalidInput as exc:
            self.error = exc

    def row(self) -> ImportRow:
        if self.error is not None:
            return self.number, self.error
        values = dict(self.values)
        values["contributors"] = json.dumps(self.contributors, ensure_ascii=False)
        values["creators"] = ";".join(c["name"] for c in self.contributors if c["role"] == ContributorRole.WRITER)
        return self.number, values


def cwr_rows(binary: IO[bytes], *, limits: Any) -> Iterator[ImportRow]:
    """One row per NWR/REV transaction, with its SPU/OPU publishers, SWR/OWR writers (shares, IPI) and PWR links."""
    current: _CwrWork | None = None
    seen_header = False
    for number, raw in bounded_lines(binary, limits=limits):
        # CWR is ASCII; 2.2 allows UTF-8 in some fields, which is a superset.
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line.strip():
            continue
        record = line[:3]
        if not seen_header:
            if record != "HDR":
                raise _unreadable(_("This is not a CWR file: it does not start with an HDR record."))
            seen_header = True
            continue
        if record in _WORK_RECORDS:
            if current is not None:
                yield current.row()
            current = _CwrWork(number, record, line)
        elif record in ("SPU", "OPU", "SWR", "OWR", "PWR"):
            if current is None:
                yield (
                    number,
                    InvalidInput(
                        _("Line %(line)s: a %(record)s record comes before any NWR or REV.")
                        % {"line": number, "record": record},
                        code="invalid_record",
                    ),
                )
                continue
            current.add(record, line, number)
        elif record in ("GRT", "TRL", "GRH"):
            if current is not None:
                yield current.row()
                current = None
        elif record not in _IGNORED_RECORDS:
            yield (
                number,
                InvalidInput(
                    _("Line %(line)s: unknown record type %(record)s.") % {"line": number, "record": record[:3]},
                    code="invalid_record",
                ),
            )
    if current is not None:
        yield current.row()


# --- XML: DDEX ERN and ONIX ----------------------------------------------------------------------------


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _texts(element: Any, *path: str) -> list[str]:
    """The texts of the descendants of ``element`` along local names ``path`` (any namespace, any depth between)."""
    found = [element]
    for name in path:
        found = [d for e in found for d in e.iter() if d is not e and _local(d.tag) == name]
    return [(e.text or "").strip() for e in found if (e.text or "").strip()]


def _first(element: Any, *paths: tuple[str, ...]) -> str:
    for path in paths:
        texts = _texts(element, *path)
        if texts:
            return texts[0]
    return ""


def _xml_records(binary: IO[bytes], *, record: str, root_names: tuple[str, ...]) -> Iterator[tuple[int, Any]]:
    parser = etree.iterparse(
        binary,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    root_seen = False
    try:
        for event, element in parser:
            name = _local(element.tag)
            if not root_seen:
                if name not in root_names:
                    raise _unreadable(
                        _("This is not the expected XML: its root element is %(name)s, not %(expected)s.")
                        % {"name": name, "expected": " or ".join(root_names)}
                    )
                root_seen = True
                continue
            if event == "end" and name == record:
                yield element.sourceline or 0, element
                # Read once: free it and what came before it.
                element.clear(keep_tail=False)
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise _unreadable(_("The XML is not well-formed: %(reason)s") % {"reason": str(exc)}) from None


def ddex_rows(binary: IO[bytes]) -> Iterator[ImportRow]:
    """One row per ``SoundRecording`` of a DDEX ERN message (3.x or 4.x): ISRC, title, display artist, and the ISWC
    of its musical work (``musical_work_iswc``: the recording is linked to the registered musical work)."""
    for line, recording in _xml_records(
        binary, record="SoundRecording", root_names=("NewReleaseMessage", "PurgeReleaseMessage")
    ):
        isrc = _first(recording, ("ISRC",))
        values: RowValues = {
            "title": _first(
                recording,
                ("DisplayTitleText",),
                ("ReferenceTitle", "TitleText"),
                ("DisplayTitle", "TitleText"),
                ("Title", "TitleText"),
            ),
            "kind": WorkKind.AUDIO,
            "identifiers": f"isrc:{isrc}" if isrc else "",
            "creators": ";".join(
                dict.fromkeys(_texts(recording, "DisplayArtistName") or _texts(recording, "DisplayArtist", "FullName"))
            ),
            "musical_work_iswc": _first(recording, ("ISWC",)),
        }
        yield line, values


_ONIX_ISBN_TYPES = {"15": "isbn", "02": "isbn", "03": "isbn"}  # ISBN-13, ISBN-10, GTIN-13 (a 978/979 EAN)


def onix_rows(binary: IO[bytes]) -> Iterator[ImportRow]:
    """One row per ``Product`` of an ONIX for Books 3.0 message (reference tag names): ISBN, title, contributors
    (kept as writers, in their sequence) and the publisher."""
    for line, product in _xml_records(binary, record="Product", root_names=("ONIXMessage",)):
        identifiers = []
        for identifier in (e for e in product.iter() if _local(e.tag) == "ProductIdentifier"):
            kind = _first(identifier, ("ProductIDType",))
            value = _first(identifier, ("IDValue",))
            if kind in _ONIX_ISBN_TYPES and value:
                identifiers.append(f"isbn:{value}")
        title = _first(product, ("TitleElement", "TitleText"))
        if not title:
            prefix = _first(product, ("TitleElement", "TitlePrefix"))
            title = " ".join(p for p in (prefix, _first(product, ("TitleElement", "TitleWithoutPrefix"))) if p)
        contributors: list[dict[str, Any]] = []
        for contributor in (e for e in product.iter() if _local(e.tag) == "Contributor"):
            name = _first(contributor, ("PersonName",), ("CorporateName",))
            if not name:
                name = " ".join(
                    p for p in (_first(contributor, ("NamesBeforeKey",)), _first(contributor, ("KeyNames",))) if p
                )
            if name:
                contributors.append(
                    {"role": ContributorRole.WRITER, "designation": "", "name": name, "ipi": "", "share_bp": 0}
                )
        publisher = _first(product, ("Publisher", "PublisherName"))
        if publisher:
            contributors.append(
                {"role": ContributorRole.PUBLISHER, "designation": "", "name": publisher, "ipi": "", "share_bp": 0}
            )
        values: RowValues = {
            "title": title,
            "kind": WorkKind.TEXT,
            "identifiers": ";".join(dict.fromkeys(identifiers)),
            "creators": ";".join(c["name"] for c in contributors if c["role"] == ContributorRole.WRITER),
            "language": _first(product, ("Language", "LanguageCode")),
            "contributors": json.dumps(contributors, ensure_ascii=False),
        }
        yield line, values
