"""``optout filter``: split a dataset into the rows that may be used and the rows that may not, with a report.

Streaming, in batches: CSV and JSON Lines (optionally gzip-compressed, by a ``.gz`` suffix) with the standard
library, Parquet with pyarrow (the ``parquet`` extra). The kept and removed outputs have the input's format; JSON
Lines rows are copied byte for byte, CSV rows are re-quoted by the csv module, Parquet batches keep their schema.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from optout_client.http import HttpClient
from optout_client.registry import INVALID, NOT_PERMITTED_KEY, NOT_PERMITTED_URL_PREFIX, PERMITTED, Registry
from optout_client.signing import KEYS_PATH, SignatureError, b64decode, keys_from_jwks, verify_signed
from optout_client.state import rfc3339

__all__ = ["REPORT_FORMAT", "FilterError", "detect_format", "filter_file", "verify_online"]

REPORT_FORMAT = "optout-filter-report/1"
FORMATS = ("csv", "jsonl", "parquet")
MAX_LOOKUP_ITEMS = 10_000


class FilterError(ValueError):
    """The input cannot be filtered as asked (unknown format, missing column, …)."""


def detect_format(path: Path) -> str:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".tsv"):
        return "csv"
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".parquet", ".pq"):
        return "parquet"
    raise FilterError(f"Cannot tell the format of {path.name}: use .csv, .jsonl or .parquet, or --format.")


@dataclass
class _Counts:
    read: int = 0
    kept: int = 0
    removed: int = 0
    invalid: int = 0
    not_permitted_key: int = 0
    not_permitted_url_prefix: int = 0


@dataclass
class _Removed:
    """The removed items the snapshot marks not permitted (not the invalid ones): what --verify-online sends."""

    items: list[dict[str, str]] = field(default_factory=list)


class _HashingReader(io.RawIOBase):
    """A binary stream that hashes what is read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.bytes += len(data)
        return len(data)


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def filter_file(
    registry: Registry,
    *,
    input_path: Path,
    column: str,
    kept_path: Path,
    removed_path: Path,
    scheme: str | None = None,
    scheme_column: str | None = None,
    purpose: str = "train-ai",
    keep_invalid: bool = False,
    file_format: str | None = None,
    batch_size: int = 20_000,
    report_path: Path | None = None,
    online: HttpClient | None = None,
    online_batch: int = 1_000,
) -> dict[str, Any]:
    """Filters ``input_path`` by the identifiers in ``column``; returns the report (also written to ``report_path``).

    Each row's scheme is ``scheme``, or the value of its ``scheme_column``. A row is removed when the registry's
    copy says it may not be used for ``purpose`` at the instant the filtering started, and when its identifier is
    invalid (unless ``keep_invalid``): such a row cannot be checked, and the server answers ``invalid`` with
    ``may_train: false``.
    """
    if (scheme is None) == (scheme_column is None):
        raise FilterError("Give either --scheme or --scheme-column.")
    file_format = file_format or detect_format(input_path)
    if file_format not in FORMATS:
        raise FilterError(f"Unknown format {file_format!r}: one of {', '.join(FORMATS)}.")
    started = datetime.now(UTC)
    clock = time.perf_counter()
    context = _Context(registry, scheme, scheme_column, purpose, keep_invalid, started, online is not None)
    if file_format == "parquet":
        input_sha256, input_bytes = _filter_parquet(context, input_path, column, kept_path, removed_path, batch_size)
    elif file_format == "csv":
        input_sha256, input_bytes = _filter_csv(context, input_path, column, kept_path, removed_path, batch_size)
    else:
        input_sha256, input_bytes = _filter_jsonl(context, input_path, column, kept_path, removed_path, batch_size)
    removed_sha256, removed_bytes = _sha256_file(removed_path)
    kept_sha256, kept_bytes = _sha256_file(kept_path)
    counts = context.counts
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "registry": registry.registry_url,
        "snapshot_id": registry.snapshot_id,
        "snapshot_as_of": registry.state.as_of,
        "snapshot_cursor": registry.snapshot_cursor,
        "cursor": registry.cursor,
        "as_of": rfc3339(started),
        "purpose": purpose,
        "input": {
            "path": str(input_path),
            "format": file_format,
            "bytes": input_bytes,
            "sha256": input_sha256,
            "column": column,
            "scheme": scheme,
            "scheme_column": scheme_column,
        },
        "kept": {"path": str(kept_path), "bytes": kept_bytes, "sha256": kept_sha256},
        "removed": {"path": str(removed_path), "bytes": removed_bytes, "sha256": removed_sha256},
        "counts": {
            "read": counts.read,
            "kept": counts.kept,
            "removed": counts.removed,
            "invalid": counts.invalid,
            "not_permitted_key": counts.not_permitted_key,
            "not_permitted_url_prefix": counts.not_permitted_url_prefix,
        },
        "invalid_rows": "kept" if keep_invalid else "removed",
        "started_at": rfc3339(started),
        "finished_at": rfc3339(datetime.now(UTC)),
        "seconds": round(time.perf_counter() - clock, 3),
        "client": {"name": "optout-registry-client", "version": _version()},
    }
    if online is not None:
        receipts_path = _receipts_path(report_path, removed_path)
        report["online"] = verify_online(
            online,
            context.removed.items,
            purpose=purpose,
            receipts_path=receipts_path,
            batch=online_batch,
            registry=registry,
        )
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return report


def _receipts_path(report_path: Path | None, removed_path: Path) -> Path:
    base = report_path or removed_path
    return base.with_name(base.name.split(".")[0] + ".receipts.jsonl")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("optout-registry-client")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "unknown"


class _Context:
    def __init__(
        self,
        registry: Registry,
        scheme: str | None,
        scheme_column: str | None,
        purpose: str,
        keep_invalid: bool,
        at: datetime,
        collect: bool,
    ) -> None:
        self.registry = registry
        self.scheme = scheme
        self.scheme_column = scheme_column
        self.purpose = purpose
        self.keep_invalid = keep_invalid
        self.at = at
        self.collect = collect
        self.counts = _Counts()
        self.removed = _Removed()

    def keep_mask(self, values: Sequence[Any], schemes: Sequence[Any] | None) -> list[bool]:
        """Classifies one batch, counts it, and returns which rows to keep."""
        count = len(values)
        if schemes is None:
            assert self.scheme is not None
            codes = _codes_list(self.registry.classify_many(self.scheme, values, self.purpose, at=self.at))
            row_schemes: Sequence[Any] = [self.scheme] * count if self.collect else ()
        else:
            codes = [PERMITTED] * count
            groups: dict[str, list[int]] = {}
            for position, name in enumerate(schemes):
                groups.setdefault(name if isinstance(name, str) else "", []).append(position)
            for name, positions in groups.items():
                sub = _codes_list(
                    self.registry.classify_many(name, [values[p] for p in positions], self.purpose, at=self.at)
                )
                for position, code in zip(positions, sub, strict=True):
                    codes[position] = code
            row_schemes = schemes
        counts = self.counts
        counts.read += count
        keep = []
        for position, code in enumerate(codes):
            if code == PERMITTED:
                keep.append(True)
                continue
            if code == INVALID:
                counts.invalid += 1
                keep.append(self.keep_invalid)
                continue
            if code == NOT_PERMITTED_KEY:
                counts.not_permitted_key += 1
            elif code == NOT_PERMITTED_URL_PREFIX:
                counts.not_permitted_url_prefix += 1
            keep.append(False)
            if self.collect:
                self.removed.items.append({"scheme": str(row_schemes[position]), "value": str(values[position])})
        kept = sum(keep)
        counts.kept += kept
        counts.removed += count - kept
        return keep


def _codes_list(codes: Any) -> list[int]:
    return codes.tolist() if hasattr(codes, "tolist") else list(codes)


def _batches(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _open_text_out(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "wt", encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")


def _open_binary_out(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "wb")  # type: ignore[return-value]
    return path.open("wb")


def _filter_csv(
    context: _Context, input_path: Path, column: str, kept_path: Path, removed_path: Path, batch_size: int
) -> tuple[str, int]:
    with input_path.open("rb") as raw:
        hashing = _HashingReader(raw)
        buffered = io.BufferedReader(hashing, 1 << 20)
        binary: Any = gzip.GzipFile(fileobj=buffered) if input_path.suffix.lower() == ".gz" else buffered
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        dialect = "excel-tab" if ".tsv" in [s.lower() for s in input_path.suffixes] else "excel"
        reader = csv.reader(text, dialect=dialect)
        header = next(reader, None)
        if header is None:
            raise FilterError(f"{input_path} is empty: no header row.")
        value_at = _column_index(header, column, input_path)
        scheme_at = _column_index(header, context.scheme_column, input_path) if context.scheme_column else None
        with _open_text_out(kept_path) as kept_file, _open_text_out(removed_path) as removed_file:
            kept_writer = csv.writer(kept_file, dialect=dialect)
            removed_writer = csv.writer(removed_file, dialect=dialect)
            kept_writer.writerow(header)
            removed_writer.writerow(header)
            for rows in _batches(reader, batch_size):
                values = [row[value_at] if len(row) > value_at else None for row in rows]
                schemes = (
                    [row[scheme_at] if len(row) > scheme_at else "" for row in rows] if scheme_at is not None else None
                )
                keep = context.keep_mask(values, schemes)
                kept_writer.writerows([row for row, k in zip(rows, keep, strict=True) if k])
                removed_writer.writerows([row for row, k in zip(rows, keep, strict=True) if not k])
        while text.read(1 << 20):  # hash to the end (nothing is left after the last row but blank lines)
            pass
        return hashing.digest.hexdigest(), hashing.bytes


def _column_index(header: list[str], column: str, path: Path) -> int:
    try:
        return header.index(column)
    except ValueError:
        raise FilterError(f"{path} has no column {column!r} (columns: {', '.join(header)}).") from None


def _json_field(line: bytes, name: str) -> Any:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    value = row.get(name) if isinstance(row, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # an ISBN written as a number
    return value


def _filter_jsonl(
    context: _Context, input_path: Path, column: str, kept_path: Path, removed_path: Path, batch_size: int
) -> tuple[str, int]:
    with input_path.open("rb") as raw:
        hashing = _HashingReader(raw)
        buffered = io.BufferedReader(hashing, 1 << 20)
        binary: Any = gzip.GzipFile(fileobj=buffered) if input_path.suffix.lower() == ".gz" else buffered
        lines = (line for line in binary if line.strip())
        with _open_binary_out(kept_path) as kept_file, _open_binary_out(removed_path) as removed_file:
            for rows in _batches(lines, batch_size):
                values = [_json_field(line, column) for line in rows]
                schemes = [_json_field(line, context.scheme_column) for line in rows] if context.scheme_column else None
                keep = context.keep_mask(values, schemes)
                for line, k in zip(rows, keep, strict=True):
                    if not line.endswith(b"\n"):
                        line += b"\n"
                    (kept_file if k else removed_file).write(line)
        while binary.read(1 << 20):
            pass
        return hashing.digest.hexdigest(), hashing.bytes


def _filter_parquet(
    context: _Context, input_path: Path, column: str, kept_path: Path, removed_path: Path, batch_size: int
) -> tuple[str, int]:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise FilterError("Parquet needs pyarrow: pip install 'optout-registry-client[parquet]'.") from None
    source = pq.ParquetFile(input_path)
    names = source.schema_arrow.names
    for name in (column, context.scheme_column):
        if name is not None and name not in names:
            raise FilterError(f"{input_path} has no column {name!r} (columns: {', '.join(names)}).")
    with (
        pq.ParquetWriter(kept_path, source.schema_arrow) as kept_writer,
        pq.ParquetWriter(removed_path, source.schema_arrow) as removed_writer,
    ):
        for batch in source.iter_batches(batch_size=batch_size):
            values = batch.column(column)
            if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
                values = pc.cast(values, pa.string())
            schemes = batch.column(context.scheme_column).to_pylist() if context.scheme_column else None
            keep = pa.array(context.keep_mask(values.to_pylist(), schemes), type=pa.bool_())
            kept_writer.write_batch(batch.filter(keep))
            removed_writer.write_batch(batch.filter(pc.invert(keep)))
    return _sha256_file(input_path)


# --- --verify-online ----------------------------------------------------------------------------------------


def verify_online(
    client: HttpClient,
    items: list[dict[str, str]],
    *,
    purpose: str,
    receipts_path: Path,
    batch: int = 1_000,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Sends ``items`` to ``POST /api/v1/lookup`` in batches; writes each signed response, as received, as one line of
    ``receipts_path``; verifies every receipt; returns what the registry answered."""
    batch = max(1, min(batch, MAX_LOOKUP_ITEMS))
    keys = _online_keys(client, registry)
    statuses: dict[str, int] = {}
    permitted: list[dict[str, Any]] = []
    responses = 0
    with receipts_path.open("wb") as out:
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            with client.open("/api/v1/lookup", body={"purpose": purpose, "items": chunk}, method="POST") as response:
                raw = response.read()
            answer = json.loads(raw)
            try:
                verify_signed(answer, keys, what="lookup answer")
            except SignatureError as error:
                raise FilterError(f"A lookup receipt did not verify: {error}") from None
            out.write(raw.rstrip(b"\n") + b"\n")
            responses += 1
            for result in answer.get("results", []):
                statuses[result.get("status", "?")] = statuses.get(result.get("status", "?"), 0) + 1
                if result.get("may_train"):
                    permitted.append(
                        {"input": result.get("input"), "key": result.get("key"), "status": result.get("status")}
                    )
    sha256, _ = _sha256_file(receipts_path)
    return {
        "endpoint": "/api/v1/lookup",
        "items": len(items),
        "responses": responses,
        "receipts": {"path": str(receipts_path), "sha256": sha256},
        "statuses": statuses,
        # Items the snapshot removed but the registry now permits: a change since the copy's cursor, or one of the
        # snapshot filter's rare false positives. They stay removed; the lab may review them.
        "permitted_online": len(permitted),
        "permitted_online_items": permitted[:1000],
    }


def _online_keys(client: HttpClient, registry: Registry | None) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    if registry is not None:
        keys[registry.state.key_id] = b64decode(registry.state.public_key)
    try:
        keys.update(keys_from_jwks(client.get_json(KEYS_PATH)))
    except (SignatureError, OSError, ValueError):
        if not keys:
            raise
    return keys
