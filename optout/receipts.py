"""Receipts: the registry's Ed25519 signature over a lookup answer.

A lab keeps the receipt as proof that it checked; anyone can verify it with the public keys published at
``/.well-known/optout-registry/keys.json``. The signed bytes are the canonical JSON (RFC 8785, JCS) of the
payload, and the payload is exactly the lookup response without its ``receipt`` key.

Keys come from ``RECEIPT_SIGNING_KEY_FILE`` or ``RECEIPT_SIGNING_KEY`` (settings validate them at start-up
through ``receipt_settings_check``). Rotated-out public keys stay listed in ``RECEIPT_RETIRED_PUBLIC_KEYS`` so
the receipts they signed remain verifiable; a key's id is the first 16 hex digits of SHA-256 of its raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from core.jcs import canonical_json

ALGORITHM = "Ed25519"
CANONICALIZATION = "JCS (RFC 8785)"
DEV_KEY_FILENAME = "receipt-dev-key.pem"

ReceiptReason = Literal["ok", "unknown_key", "bad_signature", "malformed"]


# --- Canonical JSON ----------------------------------------------------------------------------------


def canonical_json_of_own_payload(value: Any) -> bytes:
    """``canonical_json`` for payloads the registry builds itself: ASCII keys, no floats, small integers.

    For those, plain sorted ``json.dumps`` gives the same bytes as the strict walk (a test holds the two
    together) at a fifth of the cost, which matters for 10,000-item lookups.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# --- Keys --------------------------------------------------------------------------------------------


def _b64decode(text: str) -> bytes:
    """Standard or url-safe base64, with or without padding; raises ``ValueError``."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public_raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_public_raw(public_key)).hexdigest()[:16]


def _jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an RFC 8037 JWK."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(_public_raw(public_key)),
        "kid": key_id_for(public_key),
        "use": "sig",
        "alg": "EdDSA",
    }


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def from_private_key(cls, private_key: Ed25519PrivateKey) -> SigningKey:
        return cls(key_id=key_id_for(private_key.public_key()), private_key=private_key)

    def public_jwk(self) -> dict[str, str]:
        """This key's public half as a JWK (``kty``, ``crv``, ``x``, ``kid``, ``use``, ``alg``)."""
        return _jwk(self.private_key.public_key())


# Error messages name the variable but never echo its value: it is a secret.
def private_key_from_seed(text: str, *, variable: str) -> Ed25519PrivateKey:
    try:
        seed = _b64decode(text)
    except ValueError:
        raise ImproperlyConfigured(f"{variable} is not base64 (standard or url-safe).") from None
    if len(seed) != 32:
        raise ImproperlyConfigured(f"{variable} must be a 32-byte Ed25519 private seed, not {len(seed)} bytes.")
    return Ed25519PrivateKey.from_private_bytes(seed)


def private_key_from_pem_file(path: Path, *, source: str) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"{source} ({path}) cannot be read: {exc.strerror or exc}.") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ImproperlyConfigured(f"{source} ({path}) is not an unencrypted PEM (PKCS#8) private key.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{source} ({path}) holds a {type(key).__name__}, not an Ed25519 key.")
    return key


def public_key_from_text(text: str, *, variable: str) -> Ed25519PublicKey:
    try:
        raw = _b64decode(text)
    except ValueError:
        raise ImproperlyConfigured(f"{variable}: {text!r} is not base64 (standard or url-safe).") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{variable}: {text!r} must be a 32-byte Ed25519 public key, not {len(raw)} bytes.")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{variable}: {text!r} is not an Ed25519 public key.") from None


def receipt_settings_check(
    *, key_file: Path | None, seed: str | None, retired: list[str], dev_key_allowed: bool
) -> None:
    """Fails start-up, naming the variable, when the receipt keys are missing or malformed."""
    if key_file and seed:
        raise ImproperlyConfigured("Set RECEIPT_SIGNING_KEY_FILE or RECEIPT_SIGNING_KEY, not both.")
    if key_file:
        private_key_from_pem_file(key_file, source="RECEIPT_SIGNING_KEY_FILE")
    elif seed:
        private_key_from_seed(seed, variable="RECEIPT_SIGNING_KEY")
    elif not dev_key_allowed:
        raise ImproperlyConfigured(
            "RECEIPT_SIGNING_KEY_FILE or RECEIPT_SIGNING_KEY must be set (receipts have no key outside DEBUG)."
        )
    for text in retired:
        public_key_from_text(text, variable="RECEIPT_RETIRED_PUBLIC_KEYS")


def _dev_key_load_or_create(path: Path) -> Ed25519PrivateKey:
    """The development key at ``path``, generated on first use and then shared by every process.

    The key is written to a private temporary file and hard-linked into place: the link appears complete
    or not at all, and never replaces a key another process already created (and may have signed with).
    The loser of a race discards its own key and reads the winner's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".receipt-dev-key-")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return private_key_from_pem_file(path, source="The development receipt key")


@functools.cache
def signing_key() -> SigningKey:
    """The registry's current receipt key, loaded once per process."""
    if settings.RECEIPT_SIGNING_KEY_FILE:
        private_key = private_key_from_pem_file(settings.RECEIPT_SIGNING_KEY_FILE, source="RECEIPT_SIGNING_KEY_FILE")
    elif settings.RECEIPT_SIGNING_KEY:
        private_key = private_key_from_seed(settings.RECEIPT_SIGNING_KEY, variable="RECEIPT_SIGNING_KEY")
    elif settings.DEBUG or settings.TESTING:
        private_key = _dev_key_load_or_create(Path(settings.DATA_DIR) / DEV_KEY_FILENAME)
    else:
        # Never fall back to a throwaway key in production: its receipts could not be verified tomorrow.
        raise ImproperlyConfigured("RECEIPT_SIGNING_KEY_FILE or RECEIPT_SIGNING_KEY must be set.")
    return SigningKey.from_private_key(private_key)


@functools.lru_cache(maxsize=8)
def _retired_keys(texts: tuple[str, ...]) -> tuple[Ed25519PublicKey, ...]:
    return tuple(public_key_from_text(text, variable="RECEIPT_RETIRED_PUBLIC_KEYS") for text in texts)


def _verification_keys() -> dict[str, tuple[Ed25519PublicKey, str]]:
    """Every key a receipt may name, by key id: the current one first, then the retired ones."""
    current = signing_key()
    keys = {current.key_id: (current.private_key.public_key(), "current")}
    for public_key in _retired_keys(tuple(settings.RECEIPT_RETIRED_PUBLIC_KEYS)):
        keys.setdefault(key_id_for(public_key), (public_key, "retired"))
    return keys


def verification_public_keys() -> dict[str, Ed25519PublicKey]:
    """The current and retired public keys by key id: what the registry's signatures are checked against."""
    return {key_id: public_key for key_id, (public_key, _status) in _verification_keys().items()}


def public_keys() -> list[dict[str, str]]:
    """JWKs of the current and retired keys, each with ``status``: ``current`` or ``retired``."""
    return [{**_jwk(public_key), "status": status} for public_key, status in _verification_keys().values()]


@receiver(setting_changed)
def _receipt_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("RECEIPT_") or setting in {"DATA_DIR", "DEBUG", "TESTING"}:
        signing_key.cache_clear()


# --- Signing and verifying -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiptCheck:
    valid: bool
    key_id: str | None
    reason: ReceiptReason


def receipt_sign(*, payload: dict[str, Any], own_payload: bool = False) -> dict[str, Any]:
    """The receipt for ``payload``; the response is ``{**payload, "receipt": receipt}``.

    ``own_payload`` selects the fast canonicalization for payloads the registry built (see
    ``canonical_json_of_own_payload``); verification always uses the strict one.
    """
    if "receipt" in payload:
        # The contract is payload == response minus "receipt": a payload carrying one could not be checked.
        raise ValueError("A receipt payload must not contain a 'receipt' key.")
    key = signing_key()
    return {
        "alg": ALGORITHM,
        "key_id": key.key_id,
        "signature": _b64url(
            key.private_key.sign(canonical_json_of_own_payload(payload) if own_payload else canonical_json(payload))
        ),
        "canonicalization": CANONICALIZATION,
    }


def receipt_signed_json(*, payload: dict[str, Any]) -> bytes:
    """The response ``{**payload, "receipt": receipt}`` as JSON bytes, for a payload the registry built.

    The canonical bytes that are signed are also what is sent, with the receipt added as the last member: the
    payload (10,000 results in a large lookup) is serialized once instead of twice. A verifier parses the
    response, drops ``receipt`` and canonicalizes the rest, which gives back exactly the signed bytes.
    """
    if "receipt" in payload or not payload:
        raise ValueError("A receipt payload must be a non-empty object without a 'receipt' key.")
    canonical = canonical_json_of_own_payload(payload)
    key = signing_key()
    receipt = {
        "alg": ALGORITHM,
        "key_id": key.key_id,
        "signature": _b64url(key.private_key.sign(canonical)),
        "canonicalization": CANONICALIZATION,
    }
    return canonical[:-1] + b',"receipt":' + orjson.dumps(receipt) + b"}"


def receipt_verify(*, payload: dict[str, Any], receipt: dict[str, Any]) -> ReceiptCheck:
    """Whether ``receipt`` is the registry's signature over ``payload``, by the current or a retired key."""
    if not isinstance(payload, dict) or not isinstance(receipt, dict):
        return ReceiptCheck(valid=False, key_id=None, reason="malformed")
    key_id = receipt.get("key_id")
    if not isinstance(key_id, str):
        return ReceiptCheck(valid=False, key_id=None, reason="malformed")
    signature_text = receipt.get("signature")
    if (
        receipt.get("alg") != ALGORITHM
        or receipt.get("canonicalization") != CANONICALIZATION
        or not isinstance(signature_text, str)
    ):
        return ReceiptCheck(valid=False, key_id=key_id, reason="malformed")
    try:
        signature = _b64decode(signature_text)
        message = canonical_json(payload)
    except (TypeError, ValueError, RecursionError):
        return ReceiptCheck(valid=False, key_id=key_id, reason="malformed")
    if len(signature) != 64:
        return ReceiptCheck(valid=False, key_id=key_id, reason="malformed")
    known = _verification_keys().get(key_id)
    if known is None:
        return ReceiptCheck(valid=False, key_id=key_id, reason="unknown_key")
    try:
        known[0].verify(signature, message)
    except InvalidSignature:
        return ReceiptCheck(valid=False, key_id=key_id, reason="bad_signature")
    return ReceiptCheck(valid=True, key_id=key_id, reason="ok")
