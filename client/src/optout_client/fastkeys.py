"""Keys for many identifiers at once: fast paths for the spellings that are already normal, then the full normalizer.

A fast path accepts only inputs whose normalized form is provably the input itself (or, for ISBN-10, a fixed
rewriting), so its answer equals :func:`optout_client.normalize.identifier_normalize`'s; everything else goes through
that normalizer. The conformance vectors and a randomized comparison (``tests/test_fastkeys.py``) hold the two
together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from optout_client.normalize import (
    _ISBN_PREFIX,
    MAX_VALUE_LENGTH,
    SCHEMES,
    InvalidIdentifier,
    SchemeUnavailable,
    identifier_normalize,
    url_canonical,
)

try:
    import numpy as np
except ImportError:  # pragma: no cover - exercised by the no-numpy test in a subprocess
    np = None  # type: ignore[assignment]

__all__ = ["KeyBatch", "fast_value", "key_batch", "key_text", "url_host"]

UNAVAILABLE = "scheme_unavailable"


@dataclass
class KeyBatch:
    """The keys of a batch of values: ``keys[j]`` (UTF-8 ``scheme:value``) belongs to item ``index[j]``."""

    index: list[int] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    invalid: dict[int, str] = field(default_factory=dict)  # item -> the server's error code


# --- fast paths, one value ------------------------------------------------------------------------------------

_ISBN13 = re.compile(r"97[89][0-9]{10}")
_ISBN10 = re.compile(r"[0-9]{9}[0-9X]")
_ISBN_DECORATED = re.compile(r"[0-9][0-9 -]*[0-9X]")
_DOI = re.compile(r"10\.[0-9]+(?:\.[0-9]+)*/[!-~]+")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _ean_ok(digits: str) -> bool:
    total = sum(map(int, digits[0:12:2])) + 3 * sum(map(int, digits[1:12:2]))
    return (10 - total % 10) % 10 == int(digits[12])


def _fast_isbn(value: str) -> str | None:
    if len(value) == 13:
        if _ISBN13.fullmatch(value) and _ean_ok(value):
            return value
    elif len(value) == 10 and _ISBN10.fullmatch(value):
        # stdnum: an ISBN-10 is valid when Σ (i+1)·dᵢ ≡ check (mod 11), X standing for 10; it becomes 978 + its
        # first nine digits + the EAN-13 check digit.
        check = sum((position + 1) * int(digit) for position, digit in enumerate(value[:9])) % 11
        if ("X" if check == 10 else str(check)) != value[9]:
            return None
        body = "978" + value[:9]
        total = sum(map(int, body[0::2])) + 3 * sum(map(int, body[1::2]))
        return body + str((10 - total % 10) % 10)
    # "ISBN 978-89-374-6088-3", "ISBN-13: 978 89 ...": the server strips the prefix (its own pattern), then stdnum
    # removes spaces and hyphens; when only ASCII digits remain, the rules above decide.
    rest = _ISBN_PREFIX.sub("", value.strip(), count=1).strip()
    if _ISBN_DECORATED.fullmatch(rest):
        compact = rest.replace("-", "").replace(" ", "")
        if compact != value and len(compact) in (10, 13):
            return _fast_isbn(compact)
    return None


def _fast_doi(value: str) -> str | None:
    # Printable ASCII after "10.<registrant>/": no prefix to strip, no whitespace, nothing unprintable; the key is
    # the lower-cased text, as the full normalizer makes it.
    if len(value) <= MAX_VALUE_LENGTH and _DOI.fullmatch(value):
        return value.lower()
    return None


def _fast_sha256(value: str) -> str | None:
    return value.lower() if len(value) == 64 and _SHA256.fullmatch(value) else None


def _escapes(hex_codes: list[int]) -> str:
    return "|".join(f"%{code:02X}" for code in hex_codes)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# url-normalize (see its normalize_path / normalize_query): a path keeps the unreserved characters and
# "~:/[]@!$&'()*+,;=" as they are, and a percent-escape survives (upper-case) when it does not stand for an
# unreserved character. A query parameter's key and value keep the unreserved characters and "~:/?[]@!$'()*+,;";
# an escape survives when it stands for none of those, or for "+" (which it protects).
_PATH_LITERAL = "A-Za-z0-9\\-._~!$&'()*+,;=:@/\\[\\]"
_PATH_ESCAPES = _escapes([c for c in range(128) if chr(c) not in _UNRESERVED])
_QUERY_SAFE = _UNRESERVED | frozenset("~:/?[]@!$'()*+,;")
_QUERY_LITERAL = "A-Za-z0-9\\-._~!$'()*+,;:@/?\\[\\]"
_QUERY_ESCAPES = _escapes([c for c in range(128) if chr(c) not in _QUERY_SAFE or chr(c) == "+"])
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Written as "literals, then (escape, literals)*" so that the common case, no escape, is one character-class run.
_QTEXT = rf"[{_QUERY_LITERAL}]*(?:%(?:{_QUERY_ESCAPES[1:]})[{_QUERY_LITERAL}]*)*"
_PARAM = rf"(?=[^&\n])(?:{_QTEXT})(?:={_QTEXT})?"
_FAST_URL = re.compile(
    rf"https?://(?P<host>{_LABEL}(?:\.{_LABEL})*)"
    rf"(?P<path>/[{_PATH_LITERAL}]*(?:%(?:{_PATH_ESCAPES[1:]})[{_PATH_LITERAL}]*)*)"
    rf"(?:\?{_PARAM}(?:&{_PARAM})*)?"
)


def _fast_url(value: str) -> str | None:
    """The normalized URL when ``value`` is one of the common shape (or becomes one by cutting its fragment and
    lower-casing its scheme and host), else None (not decided here).

    The shape: lower-case http(s) scheme and ASCII host (no port, no user, no trailing dot, no "--" that IDNA would
    read), a path without empty, "." or ".." segments, a query without empty parameters, no fragment, and only the
    characters and escapes that url-normalize leaves as they are.
    """
    if len(value) > MAX_VALUE_LENGTH:
        return None
    # url-normalize leaves a URL of the common shape as it is; the key is then its canonical form.
    if _url_is_normal(value):
        return _fitting(url_canonical(value))
    # Two departures the server's normalizer undoes without touching the rest: a fragment (cut before anything
    # else) and an upper-case ASCII scheme or host (lower-cased, and an ASCII lower-case host is its own IDNA form).
    # When what remains is normal, it is the key.
    cut = value.partition("#")[0]
    head, separator, rest = cut.partition("://")
    authority, slash, tail = rest.partition("/")
    if not separator or not (head + authority).isascii():
        return None
    candidate = f"{head.lower()}://{authority.lower()}{slash}{tail}"
    if candidate != value and _url_is_normal(candidate):
        return _fitting(url_canonical(candidate))
    return None


def _fitting(key: str) -> str | None:
    # "http://" becomes "https://": a key one character longer than the limit is the full normalizer's to refuse.
    return key if len(key) <= MAX_VALUE_LENGTH else None


def _url_is_normal(value: str) -> bool:
    match = _FAST_URL.fullmatch(value)
    if match is None:
        return False
    path = match.group("path")
    if "//" in path or "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return False
    return "--" not in match.group("host")


_FAST: dict[str, Callable[[str], str | None]] = {
    "isbn": _fast_isbn,
    "doi": _fast_doi,
    "sha256": _fast_sha256,
    "url": _fast_url,
}


def fast_value(scheme: str, value: str) -> str | None:
    """The normalized value by a fast path, or None when the fast path does not decide (tests use this)."""
    fast = _FAST.get(scheme)
    return fast(value) if fast else None


def key_text(scheme: str, value: Any) -> str:
    """The key text ``scheme:value`` (``scheme`` already lower-case and stripped); raises ``InvalidIdentifier``."""
    if not isinstance(value, str):
        raise InvalidIdentifier("Enter an identifier.", code="empty" if value is None else "invalid_format")
    fast = _FAST.get(scheme)
    normalized = fast(value) if fast is not None else None
    if normalized is None:
        return str(identifier_normalize(scheme, value))
    return f"{scheme}:{normalized}"


def url_host(url: str) -> str:
    """The host of a normalized URL, as ``urlsplit(url).hostname`` gives it."""
    start = url.find("://") + 3
    authority = url[start:].partition("/")[0].partition("?")[0]
    if "@" in authority or "[" in authority:
        return urlsplit(url).hostname or ""
    return authority.partition(":")[0].lower()


# --- batches ------------------------------------------------------------------------------------------------


def key_batch(scheme: str, values: Sequence[Any]) -> KeyBatch:
    """The keys of ``values`` under ``scheme`` (as the caller wrote it); invalid items carry their error code."""
    scheme = scheme.strip().lower()
    batch = KeyBatch()
    if scheme not in SCHEMES:
        batch.invalid = dict.fromkeys(range(len(values)), "unknown_scheme")
        return batch
    if scheme == "isbn" and np is not None and len(values) >= 64:
        rest = _isbn13_vectorized(values, batch)
    else:
        rest = range(len(values))
    texts: list[str] = []
    fast = _FAST.get(scheme)
    index = batch.index
    for position in rest:
        value = values[position]
        normalized = fast(value) if fast is not None and isinstance(value, str) else None
        if normalized is None:
            try:
                normalized = key_text(scheme, value)[len(scheme) + 1 :]
            except InvalidIdentifier as error:
                batch.invalid[position] = error.code
                continue
            except SchemeUnavailable:
                batch.invalid[position] = UNAVAILABLE
                continue
        index.append(position)
        texts.append(normalized)
    batch.keys.extend(_encode(scheme, texts))
    return batch


def _encode(scheme: str, texts: list[str]) -> list[bytes]:
    """``[f"{scheme}:{t}".encode() for t in texts]``, in bulk (normalized values hold no line breaks)."""
    if not texts:
        return []
    prefix = scheme + ":"
    encoded = (prefix + ("\n" + prefix).join(texts)).encode("utf-8").split(b"\n")
    if len(encoded) != len(texts):  # pragma: no cover - a value with a line break: none of the schemes allow it
        return [(prefix + text).encode("utf-8") for text in texts]
    return encoded


def _isbn13_vectorized(values: Sequence[Any], batch: KeyBatch) -> Sequence[int]:
    """Adds the items that are 13 ASCII digits with a valid 978/979 EAN-13 to ``batch``; returns the others."""
    count = len(values)
    try:
        lengths = np.fromiter(map(len, values), dtype=np.intp, count=count)
    except TypeError:  # a value that is not a string: leave all to the scalar path
        return range(count)
    candidates = np.flatnonzero(lengths == 13)
    if len(candidates) == 0:
        return range(count)
    try:
        text = "".join(values) if len(candidates) == count else "".join([values[i] for i in candidates.tolist()])
    except TypeError:  # bytes or other non-strings
        return range(count)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) != 13 * len(candidates):  # a non-ASCII character somewhere: not the fast path's business
        return range(count)
    digits = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 13).astype(np.int16) - 48
    weights = np.array([1, 3] * 6 + [1], dtype=np.int16)
    ok = (
        ((digits >= 0) & (digits <= 9)).all(axis=1)
        & (digits[:, 0] == 9)
        & (digits[:, 1] == 7)
        & ((digits[:, 2] == 8) | (digits[:, 2] == 9))
        & ((digits * weights).sum(axis=1) % 10 == 0)
    )
    good = candidates[ok]
    keyed = np.empty((len(good), 18), dtype=np.uint8)
    keyed[:, :5] = np.frombuffer(b"isbn:", dtype=np.uint8)
    keyed[:, 5:] = (digits[ok] + 48).astype(np.uint8)
    batch.index.extend(good.tolist())
    batch.keys.extend(keyed.view("S18").ravel().tolist())
    if len(good) == count:
        return ()
    done = np.zeros(count, dtype=bool)
    done[good] = True
    return np.flatnonzero(~done).tolist()
