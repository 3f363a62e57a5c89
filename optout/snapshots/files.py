"""The snapshot format (``optout-registry-snapshot/2``): file names, the membership hash, and streaming writers.

Everything a lab needs to read or reproduce a snapshot is fixed here and stated in the README ("Snapshots"):

- ``keys-<purpose>.bin``: the keys not permitted for the purpose, as the sorted, de-duplicated array of
  ``membership_hash(key)``, each written as 8 bytes big-endian (numpy: ``np.frombuffer(data, dtype=">u8")``);
- ``membership_hash(key)``: the first 8 bytes of SHA-256 of the UTF-8 key text ``scheme:value``, read as a
  big-endian unsigned 64-bit integer;
- JSON Lines files are gzip-compressed, one compact JSON object per line, ``\\n``-terminated.

The writers stream: a key costs 8 bytes of memory until the membership file is written (sorted in runs and merged,
so even 10^8 keys never become a list of Python integers at once), and a listing line is compressed as it comes.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import sys
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

FORMAT = "optout-registry-snapshot/2"
MEMBERSHIP_HASH = "sha256-64-be"
PURPOSES = ("train-ai", "train-genai")

MANIFEST = "manifest.json"
KINDS = "kinds.json"
URL_PREFIXES = "url-prefixes.jsonl.gz"
SCHEDULED = "scheduled.jsonl.gz"
KEYS_LISTING = "keys.jsonl.gz"


def membership_file(purpose: str) -> str:
    return f"keys-{purpose}.bin"


# Every file a snapshot has, in the order its manifest lists them (the manifest itself is not listed in it).
DATA_FILES = (*(membership_file(purpose) for purpose in PURPOSES), URL_PREFIXES, KINDS, SCHEDULED, KEYS_LISTING)
FILE_NAMES = (MANIFEST, *DATA_FILES)

MEDIA_TYPES = {
    MANIFEST: "application/json",
    KINDS: "application/json",
    URL_PREFIXES: "application/gzip",
    SCHEDULED: "application/gzip",
    KEYS_LISTING: "application/gzip",
    **{membership_file(purpose): "application/octet-stream" for purpose in PURPOSES},
}

# Fast compression: the listings are written once per snapshot and read rarely; level 1 keeps gzip off the
# build's critical path (about five times faster than the default level 9 for a few percent more bytes).
GZIP_LEVEL = 1
# Keys sorted at once; more are sorted in runs of this size and merged, so sorting never holds more than one run
# as Python integers (about 36 bytes each, against the array's 8).
SORT_RUN = 2_000_000
_WRITE_BATCH = 1 << 16


def membership_hash(key: str) -> int:
    """The 64-bit membership hash of a key text ``scheme:value`` (as stored: normalized)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def membership_read(data: bytes) -> array[int]:
    """The hashes of a membership file, in file order (a check for tests and tools; labs use numpy)."""
    values = array("Q", data)
    if sys.byteorder == "little":
        values.byteswap()
    return values


class MembershipWriter:
    """Collects the hashes of one purpose's keys; ``write`` sorts, de-duplicates and writes them big-endian."""

    def __init__(self) -> None:
        self.hashes: array[int] = array("Q")

    def add(self, key: str) -> None:
        self.hashes.append(int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big"))

    def write(self, path: Path) -> int:
        """Write the file; returns how many hashes it holds. The collected hashes are released."""
        hashes, self.hashes = self.hashes, array("Q")
        count = 0
        with path.open("wb") as handle:
            batch: array[int] = array("Q")
            for value in _sorted_unique(hashes):
                batch.append(value)
                if len(batch) >= _WRITE_BATCH:
                    count += _write_big_endian(handle, batch)
                    batch = array("Q")
            count += _write_big_endian(handle, batch)
        return count


def _sorted_unique(hashes: array[int]) -> Iterator[int]:
    runs: list[Iterable[int]]
    if len(hashes) <= SORT_RUN:
        runs = [sorted(hashes)]
    else:
        runs = []
        while hashes:
            # Cut from the end, so the unsorted array shrinks as the sorted runs grow.
            tail = hashes[-SORT_RUN:]
            del hashes[-SORT_RUN:]
            runs.append(array("Q", sorted(tail)))
            del tail
    previous = -1
    for value in runs[0] if len(runs) == 1 else heapq.merge(*runs):
        if value != previous:
            yield value
            previous = value


def _write_big_endian(handle: IO[bytes], batch: array[int]) -> int:
    if sys.byteorder == "little":
        batch.byteswap()
    handle.write(batch.tobytes())
    return len(batch)


class JsonLinesWriter:
    """Gzip-compressed JSON Lines, written in batches; ``count`` lines so far."""

    def __init__(self, path: Path) -> None:
        self._raw = path.open("wb")
        # No file name and a zero time in the gzip header: the same lines are always the same bytes.
        self._file = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=self._raw, mtime=0)
        self._lines: list[bytes] = []
        self.count = 0

    def add(self, record: dict[str, Any]) -> None:
        # OPT_UTC_Z: instants (read from the database in UTC) are written 2026-12-05T09:00:00Z, as core.dates.rfc3339.
        self._lines.append(orjson.dumps(record, option=orjson.OPT_UTC_Z))
        self.count += 1
        if len(self._lines) >= 10_000:
            self._flush()

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.add(record)

    def _flush(self) -> None:
        if self._lines:
            self._file.write(b"\n".join(self._lines) + b"\n")
            self._lines = []

    def close(self) -> None:
        self._flush()
        self._file.close()
        self._raw.close()


def file_entry(path: Path, *, name: str) -> dict[str, Any]:
    """A manifest's description of one file: name, bytes, SHA-256 (hex) and media type."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"name": name, "bytes": size, "sha256": digest.hexdigest(), "media_type": MEDIA_TYPES[name]}


def json_bytes(value: Any) -> bytes:
    """A JSON file of the snapshot (the manifest, ``kinds.json``): sorted keys, indented, newline-terminated, so
    that the same content is always the same bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z) + b"\n"
