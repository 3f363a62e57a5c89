"""The registry's signatures: receipts over lookup answers and over snapshot manifests.

A signed document is a JSON object with a ``receipt`` member ``{"alg": "Ed25519", "key_id", "signature",
"canonicalization": "JCS (RFC 8785)"}``; the signature covers the JCS bytes of the document without ``receipt``.
The public keys are published at ``/.well-known/optout-registry/keys.json`` as JWKs; a key's id is the first 16 hex
digits of SHA-256 of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from optout_client.ed25519 import ed25519_verify
from optout_client.jcs import canonicalize

__all__ = [
    "KEYS_PATH",
    "SignatureError",
    "key_id_of",
    "keys_from_jwks",
    "parse_pinned_key",
    "verify_signed",
]

KEYS_PATH = "/.well-known/optout-registry/keys.json"
ALGORITHM = "Ed25519"
CANONICALIZATION = "JCS (RFC 8785)"
_KEY_ID = re.compile(r"[0-9a-f]{16}")


class SignatureError(ValueError):
    """A signature does not verify, or names a key that is not trusted."""


def b64decode(text: str) -> bytes:
    """Standard or url-safe base64, padded or not; raises ``ValueError``."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from None


def key_id_of(raw_public_key: bytes) -> str:
    import hashlib

    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def keys_from_jwks(document: Any) -> dict[str, bytes]:
    """The Ed25519 keys of a keys.json document, by key id.

    Keys whose ``kid`` does not match their bytes are left out."""
    keys: dict[str, bytes] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise SignatureError("keys.json has no list of keys.")
    for jwk in entries:
        if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        try:
            raw = b64decode(str(jwk.get("x", "")))
        except ValueError:
            continue
        if len(raw) == 32 and jwk.get("kid") == key_id_of(raw):
            keys[key_id_of(raw)] = raw
    return keys


def parse_pinned_key(text: str) -> tuple[str, bytes | None]:
    """``--pin-key``: a key id (16 hex digits; its bytes come from keys.json) or a base64 raw public key.

    Returns ``(key_id, raw_key_or_None)``.
    """
    text = text.strip()
    if _KEY_ID.fullmatch(text):
        return text, None
    try:
        raw = b64decode(text)
    except ValueError:
        raise SignatureError(f"The pinned key {text!r} is neither a key id nor base64.") from None
    if len(raw) != 32:
        raise SignatureError(f"The pinned key must be a 32-byte Ed25519 public key, not {len(raw)} bytes.")
    return key_id_of(raw), raw


def verify_signed(document: Mapping[str, Any], keys: Mapping[str, bytes], *, what: str = "document") -> str:
    """Checks ``document["receipt"]`` against ``keys`` (key id -> raw key); returns the key id, or raises."""
    receipt = document.get("receipt")
    if not isinstance(receipt, dict):
        raise SignatureError(f"The {what} carries no receipt (signature).")
    if receipt.get("alg") != ALGORITHM or receipt.get("canonicalization") != CANONICALIZATION:
        raise SignatureError(
            f"The {what}'s receipt uses {receipt.get('alg')!r} over {receipt.get('canonicalization')!r}, "
            f"not {ALGORITHM} over {CANONICALIZATION}."
        )
    key_id = receipt.get("key_id")
    if not isinstance(key_id, str) or key_id not in keys:
        raise SignatureError(f"The {what} is signed by key {key_id!r}, which is not a trusted registry key.")
    try:
        signature = b64decode(str(receipt.get("signature", "")))
        message = canonicalize({name: value for name, value in document.items() if name != "receipt"})
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise SignatureError(f"The {what}'s signature is malformed.") from None
    if not ed25519_verify(keys[key_id], signature, message):
        raise SignatureError(f"The {what}'s signature does not verify: it was altered or not signed by the registry.")
    return key_id
