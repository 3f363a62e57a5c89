"""``optout sync`` against a registry stand-in over real HTTP serving spec-format snapshots signed with a test key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_registry import API_KEY, FakeRegistry
from optout_client import Registry, SnapshotRefused, SyncError, sync
from optout_client.cli import main
from optout_client.http import RegistryHTTPError
from optout_client.testing import SnapshotFiles, TestKey, change_json

REFUSED = "isbn:9780306406157"
OTHER = "isbn:9788937460883"
PREFIX = {
    "purpose": "train-ai",
    "host": "news.example.kr",
    "prefix": "https://news.example.kr/opinion/",
    "refusal_id": 7,
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _snapshot(cursor: int = 10, *, keys: tuple[str, ...] = (REFUSED,), **extra: object) -> SnapshotFiles:
    return SnapshotFiles(
        as_of=T0,
        cursor=cursor,
        keys={"train-ai": keys, "train-genai": keys},
        url_prefixes=[PREFIX],
        **extra,  # type: ignore[arg-type]
    )


def _sync(registry: FakeRegistry, directory: Path, **options: object) -> object:
    return sync(registry.base_url, directory, api_key=API_KEY, **options)  # type: ignore[arg-type]


def test_sync_verifies_and_answers(fake_registry: FakeRegistry, tmp_path: Path) -> None:
    snapshot = _snapshot()
    fake_registry.publish(snapshot)

    result = _sync(fake_registry, tmp_path)

    copy = Registry.open(tmp_path, verify=True)
    assert copy.snapshot_id == snapshot.snapshot_id
    assert copy.cursor == 10
    assert not copy.may_train("isbn", "0-306-40615-2")
    assert copy.may_train("isbn", "9788937460883")
    assert not copy.may_train("url", "HTTPS://news.example.kr/opinion/2026/a.html")
    assert copy.may_train("url", "https://news.example.kr/sports/a.html")
    assert not copy.may_train("isbn", "not an isbn")
    assert result.new_snapshot  # type: ignore[attr-defined]
    assert result.downloaded_files == 6  # type: ignore[attr-defined]


def test_sync_applies_the_feed_and_future_changes_wait_for_their_instant(
    fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    future = datetime.now(UTC) + timedelta(days=30)
    scheduled = change_json(9, OTHER, "refused", future)  # recorded before the snapshot, effective after it
    fake_registry.publish(_snapshot(scheduled=[scheduled]))
    fake_registry.changes = [
        change_json(11, REFUSED, "permitted", T0 + timedelta(hours=1), old_status="refused"),
        change_json(12, "url:https://b.example/x", "refused", T0 + timedelta(hours=2)),
        change_json(14, "doi:10.1000/182", "refused", future + timedelta(days=1)),
        change_json(15, "https://c.example/private/", "refused", T0, subject_type="url_prefix", host="c.example"),
    ]

    result = _sync(fake_registry, tmp_path, page_size=2)  # three pages

    copy = Registry.open(tmp_path)
    assert result.cursor == 15  # type: ignore[attr-defined]
    assert result.changes_applied == 4  # type: ignore[attr-defined]
    assert copy.may_train("isbn", "9780306406157")  # withdrawn by the feed
    assert not copy.may_train("url", "https://b.example/x")
    assert not copy.may_train("url", "https://c.example/private/page")
    assert copy.may_train("isbn", "9788937460883")  # refused only from `future` on
    assert copy.may_train("doi", "10.1000/182")
    assert not copy.may_train("isbn", "9788937460883", at=future)
    assert copy.may_train("doi", "10.1000/182", at=future)
    assert not copy.may_train("doi", "10.1000/182", at=future + timedelta(days=2))
    assert copy.pending_changes == 2

    # Nothing new: the snapshot is not downloaded again, and the feed resumes from the copy's cursor.
    fake_registry.served.clear()
    again = _sync(fake_registry, tmp_path)
    assert not again.new_snapshot  # type: ignore[attr-defined]
    assert again.changes_applied == 0  # type: ignore[attr-defined]
    assert not [line for line in fake_registry.served if "/files/" in line]
    assert "GET /api/v1/changes" in fake_registry.served


def test_a_manifest_with_one_changed_byte_is_refused_and_nothing_is_replaced(
    fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    first = _snapshot(cursor=10)
    fake_registry.publish(first)
    _sync(fake_registry, tmp_path)
    state_before = (tmp_path / "state.json").read_bytes()

    fake_registry.publish(_snapshot(cursor=20))
    raw = fake_registry.manifest_raw
    fake_registry.manifest_raw = raw.replace(b'"cursor": 20', b'"cursor": 21')
    assert fake_registry.manifest_raw != raw

    with pytest.raises(SnapshotRefused, match="signature does not verify"):
        _sync(fake_registry, tmp_path)

    assert (tmp_path / "state.json").read_bytes() == state_before
    assert Registry.open(tmp_path, verify=True).snapshot_id == first.snapshot_id
    assert not [line for line in fake_registry.served if "/files/" in line and "latest" not in line][6:]


def test_a_file_with_one_changed_byte_is_refused_and_nothing_is_replaced(
    fake_registry: FakeRegistry, tmp_path: Path
) -> None:
    first = _snapshot(cursor=10)
    fake_registry.publish(first)
    _sync(fake_registry, tmp_path)
    state_before = (tmp_path / "state.json").read_bytes()

    second = _snapshot(cursor=20, keys=(OTHER,))
    fake_registry.publish(second)
    data = bytearray(fake_registry.files[second.snapshot_id]["keys-train-ai.bin"])
    data[3] ^= 0x01
    fake_registry.files[second.snapshot_id]["keys-train-ai.bin"] = bytes(data)

    with pytest.raises(SnapshotRefused, match=r"keys-train-ai\.bin does not have the size and SHA-256"):
        _sync(fake_registry, tmp_path)

    assert (tmp_path / "state.json").read_bytes() == state_before
    copy = Registry.open(tmp_path, verify=True)
    assert copy.snapshot_id == first.snapshot_id
    assert not copy.may_train("isbn", "9780306406157")

    # Fixed on the server: the next sync fetches only the file that failed; the others were verified already.
    fake_registry.publish(second)
    fake_registry.served.clear()
    _sync(fake_registry, tmp_path)
    fetched = [line for line in fake_registry.served if "/files/" in line]
    assert fetched == [f"GET /api/v1/snapshots/{second.snapshot_id}/files/keys-train-ai.bin"]
    copy = Registry.open(tmp_path, verify=True)
    assert copy.snapshot_id == second.snapshot_id
    assert copy.may_train("isbn", "9780306406157")
    assert not copy.may_train("isbn", "9788937460883")
    assert [p.name for p in (tmp_path / "snapshots").iterdir()] == [second.snapshot_id]
    assert not (tmp_path / "staging").exists()


def test_a_manifest_signed_by_another_key_or_not_the_pinned_one_is_refused(
    fake_registry: FakeRegistry, tmp_path: Path, test_key: TestKey
) -> None:
    stranger = TestKey.generate()
    snapshot = _snapshot()
    fake_registry.publish(snapshot)

    with pytest.raises(SnapshotRefused, match="not a trusted registry key"):
        _sync(fake_registry, tmp_path, pin_key=stranger.public_b64)
    with pytest.raises(SnapshotRefused, match="not among the registry's published keys"):
        _sync(fake_registry, tmp_path, pin_key=stranger.key_id)
    assert not (tmp_path / "state.json").exists()

    fake_registry.key = stranger  # the manifest is re-signed by a key keys.json does not list
    fake_registry.publish(snapshot)
    fake_registry.key = test_key
    with pytest.raises(SnapshotRefused, match="not a trusted registry key"):
        _sync(fake_registry, tmp_path)

    fake_registry.publish(snapshot)
    _sync(fake_registry, tmp_path, pin_key=test_key.public_b64)
    _sync(fake_registry, tmp_path, pin_key=test_key.key_id)
    assert Registry.open(tmp_path).snapshot_id == snapshot.snapshot_id


def test_an_interrupted_download_resumes_with_range(fake_registry: FakeRegistry, tmp_path: Path) -> None:
    many = tuple(f"doi:10.1000/{n}" for n in range(5000))
    snapshot = _snapshot(keys=many)
    fake_registry.publish(snapshot)
    fake_registry.cut_after["keys-train-ai.bin"] = 12_345

    _sync(fake_registry, tmp_path)

    assert f"GET /api/v1/snapshots/{snapshot.snapshot_id}/files/keys-train-ai.bin bytes=12345-" in fake_registry.served
    assert not Registry.open(tmp_path, verify=True).may_train("doi", "10.1000/4999")


def test_a_partial_file_left_by_an_earlier_run_is_resumed(fake_registry: FakeRegistry, tmp_path: Path) -> None:
    snapshot = _snapshot(keys=tuple(f"doi:10.1000/{n}" for n in range(3000)))
    fake_registry.publish(snapshot)
    data = fake_registry.files[snapshot.snapshot_id]["keys-train-genai.bin"]
    staged = tmp_path / "staging" / snapshot.snapshot_id
    staged.mkdir(parents=True)
    (staged / "keys-train-genai.bin.part").write_bytes(data[:8000])

    _sync(fake_registry, tmp_path)

    assert (
        f"GET /api/v1/snapshots/{snapshot.snapshot_id}/files/keys-train-genai.bin bytes=8000-" in fake_registry.served
    )
    assert not Registry.open(tmp_path, verify=True).may_train("doi", "10.1000/2999", "train-genai")


def test_without_an_api_key_the_error_says_what_to_do(fake_registry: FakeRegistry, tmp_path: Path) -> None:
    fake_registry.publish(_snapshot())
    with pytest.raises(RegistryHTTPError, match=r"HTTP 401.*--api-key"):
        sync(fake_registry.base_url, tmp_path)


def test_another_registrys_directory_is_refused(fake_registry: FakeRegistry, tmp_path: Path) -> None:
    fake_registry.publish(_snapshot())
    _sync(fake_registry, tmp_path)
    with pytest.raises(SyncError, match="holds a copy of"):
        sync("http://127.0.0.1:9", tmp_path, api_key=API_KEY)


def test_the_cli_syncs_checks_and_reports_refusal(
    fake_registry: FakeRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_registry.publish(_snapshot())
    monkeypatch.setenv("OPTOUT_API_KEY", API_KEY)
    assert main(["sync", "--registry", fake_registry.base_url, "--dir", str(tmp_path), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["cursor"] == 10

    assert main(["check", "isbn", "9788937460883", "--dir", str(tmp_path)]) == 0
    assert main(["check", "isbn", "9788937460883", "0-306-40615-2", "x", "--dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "may train" in lines[0]
    assert "NOT PERMITTED (key)" in lines[2]
    assert "INVALID" in lines[3]

    fake_registry.manifest_raw = fake_registry.manifest_raw.replace(b'"cursor": 10', b'"cursor": 11')
    assert main(["sync", "--registry", fake_registry.base_url, "--dir", str(tmp_path), "--quiet"]) == 2
    assert "signature does not verify" in capsys.readouterr().err
