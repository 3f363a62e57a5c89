"""The local copy of the registry in a directory ``D``, as ``optout sync`` keeps it.

``D/state.json`` names the snapshot in force and holds the change feed applied on top of it::

    {"format": "optout-client-state/1", "registry": "https://…", "snapshot_id": "…", "as_of": "…",
     "snapshot_cursor": 1200, "cursor": 1234, "synced_at": "…", "key_id": "…", "public_key": "<base64 raw>",
     "changes": [<change JSON, as the feed sends it>, …]}

``changes`` holds the snapshot's ``scheduled`` changes (recorded before it, taking effect after its ``as_of``) and
every change of the feed after ``snapshot_cursor`` up to ``cursor``. ``D/snapshots/<snapshot_id>/`` holds the
verified snapshot files and the manifest exactly as received. ``D/staging/`` holds downloads in progress. The state
file is replaced atomically (write, fsync, rename), after the snapshot it names is complete: a reader sees the old
copy or the new one, never a mixture.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["SNAPSHOT_FORMAT", "STATE_FORMAT", "ClientState", "NotSynced", "parse_instant", "state_load", "state_save"]

STATE_FORMAT = "optout-client-state/1"
# The snapshot format this client reads; version 2 keys URLs by their canonical form.
SNAPSHOT_FORMAT = "optout-registry-snapshot/2"
STATE_FILE = "state.json"


class NotSynced(FileNotFoundError):
    """The directory holds no synced copy of the registry (run ``optout sync`` first)."""


@dataclass
class ClientState:
    registry: str
    snapshot_id: str
    as_of: str
    snapshot_cursor: int
    cursor: int
    synced_at: str
    key_id: str
    public_key: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    format: str = STATE_FORMAT

    def snapshot_dir(self, directory: Path) -> Path:
        return directory / "snapshots" / self.snapshot_id


def parse_instant(text: str) -> datetime:
    """An RFC 3339 instant, as an aware UTC datetime."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone.")
    return moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def state_load(directory: Path) -> ClientState:
    path = directory / STATE_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise NotSynced(
            f"{directory} holds no copy of the registry yet: run `optout sync --dir {directory}`."
        ) from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not an optout client state file ({STATE_FORMAT}).")
    return ClientState(**{name: data[name] for name in ClientState.__dataclass_fields__ if name in data})


def state_save(directory: Path, state: ClientState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(state), handle, ensure_ascii=False, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / STATE_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not every platform opens directories
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(descriptor)
