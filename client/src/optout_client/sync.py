"""``optout sync``: download the latest signed snapshot, verify it, and apply the change feed.

1. ``GET /api/v1/snapshots/latest``: the manifest. Its ``receipt`` must verify (JCS + Ed25519) against a pinned key
   or a key of the registry's ``/.well-known/optout-registry/keys.json``; otherwise nothing is downloaded.
2. Every file the manifest lists is downloaded into ``D/staging/<snapshot_id>/`` (a partial download is resumed with
   ``Range``; a file already complete and verified is not fetched again) and must have the manifest's size and
   SHA-256; otherwise the snapshot is refused and the copy in force stays as it was.
3. ``GET /api/v1/changes?after=<cursor>`` pages, from the snapshot's cursor (or the copy's, when the snapshot is the
   one already held), are added to the overlay; then ``state.json`` is replaced in one rename.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optout_client.http import HttpClient, RegistryHTTPError
from optout_client.signing import (
    KEYS_PATH,
    SignatureError,
    keys_from_jwks,
    parse_pinned_key,
    verify_signed,
)
from optout_client.state import SNAPSHOT_FORMAT, ClientState, NotSynced, rfc3339, state_load, state_save

__all__ = ["SnapshotRefused", "SyncError", "SyncResult", "sync"]

MEMBERSHIP_HASH = "sha256-64-be"
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REQUIRED_FILES = ("keys-train-ai.bin", "keys-train-genai.bin", "url-prefixes.jsonl.gz", "scheduled.jsonl.gz")
_BLOCK = 1 << 20


class SyncError(RuntimeError):
    """Sync could not complete; the copy in force is unchanged (or is a complete, older state)."""


class SnapshotRefused(SyncError):
    """The snapshot failed verification (signature, format, a file's size or SHA-256): nothing was replaced."""


@dataclass(frozen=True)
class SyncResult:
    snapshot_id: str
    as_of: str
    snapshot_cursor: int
    cursor: int
    downloaded_files: int
    reused_files: int
    changes_applied: int
    new_snapshot: bool


Progress = Callable[[str], None]


def sync(
    registry: str,
    directory: str | Path,
    *,
    api_key: str | None = None,
    pin_key: str | None = None,
    page_size: int = 10_000,
    http: HttpClient | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Brings the copy in ``directory`` up to date with the registry at ``registry`` (its base URL)."""
    directory = Path(directory)
    say = progress or (lambda message: None)
    client = http or HttpClient(registry, api_key=api_key)
    try:
        current: ClientState | None = state_load(directory)
    except NotSynced:
        current = None
    if current is not None and current.registry.rstrip("/") != registry.rstrip("/"):
        raise SyncError(f"{directory} holds a copy of {current.registry}, not {registry}: use another directory.")

    manifest_raw = _get_bytes(client, "/api/v1/snapshots/latest")
    try:
        manifest = json.loads(manifest_raw)
    except ValueError:
        raise SnapshotRefused("The snapshot manifest is not JSON.") from None
    if not isinstance(manifest, dict):
        raise SnapshotRefused("The snapshot manifest is not a JSON object.")
    keys = _trusted_keys(client, pin_key)
    try:
        key_id = verify_signed(manifest, keys, what="snapshot manifest")
    except SignatureError as error:
        raise SnapshotRefused(f"Snapshot refused: {error}") from None
    _check_manifest(manifest)
    snapshot_id = str(manifest["snapshot_id"])
    say(f"snapshot {snapshot_id} as of {manifest['as_of']}, cursor {manifest['cursor']} (signed by key {key_id})")

    downloaded = reused = 0
    if current is not None and current.snapshot_id == snapshot_id:
        state = current
        new_snapshot = False
    elif current is not None and int(manifest["cursor"]) < current.snapshot_cursor:
        say(f"the registry's latest snapshot is older than the one held ({current.snapshot_id}): keeping it")
        state = current
        new_snapshot = False
    else:
        staged, downloaded, reused = _download(client, directory, manifest, manifest_raw, say)
        scheduled = _read_scheduled(staged / "scheduled.jsonl.gz", int(manifest["cursor"]))
        state = ClientState(
            registry=registry,
            snapshot_id=snapshot_id,
            as_of=str(manifest["as_of"]),
            snapshot_cursor=int(manifest["cursor"]),
            cursor=int(manifest["cursor"]),
            synced_at=rfc3339(datetime.now(UTC)),
            key_id=key_id,
            public_key=_b64(keys[key_id]),
            changes=scheduled,
        )
        new_snapshot = True

    applied = 0
    try:
        applied = _apply_feed(client, state, page_size, say)
    finally:
        # A new snapshot replaces the copy in force only once it is at least as current as that copy.
        if not new_snapshot or current is None or state.cursor >= current.cursor:
            if new_snapshot:
                _install(directory, state.snapshot_id)
            state.synced_at = rfc3339(datetime.now(UTC))
            state_save(directory, state)
            _cleanup(directory, keep=state.snapshot_id)
    say(f"applied {applied} changes; cursor {state.cursor}")
    return SyncResult(
        snapshot_id=state.snapshot_id,
        as_of=state.as_of,
        snapshot_cursor=state.snapshot_cursor,
        cursor=state.cursor,
        downloaded_files=downloaded,
        reused_files=reused,
        changes_applied=applied,
        new_snapshot=new_snapshot,
    )


# --- verification -------------------------------------------------------------------------------------------


def _trusted_keys(client: HttpClient, pin_key: str | None) -> dict[str, bytes]:
    pinned_id, pinned_raw = parse_pinned_key(pin_key) if pin_key else (None, None)
    if pinned_id is not None and pinned_raw is not None:
        return {pinned_id: pinned_raw}
    try:
        published = keys_from_jwks(client.get_json(KEYS_PATH))
    except SignatureError as error:
        raise SnapshotRefused(f"The registry's keys.json is unusable: {error}") from None
    if pinned_id is not None:
        if pinned_id not in published:
            raise SnapshotRefused(f"The pinned key {pinned_id} is not among the registry's published keys.")
        return {pinned_id: published[pinned_id]}
    return published


def _check_manifest(manifest: dict[str, Any]) -> None:
    def refuse(why: str) -> SnapshotRefused:
        return SnapshotRefused(f"Snapshot refused: {why}")

    if manifest.get("format") != SNAPSHOT_FORMAT:
        raise refuse(f"format {manifest.get('format')!r}, this client reads {SNAPSHOT_FORMAT}.")
    if manifest.get("membership_hash") != MEMBERSHIP_HASH:
        raise refuse(f"membership hash {manifest.get('membership_hash')!r}, this client knows {MEMBERSHIP_HASH}.")
    snapshot_id = manifest.get("snapshot_id")
    if not isinstance(snapshot_id, str) or not _FILE_NAME.fullmatch(snapshot_id):
        raise refuse(f"the snapshot id {snapshot_id!r} is not a plain name.")
    if not isinstance(manifest.get("cursor"), int) or not isinstance(manifest.get("as_of"), str):
        raise refuse("it has no cursor or as_of.")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise refuse("it lists no files.")
    names = set()
    for entry in files:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not _FILE_NAME.fullmatch(entry["name"])
            or entry["name"] == "manifest.json"
            or not isinstance(entry.get("bytes"), int)
            or entry["bytes"] < 0
            or not isinstance(entry.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        ):
            raise refuse(f"a file entry is malformed: {entry!r}.")
        names.add(entry["name"])
    missing = [name for name in _REQUIRED_FILES if name not in names]
    if missing:
        raise refuse(f"it lacks {', '.join(missing)}.")


# --- downloads ----------------------------------------------------------------------------------------------


def _get_bytes(client: HttpClient, path: str) -> bytes:
    with client.open(path) as response:
        return response.read()  # type: ignore[no-any-return]


def _sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _download(
    client: HttpClient, directory: Path, manifest: dict[str, Any], manifest_raw: bytes, say: Progress
) -> tuple[Path, int, int]:
    snapshot_id = str(manifest["snapshot_id"])
    staged = directory / "staging" / snapshot_id
    installed = directory / "snapshots" / snapshot_id
    if installed.is_dir() and not staged.exists():
        # Left by an interrupted sync after its files were complete: verify it again like any staged copy.
        staged.parent.mkdir(parents=True, exist_ok=True)
        installed.rename(staged)
    staged.mkdir(parents=True, exist_ok=True)
    downloaded = reused = 0
    failed: list[str] = []
    for entry in manifest["files"]:
        name, size, sha256 = entry["name"], entry["bytes"], entry["sha256"]
        final = staged / name
        if final.exists() and final.stat().st_size == size and _sha256_of(final) == sha256:
            reused += 1
            continue
        final.unlink(missing_ok=True)
        part = staged / (name + ".part")
        for _attempt in (1, 2):
            _fetch_resuming(client, f"/api/v1/snapshots/{snapshot_id}/files/{name}", part, size, sha256, say)
            if part.stat().st_size == size and _sha256_of(part) == sha256:
                break
            part.unlink()  # a resumed download may have joined two versions: once more from the start
        else:
            failed.append(
                f"{name} does not have the size and SHA-256 its signed manifest gives ({size} bytes, {sha256})"
            )
            continue
        part.rename(final)
        downloaded += 1
        say(f"  {name}: {size} bytes, verified")
    if failed:
        # The files that did verify stay staged: the next sync fetches only the others.
        raise SnapshotRefused(f"Snapshot {snapshot_id} refused: {'; '.join(failed)}. Nothing was replaced.")
    (staged / "manifest.json").write_bytes(manifest_raw)
    return staged, downloaded, reused


class _Interrupted(Exception):
    pass


def _fetch_resuming(client: HttpClient, path: str, part: Path, size: int, sha256: str, say: Progress) -> None:
    """Downloads into ``part``, resuming with Range after a broken connection (a few times, then gives up: the next
    sync resumes from what is on disk)."""
    for _attempt in range(4):
        try:
            _fetch_file(client, path, part, size, sha256)
            return
        except _Interrupted:
            have = part.stat().st_size if part.exists() else 0
            say(f"  {path.rsplit('/', 1)[-1]}: interrupted at {have} of {size} bytes, resuming")
    raise SyncError(f"The download of {path} keeps breaking off; run sync again to resume it.")


def _fetch_file(client: HttpClient, path: str, part: Path, size: int, sha256: str) -> None:
    import http.client

    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return
    headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha256}"'} if have else {}
    try:
        response = client.open(path, headers=headers, ok=(200, 206))
    except RegistryHTTPError as error:
        if error.status == 416:  # the range is past the end: start again
            part.unlink(missing_ok=True)
            response = client.open(path, ok=(200,))
        else:
            raise
    with response:
        mode = "ab" if response.status == 206 else "wb"
        length = response.headers.get("Content-Length")
        expected = (have if response.status == 206 else 0) + int(length) if length and length.isdigit() else None
        with part.open(mode) as handle:
            try:
                while block := response.read(_BLOCK):
                    handle.write(block)
                    if handle.tell() > size:
                        break
            except http.client.IncompleteRead as error:
                handle.write(error.partial)
                raise _Interrupted() from None
            except (OSError, http.client.HTTPException):
                raise _Interrupted() from None
            if expected is not None and handle.tell() < min(expected, size):
                raise _Interrupted()  # the connection ended before the body did


def _install(directory: Path, snapshot_id: str) -> None:
    staged = directory / "staging" / snapshot_id
    installed = directory / "snapshots" / snapshot_id
    if staged.is_dir():
        installed.parent.mkdir(parents=True, exist_ok=True)
        if installed.exists():
            shutil.rmtree(installed)
        staged.rename(installed)


def _cleanup(directory: Path, *, keep: str) -> None:
    snapshots = directory / "snapshots"
    if snapshots.is_dir():
        for old in snapshots.iterdir():
            if old.name != keep and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    # Any staged download is of a snapshot other than the one now in force, and no newer one exists.
    shutil.rmtree(directory / "staging", ignore_errors=True)


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode("ascii")


# --- the change feed ----------------------------------------------------------------------------------------

_CHANGE_FIELDS = ("cursor", "subject_type", "subject", "purpose", "new_status", "effective_at")


def _check_change(change: Any) -> dict[str, Any]:
    if not isinstance(change, dict) or any(name not in change for name in _CHANGE_FIELDS):
        raise SyncError(f"The change feed sent a malformed change: {change!r}.")
    if not isinstance(change["cursor"], int):
        raise SyncError(f"The change feed sent a change without an integer cursor: {change!r}.")
    return change


def _read_scheduled(path: Path, cursor: int) -> list[dict[str, Any]]:
    changes = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                change = _check_change(json.loads(line))
                if change["cursor"] > cursor:
                    raise SnapshotRefused("Snapshot refused: a scheduled change lies beyond the snapshot's cursor.")
                changes.append(change)
    return changes


def _apply_feed(client: HttpClient, state: ClientState, page_size: int, say: Progress) -> int:
    applied = 0
    while True:
        page = client.get_json("/api/v1/changes", query={"after": state.cursor, "limit": page_size})
        if not isinstance(page, dict) or not isinstance(page.get("changes"), list):
            raise SyncError("The change feed's answer has no list of changes.")
        previous = state.cursor
        for raw in page["changes"]:
            change = _check_change(raw)
            if change["cursor"] <= previous:
                raise SyncError(
                    f"The change feed went backwards (cursor {change['cursor']} after {previous}): not applied."
                )
            previous = change["cursor"]
        state.changes.extend(page["changes"])
        applied += len(page["changes"])
        next_cursor = page.get("next_cursor", previous)
        if not isinstance(next_cursor, int) or next_cursor < previous:
            raise SyncError(f"The change feed's next_cursor {next_cursor!r} is before its last change {previous}.")
        state.cursor = next_cursor
        if page["changes"]:
            say(f"  changes up to cursor {state.cursor}")
        if not page.get("has_more") or not page["changes"]:
            return applied
