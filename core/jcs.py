"""RFC 8785 JSON Canonicalization Scheme (JCS): the bytes receipts and transparency-log leaves sign and hash."""

from __future__ import annotations

import json
from typing import Any

# JCS writes numbers as IEEE doubles; integers beyond this would not survive a round trip through one.
_MAX_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) serialization of a float-free JSON value, as UTF-8 bytes.

    Object keys are ordered by their UTF-16 code units, as JCS requires (for ASCII keys that is plain
    sorting); no whitespace; strings are written literally except for the escapes JSON demands.
    Floats raise ``TypeError`` (and integers beyond 2**53 ``ValueError``): JCS formats numbers as ECMAScript
    does, which only integers in the safe range share with Python's ``json``.
    """
    return json.dumps(_canonical(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        raise TypeError("canonical_json does not accept floats; use integers or strings.")
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise ValueError(f"canonical_json accepts integers up to 2**53 - 1, not {value}.")
        return value
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"canonical_json needs string object keys, not {type(key).__name__}.")
        # json.dumps(sort_keys=True) orders by code point; JCS by UTF-16 code unit (they differ above U+FFFF, so
        # ASCII keys, nearly all of them, sort as they are).
        if all(key.isascii() for key in value):
            return {key: _canonical(value[key]) for key in sorted(value)}
        return {key: _canonical(value[key]) for key in sorted(value, key=lambda key: key.encode("utf-16-be"))}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    raise TypeError(f"canonical_json does not accept {type(value).__name__}.")
