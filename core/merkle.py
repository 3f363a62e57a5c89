"""RFC 9162 Merkle trees (Certificate Transparency 2.0, section 2.1) over storage the caller reads.

The tree of n leaves is the one RFC 9162 defines: a leaf's hash is SHA-256(0x00 || entry), a node's
SHA-256(0x01 || left || right), and a tree of n > 1 leaves splits at k, the largest power of two below n. Every
hash a proof or a root needs is the hash of some *complete* subtree, 2**height leaves starting at a multiple of
2**height; the caller stores those the C2SP tlog-tiles way (``TILE_HEIGHT`` levels per tile) and answers
``read(requests)`` for a whole proof at once, so serving a proof costs one round of reads, not one per hash.

Only the producing side lives here (roots, inclusion and consistency proofs); verifying is the client's job
(``client/src/optout_client/transparency.py``), tested against the published RFC 6962 vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
# C2SP tlog-tiles: a tile holds 2**8 hashes of one level; a level-L tile entry is the hash of 2**(8L) leaves.
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True, order=True)
class Subtree:
    """The complete subtree of ``2**height`` leaves starting at leaf ``start`` (a multiple of ``2**height``)."""

    start: int
    height: int

    @property
    def end(self) -> int:
        return self.start + (1 << self.height)


# Reads the hashes of complete subtrees, in the order asked, all within the tree the caller serves.
HashReader = Callable[[Sequence[Subtree]], list[bytes]]


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k, for n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def range_subtrees(start: int, end: int) -> list[Subtree]:
    """The complete subtrees that make up leaves ``[start, end)``, largest first.

    ``start`` must be a multiple of the smallest power of two not below ``end - start`` (as every range RFC 9162's
    recursion produces is); the range's hash is then these subtrees' hashes folded from the right.
    """
    subtrees = []
    while start < end:
        height = (end - start).bit_length() - 1
        subtrees.append(Subtree(start, height))
        start += 1 << height
    return subtrees


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of a range from its subtrees' hashes, largest (leftmost) first: RFC 9162's MTH."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def hash_up(hashes: Sequence[bytes]) -> bytes:
    """The hash of a complete subtree from its ``2**r`` consecutive child hashes at one level."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def _inclusion_ranges(index: int, start: int, end: int) -> list[tuple[int, int]]:
    """RFC 9162 2.1.3.1 PATH(m, D[start:end]) as the ranges whose hashes it lists, leaf side first."""
    ranges: list[tuple[int, int]] = []
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[0:n], true) as ranges, in the proof's order."""
    ranges: list[tuple[int, int]] = []
    m, start, end, whole = first, 0, second, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    ranges.reverse()
    return ranges


def _range_hashes(ranges: Sequence[tuple[int, int]], read: HashReader) -> list[bytes]:
    pieces = [range_subtrees(start, end) for start, end in ranges]
    hashes = read([subtree for piece in pieces for subtree in piece])
    result, offset = [], 0
    for piece in pieces:
        result.append(fold(hashes[offset : offset + len(piece)]))
        offset += len(piece)
    return result


def tree_root(size: int, read: HashReader) -> bytes:
    """MTH(D[0:size])."""
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, size)], read)[0]


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (``0 <= index < size``)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _range_hashes(_inclusion_ranges(index, 0, size), read)


def consistency_proof(first: int, second: int, read: HashReader) -> list[bytes]:
    """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second`` (``0 < first <= second``).

    RFC 9162 defines no proof from the empty tree; ``first == second`` has the empty proof.
    """
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second} leaves")
    if first == second:
        return []
    return _range_hashes(_consistency_ranges(first, second), read)


def memory_reader(leaf_hashes: Sequence[bytes]) -> HashReader:
    """A reader over leaf hashes held in memory: for tests, ``log_check`` and building tiles."""

    def read(subtrees: Sequence[Subtree]) -> list[bytes]:
        return [hash_up(leaf_hashes[subtree.start : subtree.end]) for subtree in subtrees]

    return read


def tile_path(level: int, number: int, width: int = TILE_WIDTH) -> str:
    """The C2SP tlog-tiles path of a tile below ``tile/`` (``level`` may be ``"entries"``), e.g. ``0/x001/234``."""
    digits = f"{number:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    path = "/".join([f"x{group}" for group in groups[:-1]] + [groups[-1]])
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"{level}/{path}{suffix}"


def tile_number_parse(parts: Sequence[str]) -> int:
    """The tile index of the path segments after the level (``["x001", "234"]`` is 1234); ``ValueError`` if not a
    path the C2SP tlog-tiles encoding gives out (each group three digits, all but the last with ``x``)."""
    if not parts:
        raise ValueError("no tile index")
    digits = ""
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        group = part if last else part.removeprefix("x")
        if (not last and not part.startswith("x")) or len(group) != 3 or not group.isdigit() or not group.isascii():
            raise ValueError(f"not a tile index segment: {part!r}")
        digits += group
    number = int(digits)
    if tile_path(0, number) != "0/" + "/".join(parts):
        raise ValueError("not the canonical encoding of a tile index")
    return number


class CompactRange:
    """The root of a growing tree from its leaf hashes streamed in order, in O(log n) memory: the stack of its
    perfect subtrees, largest first (what ``log_check`` recomputes 10,000,000 leaves with)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        height, value = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            value = node_hash(self._stack.pop()[1], value)
            height += 1
        self._stack.append((height, value))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        return fold([value for _height, value in self._stack])
