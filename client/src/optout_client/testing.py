"""Writing snapshots in the registry's format, for tests and benchmarks (signing needs ``cryptography``).

This is the format of the snapshot files as the server writes them (see the repository README, "For AI labs"), not
the server's own code: the client's tests build snapshots with it, serve them over HTTP, and sync from them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optout_client.jcs import canonicalize
from optout_client.membership import key_hash
from optout_client.signing import key_id_of
from optout_client.state import rfc3339

__all__ = ["SnapshotFiles", "TestKey", "change_json", "membership_bytes", "sign_document"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TestKey:
    """An Ed25519 key pair standing in for the registry's receipt key."""

    __test__ = False  # not a pytest test class

    private: Any

    @classmethod
    def generate(cls) -> TestKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    def jwks(self, status: str = "current") -> dict[str, Any]:
        """keys.json as ``/.well-known/optout-registry/keys.json`` serves it."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64url(self.public_raw),
                    "kid": self.key_id,
                    "use": "sig",
                    "alg": "EdDSA",
                    "status": status,
                }
            ]
        }


def sign_document(payload: Mapping[str, Any], key: TestKey) -> dict[str, Any]:
    """``{**payload, "receipt": …}`` signed as the registry's ``receipt_sign`` does (JCS + Ed25519)."""
    signature = key.private.sign(canonicalize(dict(payload)))
    return {
        **payload,
        "receipt": {
            "alg": "Ed25519",
            "key_id": key.key_id,
            "signature": _b64url(signature),
            "canonicalization": "JCS (RFC 8785)",
        },
    }


def membership_bytes(keys: Iterable[str]) -> bytes:
    """A membership file's bytes for these key texts: sorted distinct hashes, 8 bytes big-endian each."""
    return b"".join(value.to_bytes(8, "big") for value in sorted({key_hash(key) for key in keys}))


def change_json(
    cursor: int,
    subject: str,
    new_status: str,
    effective_at: datetime,
    *,
    subject_type: str = "key",
    purpose: str = "train-ai",
    old_status: str = "permitted",
    host: str = "",
) -> dict[str, Any]:
    """One change as the feed, webhooks and ``scheduled.jsonl.gz`` write it."""
    return {
        "cursor": cursor,
        "subject_type": subject_type,
        "subject": subject,
        "host": host,
        "purpose": purpose,
        "old_status": old_status,
        "new_status": new_status,
        "effective_at": rfc3339(effective_at),
        "recorded_at": rfc3339(datetime.now(UTC)),
        "cause": {"event_id": cursor, "code": "optout.refusal.filed"},
    }


def _gzip_lines(rows: Iterable[Mapping[str, Any]]) -> bytes:
    text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
    return gzip.compress(text.encode("utf-8"), mtime=0)


@dataclass
class SnapshotFiles:
    """A snapshot's contents; ``write`` puts its files and signed manifest into a directory."""

    as_of: datetime
    cursor: int
    keys: Mapping[str, Iterable[str]] = field(default_factory=dict)  # purpose -> key texts not permitted
    key_hashes: Mapping[str, bytes] = field(default_factory=dict)  # purpose -> membership bytes (benchmarks)
    url_prefixes: Iterable[Mapping[str, Any]] = ()  # {"purpose", "host", "prefix", "refusal_id"}
    kinds: Mapping[str, list[str]] = field(default_factory=dict)
    scheduled: Iterable[Mapping[str, Any]] = ()
    snapshot_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    last_refusal_event_id: int = 0

    def contents(self) -> dict[str, bytes]:
        purposes = ("train-ai", "train-genai")
        files: dict[str, bytes] = {}
        listing = []
        for purpose in purposes:
            keys = sorted(set(self.keys.get(purpose, ())))
            data = self.key_hashes.get(purpose)
            files[f"keys-{purpose}.bin"] = data if data is not None else membership_bytes(keys)
            listing += [
                {
                    "key": key,
                    "purpose": purpose,
                    "status": "refused",
                    "work_id": None,
                    "refusal_id": None,
                    "since": rfc3339(self.as_of),
                }
                for key in keys
            ]
        prefixes = list(self.url_prefixes)
        files["url-prefixes.jsonl.gz"] = _gzip_lines(prefixes)
        files["kinds.json"] = json.dumps({p: self.kinds.get(p, []) for p in purposes}).encode()
        scheduled = list(self.scheduled)
        files["scheduled.jsonl.gz"] = _gzip_lines(scheduled)
        files["keys.jsonl.gz"] = _gzip_lines(listing)
        return files

    def manifest(self, key: TestKey, files: Mapping[str, bytes]) -> dict[str, Any]:
        purposes = ("train-ai", "train-genai")
        prefixes = list(self.url_prefixes)
        payload = {
            "format": "optout-registry-snapshot/2",
            "snapshot_id": self.snapshot_id,
            "as_of": rfc3339(self.as_of),
            "cursor": self.cursor,
            "last_refusal_event_id": self.last_refusal_event_id,
            "membership_hash": "sha256-64-be",
            "purposes": list(purposes),
            "counts": {
                "keys": {p: len(files[f"keys-{p}.bin"]) // 8 for p in purposes},
                "url_prefixes": {p: sum(1 for x in prefixes if x["purpose"] == p) for p in purposes},
                "kinds": {p: len(self.kinds.get(p, [])) for p in purposes},
                "scheduled": len(list(self.scheduled)),
            },
            "files": [
                {
                    "name": name,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "media_type": "application/octet-stream"
                    if name.endswith(".bin")
                    else "application/gzip"
                    if name.endswith(".gz")
                    else "application/json",
                }
                for name, data in sorted(files.items())
            ],
        }
        return sign_document(payload, key)

    def write(self, directory: Path, key: TestKey) -> dict[str, Any]:
        """Writes the files and ``manifest.json`` into ``directory``; returns the manifest."""
        directory.mkdir(parents=True, exist_ok=True)
        files = self.contents()
        for name, data in files.items():
            (directory / name).write_bytes(data)
        manifest = self.manifest(key, files)
        (directory / "manifest.json").write_text(json.dumps(manifest), "utf-8")
        return manifest


def install_local(
    directory: Path,
    snapshot: SnapshotFiles,
    key: TestKey,
    *,
    changes: Iterable[Mapping[str, Any]] = (),
    registry: str = "http://registry.invalid",
) -> dict[str, Any]:
    """Puts ``snapshot`` (and feed ``changes``) into ``directory`` as ``optout sync`` would, without HTTP."""
    from optout_client.state import ClientState, state_save

    manifest = snapshot.write(directory / "snapshots" / snapshot.snapshot_id, key)
    feed = [dict(change) for change in changes]
    state_save(
        directory,
        ClientState(
            registry=registry,
            snapshot_id=snapshot.snapshot_id,
            as_of=rfc3339(snapshot.as_of),
            snapshot_cursor=snapshot.cursor,
            cursor=max([snapshot.cursor] + [int(change["cursor"]) for change in feed]),
            synced_at=rfc3339(datetime.now(UTC)),
            key_id=key.key_id,
            public_key=key.public_b64,
            changes=[dict(change) for change in snapshot.scheduled] + feed,
        ),
    )
    return manifest
