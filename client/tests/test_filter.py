"""``optout filter`` on CSV, JSON Lines and Parquet: the split, the counts, the report's hashes, --verify-online."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_registry import API_KEY, FakeRegistry
from optout_client import Registry
from optout_client.cli import main
from optout_client.filter import FilterError, filter_file
from optout_client.http import HttpClient
from optout_client.signing import keys_from_jwks, verify_signed
from optout_client.testing import SnapshotFiles, TestKey, install_local

T = datetime(2026, 3, 1, tzinfo=UTC)
REFUSED = ["9780306406157", "9788937460883"]
ROWS = [
    {"id": 1, "isbn": "9780306406157", "title": "refused"},
    {"id": 2, "isbn": "978-89-374-6088-3", "title": "refused, hyphenated"},
    {"id": 3, "isbn": "9791234567896", "title": "free"},
    {"id": 4, "isbn": "not an isbn", "title": "invalid"},
    {"id": 5, "isbn": "0-306-40615-2", "title": "refused, ISBN-10"},
    {"id": 6, "isbn": "9780262033848", "title": 'free, "quoted", comma'},
]
KEPT_IDS = [3, 6]


@pytest.fixture
def copy(tmp_path: Path, test_key: TestKey) -> Registry:
    keys = [f"isbn:{v}" for v in REFUSED]
    install_local(
        tmp_path / "copy",
        SnapshotFiles(
            as_of=T,
            cursor=3,
            keys={"train-ai": keys, "train-genai": keys},
            url_prefixes=[
                {"purpose": "train-ai", "host": "a.example", "prefix": "https://a.example/x/", "refusal_id": 1}
            ],
        ),
        test_key,
    )
    return Registry.open(tmp_path / "copy")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_report(report: dict[str, object], source: Path, removed: Path, kept: Path, copy: Registry) -> None:
    assert report["counts"] == {
        "read": 6,
        "kept": 2,
        "removed": 4,
        "invalid": 1,
        "not_permitted_key": 3,
        "not_permitted_url_prefix": 0,
    }
    assert report["input"]["sha256"] == _sha256(source)  # type: ignore[index]
    assert report["removed"]["sha256"] == _sha256(removed)  # type: ignore[index]
    assert report["kept"]["sha256"] == _sha256(kept)  # type: ignore[index]
    assert report["snapshot_id"] == copy.snapshot_id
    assert report["cursor"] == 3


def test_csv(copy: Registry, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "isbn", "title"])
        writer.writeheader()
        writer.writerows(ROWS)
    kept, removed, report_path = tmp_path / "kept.csv", tmp_path / "removed.csv", tmp_path / "report.json"

    report = filter_file(
        copy,
        input_path=source,
        column="isbn",
        scheme="isbn",
        kept_path=kept,
        removed_path=removed,
        report_path=report_path,
        batch_size=4,
    )

    _check_report(report, source, removed, kept, copy)
    assert json.loads(report_path.read_text()) == report
    kept_rows = list(csv.DictReader(kept.open(encoding="utf-8")))
    assert [int(r["id"]) for r in kept_rows] == KEPT_IDS
    assert kept_rows[1]["title"] == ROWS[5]["title"]
    assert [int(r["id"]) for r in csv.DictReader(removed.open(encoding="utf-8"))] == [1, 2, 4, 5]


def test_jsonl_gzip_and_keep_invalid(copy: Registry, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl.gz"
    lines = [json.dumps(row, ensure_ascii=False) for row in ROWS]
    source.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    kept, removed = tmp_path / "kept.jsonl", tmp_path / "removed.jsonl"

    report = filter_file(copy, input_path=source, column="isbn", scheme="isbn", kept_path=kept, removed_path=removed)
    _check_report(report, source, removed, kept, copy)
    assert kept.read_text().splitlines() == [lines[2], lines[5]]  # byte for byte

    report = filter_file(
        copy, input_path=source, column="isbn", scheme="isbn", kept_path=kept, removed_path=removed, keep_invalid=True
    )
    assert report["counts"]["kept"] == 3
    assert report["counts"]["invalid"] == 1


def test_parquet_with_a_scheme_column(copy: Registry, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    rows = [dict(r, scheme="isbn") for r in ROWS] + [
        {"id": 7, "isbn": "https://a.example/x/1", "title": "prefix", "scheme": "url"},
        {"id": 8, "isbn": "https://a.example/y", "title": "free url", "scheme": "URL"},
        {"id": 9, "isbn": None, "title": "null", "scheme": "doi"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), source, row_group_size=4)
    kept, removed = tmp_path / "kept.parquet", tmp_path / "removed.parquet"

    report = filter_file(
        copy,
        input_path=source,
        column="isbn",
        scheme_column="scheme",
        kept_path=kept,
        removed_path=removed,
        batch_size=3,
    )

    assert report["counts"] == {
        "read": 9,
        "kept": 3,
        "removed": 6,
        "invalid": 2,
        "not_permitted_key": 3,
        "not_permitted_url_prefix": 1,
    }
    assert pq.read_table(kept).column("id").to_pylist() == [3, 6, 8]
    assert pq.read_table(removed).column("id").to_pylist() == [1, 2, 4, 5, 7, 9]
    assert pq.read_table(kept).schema == pq.read_table(source).schema
    assert report["removed"]["sha256"] == _sha256(removed)
    assert report["input"]["sha256"] == _sha256(source)


def test_a_missing_column_is_a_clear_error(copy: Registry, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,isbn\n1,9780306406157\n")
    with pytest.raises(FilterError, match="no column 'doi'"):
        filter_file(
            copy,
            input_path=source,
            column="doi",
            scheme="doi",
            kept_path=tmp_path / "k.csv",
            removed_path=tmp_path / "r.csv",
        )


def test_verify_online_keeps_signed_receipts(
    fake_registry: FakeRegistry, tmp_path: Path, test_key: TestKey, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = [f"isbn:{v}" for v in REFUSED]
    install_local(
        tmp_path / "copy",
        SnapshotFiles(as_of=T, cursor=3, keys={"train-ai": keys, "train-genai": keys}),
        test_key,
        registry=fake_registry.base_url,
    )
    fake_registry.refused_keys = {"isbn:9780306406157"}  # the other was withdrawn since the snapshot
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))

    code = main(
        [
            "filter",
            "--in",
            str(source),
            "--column",
            "isbn",
            "--scheme",
            "isbn",
            "--kept",
            str(tmp_path / "kept.jsonl"),
            "--removed",
            str(tmp_path / "removed.jsonl"),
            "--report",
            str(tmp_path / "report.json"),
            "--verify-online",
            "--api-key",
            API_KEY,
            "--dir",
            str(tmp_path / "copy"),
        ]
    )

    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    online = report["online"]
    assert online["items"] == 3
    assert online["statuses"] == {"refused": 2, "unregistered": 1}
    assert online["permitted_online"] == 1
    receipts_path = Path(online["receipts"]["path"])
    assert receipts_path == tmp_path / "report.receipts.jsonl"
    published = keys_from_jwks(HttpClient(fake_registry.base_url).get_json("/.well-known/optout-registry/keys.json"))
    for line in receipts_path.read_text().splitlines():
        verify_signed(json.loads(line), published)  # each response verifies as received
    assert [line for line in fake_registry.served if line == "POST /api/v1/lookup"] == ["POST /api/v1/lookup"]
