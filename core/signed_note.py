"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and C2SP tlog checkpoints
(https://c2sp.org/tlog-checkpoint) as their text.

A note is UTF-8 text ending in a newline, a blank line, then one line per signature:
``— <key name> <base64(key hash || signature)>``. An Ed25519 key's hash is the first four bytes of
SHA-256(key name || "\\n" || 0x01 || public key), and its verifier key is published as
``<key name>+<hash as 8 hex digits>+<base64(0x01 || public key)>``, the form Go's ``golang.org/x/mod/sumdb/note``
and the transparency-dev witnesses read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space


class NoteError(ValueError):
    """A note, key or checkpoint that is not well formed, or whose signature does not verify."""


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _name_check(name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise NoteError(f"a key name has no spaces or '+': {name!r}")


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALGORITHM_ED25519]) + _raw_public(public_key)).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The published verifier key: ``<name>+<key hash hex>+<base64(0x01 || key)>``."""
    _name_check(name)
    encoded = base64.b64encode(bytes([ALGORITHM_ED25519]) + _raw_public(public_key)).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def note_sign(*, text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """``text`` (non-empty, ending in a newline, no blank line) signed as a note by the key called ``name``."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends in one newline and has no blank lines")
    _name_check(name)
    signature = private_key.sign(text.encode())
    encoded = base64.b64encode(key_hash(name, private_key.public_key()) + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {encoded}\n"


def note_signed_by(note: str, *, name: str, public_key: Ed25519PublicKey) -> str | None:
    """The text of one of the registry's own notes if its last signature line is ``name``'s valid signature.

    For ``log_check``, which knows the one key it looks for; a full verifier (several keys, unknown ones
    ignored) is the client's (``optout_client.transparency``).
    """
    text, separator, line = note.removesuffix("\n").rpartition("\n\n")
    prefix = f"{SIGNATURE_PREFIX}{name} "
    if not separator or not line.startswith(prefix):
        return None
    try:
        blob = base64.b64decode(line[len(prefix) :], validate=True)
        if blob[:4] != key_hash(name, public_key):
            return None
        public_key.verify(blob[4:], (text + "\n").encode())
    except (binascii.Error, InvalidSignature):
        return None
    return text + "\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode()}\n"
