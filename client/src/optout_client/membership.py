"""The membership files: sorted 64-bit key hashes, and the lookups against them.

``hash(key) = int.from_bytes(sha256(key.encode("utf-8")).digest()[:8], "big")`` over the key text ``scheme:value``.
A snapshot's ``keys-<purpose>.bin`` is the sorted, de-duplicated array of those hashes, 8 bytes each, big-endian.

In memory, with numpy, the table is kept in 4 bytes a key: the top ``bucket_bits`` bits of a hash select a bucket
(an offsets array), and the next 32 bits are stored, sorted within their bucket. A lookup therefore compares
``bucket_bits + 32`` bits of the hash (52 at a million keys or more): a key not in the table is reported as a member
with probability about n / 2**(bucket_bits + 32) (one in 450 million lookups at 10 million keys), never the other
way round. That keeps 10 million keys in about 44 MB. Without numpy the table is an ``array('Q')`` of the full
hashes searched with ``bisect``: exact, 8 bytes a key, and slower.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:
    import numpy as np
except ImportError:  # pragma: no cover
    np = None  # type: ignore[assignment]

__all__ = ["Membership", "MembershipFileError", "hashes_of", "key_hash"]

# CPython's own SHA-256 is faster than OpenSSL's for short inputs (no EVP context per call), and importing it does not
# map OpenSSL's libraries into memory.
try:
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - Python 3.12+ names it _sha2
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256
_digest = type(_sha256()).digest

_CHUNK = 1 << 15  # entries read at a time while loading (256 KB): the temporaries stay small


class MembershipFileError(ValueError):
    """A membership file is not a sorted array of distinct 8-byte big-endian integers."""


def key_hash(key: str) -> int:
    """The membership hash of a key text ``scheme:value``."""
    return int.from_bytes(_digest(_sha256(key.encode("utf-8")))[:8], "big")


def hashes_of(keys: list[bytes]) -> Any:
    """The membership hashes of UTF-8 key texts: a native ``uint64`` numpy array, or a list of ints without numpy."""
    if np is None:
        return [int.from_bytes(_digest(_sha256(key))[:8], "big") for key in keys]
    digests = b"".join(map(_digest, map(_sha256, keys)))
    return np.frombuffer(digests, dtype=">u8")[::4].astype(np.uint64)


class Membership:
    """A set of key hashes loaded from a membership file."""

    def __init__(self, *, count: int, offsets: Any = None, fingerprints: Any = None, table: Any = None) -> None:
        self.count = count
        self._offsets = offsets
        self._fingerprints = fingerprints
        self._table = table
        self.bucket_bits = max(8, min(20, count.bit_length()))
        self._bucket_shift = 64 - self.bucket_bits
        self._fingerprint_shift = 32 - self.bucket_bits
        self._steps = 0
        if offsets is not None:
            self._steps = int(np.diff(offsets).max(initial=0)).bit_length()

    def __len__(self) -> int:
        return self.count

    @classmethod
    def empty(cls) -> Membership:
        return cls.from_hashes([])

    @classmethod
    def from_hashes(cls, hashes: Iterable[int]) -> Membership:
        """From hashes in any order (tests and the overlay)."""
        ordered = sorted(set(hashes))
        data = b"".join(value.to_bytes(8, "big") for value in ordered)
        return cls._load(_chunks_of(data), len(ordered))

    @classmethod
    def from_file(cls, path: Path) -> Membership:
        size = path.stat().st_size
        if size % 8:
            raise MembershipFileError(f"{path.name} has {size} bytes, not a multiple of 8.")

        def chunks() -> Iterable[bytes]:
            with path.open("rb") as handle:
                while block := handle.read(8 * _CHUNK):
                    yield block

        return cls._load(chunks(), size // 8)

    @classmethod
    def _load(cls, chunks: Iterable[bytes], count: int) -> Membership:
        if np is None:
            table = array("Q")
            for block in chunks:
                part = array("Q", block)
                if sys.byteorder == "little":
                    part.byteswap()
                table.extend(part)
            if any(table[i] >= table[i + 1] for i in range(len(table) - 1)):
                raise MembershipFileError("The membership file is not sorted and de-duplicated.")
            return cls(count=count, table=table)
        bits = max(8, min(20, count.bit_length()))
        fingerprints = np.empty(count, dtype=np.uint32)
        offset_type = np.int32 if count < 2**31 - 1 else np.int64
        offsets = np.zeros((1 << bits) + 1, dtype=offset_type)
        buckets: Any = offsets[1:]  # counts first, made cumulative in place at the end
        position = 0
        previous: int | None = None
        for block in chunks:
            native = np.frombuffer(block, dtype=">u8").astype(np.uint64)
            if len(native) == 0:
                continue
            if (previous is not None and int(native[0]) <= previous) or bool(np.any(native[1:] <= native[:-1])):
                raise MembershipFileError("The membership file is not sorted and de-duplicated.")
            previous = int(native[-1])
            present, counts = np.unique((native >> np.uint64(64 - bits)).astype(np.intp), return_counts=True)
            buckets[present] = buckets[present] + counts
            fingerprints[position : position + len(native)] = (native >> np.uint64(32 - bits)) & np.uint64(0xFFFFFFFF)
            position += len(native)
        np.cumsum(buckets, out=buckets)
        return cls(count=count, offsets=offsets, fingerprints=fingerprints)

    def contains(self, value: int) -> bool:
        if self._table is not None:
            position = bisect_left(self._table, value)
            return position < len(self._table) and self._table[position] == value
        bucket = value >> self._bucket_shift
        fingerprint = (value >> self._fingerprint_shift) & 0xFFFFFFFF
        low, high = int(self._offsets[bucket]), int(self._offsets[bucket + 1])
        position = low + int(np.searchsorted(self._fingerprints[low:high], fingerprint))
        return position < high and int(self._fingerprints[position]) == fingerprint

    def contains_many(self, values: Any) -> Any:
        """Membership of many hashes: a numpy bool array for a numpy ``uint64`` array, else a list of bools."""
        if self._table is not None or np is None:
            return [self.contains(int(value)) for value in values]
        if self.count == 0 or len(values) == 0:
            return np.zeros(len(values), dtype=bool)
        fingerprints = self._fingerprints
        last = self.count - 1
        wanted = ((values >> np.uint64(self._fingerprint_shift)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        bucket = (values >> np.uint64(self._bucket_shift)).astype(np.intp)
        low = self._offsets[bucket]
        end = self._offsets[bucket + 1]
        high = end.copy()
        # A lower-bound binary search in every bucket at once; buckets hold a few keys, so a few steps do.
        for _ in range(self._steps):
            middle = (low + high) >> 1
            right = (fingerprints[np.minimum(middle, last)] < wanted) & (low < high)
            low = np.where(right, middle + 1, low)
            high = np.where(right, high, middle)
        return (low < end) & (fingerprints[np.minimum(low, last)] == wanted)


def _chunks_of(data: bytes) -> Iterable[bytes]:
    for start in range(0, len(data), 8 * _CHUNK):
        yield data[start : start + 8 * _CHUNK]
