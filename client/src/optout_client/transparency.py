"""Checking the registry's transparency log from outside: C2SP signed notes and checkpoints, RFC 9162 proofs.

A lab keeps the last checkpoint it saw (``LogWitness``, a small JSON file) and, for each new one, checks:

- the signature, by the log's verifier key (``<name>+<key hash>+<base64 key>``, C2SP signed-note);
- that the new tree extends the old one (an RFC 9162 consistency proof from the registry);
- that no two checkpoints it ever saw have one size and different roots: a split view, the registry showing
  different histories to different parties. The witness refuses such a checkpoint and keeps both as evidence.

``inclusion_verify`` checks that an event (a leaf's canonical JSON) is in a checkpointed tree. The verifiers follow
RFC 9162 sections 2.1.3.2 and 2.1.4.2 and are tested against the published RFC 6962 vectors
(``tests/vectors/rfc6962``, from transparency-dev/merkle).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optout_client.ed25519 import ed25519_verify
from optout_client.http import HttpClient

__all__ = [
    "Checkpoint",
    "LogError",
    "LogVerifier",
    "LogWitness",
    "SplitView",
    "checkpoint_open",
    "consistency_verify",
    "inclusion_verify",
    "leaf_hash",
    "root_from_inclusion",
]

SIGNATURE_PREFIX = "\u2014 "
_ED25519 = 0x01
WITNESS_FORMAT = "optout-log-witness/1"


class LogError(ValueError):
    """A checkpoint, note, key or proof that does not verify."""


class SplitView(LogError):
    """Two checkpoints of one tree size with different roots: the log showed two histories."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root an inclusion proof leads to; ``LogError`` if the proof has the wrong shape."""
    if not 0 <= index < size:
        raise LogError(f"leaf {index} is not in a tree of {size} leaves")
    if len(leaf) != 32:
        raise LogError("a leaf hash has 32 bytes")
    fn, sn, result = index, size - 1, leaf
    for node in proof:
        if len(node) != 32:
            raise LogError("a proof hash has 32 bytes")
        if sn == 0:
            raise LogError("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            result = _node(node, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = _node(result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LogError("the inclusion proof is too short")
    return result


def inclusion_verify(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raises ``LogError`` unless ``leaf`` (a leaf hash) is at ``index`` of the tree of ``size`` with ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise LogError(f"leaf {index} is not in the tree of {size} leaves with that root")


def consistency_verify(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2: raises ``LogError`` unless the tree (``second``, ``second_root``) extends
    (``first``, ``first_root``)."""
    if any(len(node) != 32 for node in proof):
        raise LogError("a proof hash has 32 bytes")
    if not 0 <= first <= second:
        raise LogError(f"no tree of {second} leaves extends one of {first}")
    if first == 0:
        # Every tree extends the empty one: RFC 9162 defines no proof for it, and a check of it proves nothing.
        raise LogError("a consistency check from the empty tree is meaningless")
    if first == second:
        if proof or first_root != second_root:
            raise LogError("two trees of one size are consistent only with equal roots and an empty proof")
        return
    if not proof:
        raise LogError("the consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree's root is the proof's implicit first node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for node in path[1:]:
        if sn == 0:
            raise LogError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = _node(node, fr)
            sr = _node(node, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise LogError("the consistency proof is too short")
    if fr != first_root or sr != second_root:
        raise LogError(f"the tree of {second} leaves does not extend the tree of {first} leaves")


# --- C2SP signed notes and checkpoints ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogVerifier:
    """A C2SP signed-note verifier key: ``<name>+<key hash, 8 hex>+<base64(0x01 || Ed25519 key)>``."""

    name: str
    key_hash: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> LogVerifier:
        parts = text.strip().split("+", 2)  # base64 may itself hold "+"
        if len(parts) != 3 or not parts[0] or any(ch.isspace() for ch in parts[0]):
            raise LogError("a verifier key is <name>+<hash>+<key>")
        name, hash_hex, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
            expected = bytes.fromhex(hash_hex)
        except (binascii.Error, ValueError):
            raise LogError("malformed verifier key") from None
        if len(hash_hex) != 8 or len(raw) != 33 or raw[0] != _ED25519:
            raise LogError("not an Ed25519 verifier key")
        if hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4] != expected:
            raise LogError("the verifier key's hash does not match its name and key")
        return cls(name=name, key_hash=expected, public_key=raw[1:])


def note_open(note: str, verifier: LogVerifier) -> str:
    """The text of a signed note if one of its signatures is ``verifier``'s and valid (others are ignored)."""
    text, separator, signatures = note.rpartition("\n\n")
    if not separator or not text or not signatures.endswith("\n"):
        raise LogError("a note is its text, a blank line and one signature per line")
    text += "\n"
    found = False
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise LogError("a signature line starts with an em dash and a space")
        try:
            name, encoded = line[len(SIGNATURE_PREFIX) :].split(" ")
            blob = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise LogError("malformed signature line") from None
        if name != verifier.name or blob[:4] != verifier.key_hash:
            continue
        if not ed25519_verify(verifier.public_key, blob[4:], text.encode()):
            raise LogError(f"invalid signature for key {verifier.name}")
        found = True
    if not found:
        raise LogError(f"the note has no signature by {verifier.name}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    note: str

    def reference(self) -> dict[str, Any]:
        """As a lookup response names it."""
        return {"origin": self.origin, "tree_size": self.size, "root_hash": base64.b64encode(self.root_hash).decode()}


def checkpoint_open(note: str, verifier: LogVerifier) -> Checkpoint:
    """A C2SP tlog-checkpoint, verified: signed by ``verifier``, whose name is the checkpoint's origin."""
    text = note_open(note, verifier)
    lines = text.split("\n")
    if len(lines) < 4:
        raise LogError("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text = lines[:3]
    if origin != verifier.name:
        raise LogError(f"the checkpoint's origin {origin!r} is not the key's name {verifier.name!r}")
    if not size_text.isascii() or not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0"):
        raise LogError("malformed tree size")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise LogError("malformed root hash") from None
    if len(root) != 32:
        raise LogError("a root hash has 32 bytes")
    return Checkpoint(origin=origin, size=int(size_text), root_hash=root, note=note)


# --- Keeping watch ---------------------------------------------------------------------------------------------


def _b64list(values: Sequence[str]) -> list[bytes]:
    try:
        return [base64.b64decode(value, validate=True) for value in values]
    except (binascii.Error, TypeError):
        raise LogError("a proof hash is not base64") from None


@dataclass
class LogWitness:
    """The last checkpoint a lab saw, and every root it saw per size (to catch a split view), in a JSON file."""

    path: Path
    verifier: LogVerifier
    latest: Checkpoint | None = None
    roots: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike[str], verifier: LogVerifier) -> LogWitness:
        witness = cls(path=Path(path), verifier=verifier)
        if witness.path.exists():
            state = json.loads(witness.path.read_text())
            if state.get("format") != WITNESS_FORMAT or state.get("origin") != verifier.name:
                raise LogError(f"{witness.path} is not a witness file of the log {verifier.name}")
            witness.roots = {int(size): root for size, root in state.get("roots", {}).items()}
            if state.get("latest"):
                witness.latest = checkpoint_open(state["latest"], verifier)
        return witness

    def _save(self) -> None:
        state = {
            "format": WITNESS_FORMAT,
            "origin": self.verifier.name,
            "latest": self.latest.note if self.latest else None,
            "roots": {str(size): root for size, root in sorted(self.roots.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".witness-")
        with os.fdopen(handle, "w") as file:
            json.dump(state, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    def _note_root(self, checkpoint: Checkpoint) -> None:
        root = base64.b64encode(checkpoint.root_hash).decode()
        seen = self.roots.get(checkpoint.size)
        if seen is not None and seen != root:
            raise SplitView(f"split view: two checkpoints of size {checkpoint.size} with roots {seen} and {root}")
        self.roots[checkpoint.size] = root

    def accept(self, note: str, consistency_proof: Sequence[bytes] | None) -> Checkpoint:
        """Check a new checkpoint against the last one (``consistency_proof`` from its size to the new one's) and
        keep it. Raises ``LogError`` (``SplitView`` for a fork) and keeps nothing when it does not check."""
        checkpoint = checkpoint_open(note, self.verifier)
        self._note_root(checkpoint)
        latest = self.latest
        if latest is not None:
            if checkpoint.size < latest.size:
                raise LogError(f"the log shrank from {latest.size} to {checkpoint.size} leaves")
            if checkpoint.size > latest.size and latest.size > 0:
                if consistency_proof is None:
                    raise LogError("a consistency proof is needed")
                consistency_verify(
                    latest.size, checkpoint.size, latest.root_hash, checkpoint.root_hash, consistency_proof
                )
        if latest is None or checkpoint.size >= latest.size:
            self.latest = checkpoint
        self._save()
        return checkpoint

    def update(self, client: HttpClient) -> Checkpoint:
        """Fetch the registry's latest checkpoint and accept it (with the consistency proof it needs)."""
        with client.open("/log/checkpoint") as response:
            note = response.read().decode("utf-8")
        checkpoint = checkpoint_open(note, self.verifier)
        proof = None
        if self.latest is not None and 0 < self.latest.size < checkpoint.size:
            answer = client.get_json(
                "/api/v1/log/proof/consistency", query={"from": self.latest.size, "to": checkpoint.size}
            )
            proof = _b64list(answer.get("hashes", []))
        return self.accept(note, proof)

    def prove_event(self, client: HttpClient, index: int) -> dict[str, Any]:
        """Fetch leaf ``index`` and its inclusion proof in the latest checkpoint seen, and verify them."""
        if self.latest is None or index >= self.latest.size:
            raise LogError("update to a checkpoint that covers the event first")
        with client.open(f"/api/v1/log/entries/{index}") as response:
            entry = response.read()
        answer = client.get_json("/api/v1/log/proof/inclusion", query={"index": index, "size": self.latest.size})
        leaf = leaf_hash(entry)
        if base64.b64encode(leaf).decode() != answer.get("leaf_hash"):
            raise LogError("the entry served does not hash to the leaf the proof is about")
        inclusion_verify(index, self.latest.size, leaf, _b64list(answer.get("hashes", [])), self.latest.root_hash)
        event: dict[str, Any] = json.loads(entry)
        return event
