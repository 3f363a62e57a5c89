"""Reading the transparency log: its size, hashes of complete subtrees, proofs, tiles and entry bundles."""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, Q
from django.utils.translation import gettext_lazy as _

from core.errors import InvalidInput, NotFound
from core.merkle import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    HashReader,
    Subtree,
    consistency_proof,
    hash_up,
    inclusion_proof,
)
from core.signed_note import verifier_key
from optout.models import LogCheckpoint, LogEntry, LogHead, LogQueuedLeaf, LogTile

# C2SP tlog-tiles levels are 0..63; a level this high never has a tile in a log of fewer than 2**64 leaves.
MAX_TILE_LEVEL = 63


def log_origin() -> str:
    origin: str = settings.TRANSPARENCY_LOG_ORIGIN
    return origin


def log_verifier_key() -> str:
    """The C2SP signed-note verifier key of the log: the receipt key, under the log's origin as its name."""
    from optout.receipts import signing_key

    return verifier_key(log_origin(), signing_key().private_key.public_key())


def log_size() -> int:
    """The number of leaves numbered so far (queued ones are not counted until the sequencer numbers them)."""
    size = LogHead.objects.filter(id=1).values_list("size", flat=True).first()
    return size or 0


def log_state() -> tuple[int, bool]:
    """The number of leaves numbered, and whether any are queued for the sequencer: one query, made by every
    lookup before it names a checkpoint."""
    queued = Exists(LogQueuedLeaf.objects.order_by("id")[:1])
    row = LogHead.objects.filter(id=1).values_list("size", queued).first()
    if row is None:
        return 0, LogQueuedLeaf.objects.exists()
    return row[0], row[1]


def log_checkpoint_latest() -> LogCheckpoint | None:
    return LogCheckpoint.objects.order_by("-size").first()


def checkpointed_size() -> int:
    """The latest checkpoint's tree size (0 before the first)."""
    latest = LogCheckpoint.objects.order_by("-size").values_list("size", flat=True).first()
    return latest or 0


def log_reader(*, size: int, also: Sequence[Subtree] = ()) -> HashReader:
    """Reads the hashes of complete subtrees of the first ``size`` leaves, in one query per tile level.

    A subtree of height ``h`` is ``2**(h % 8)`` consecutive entries of level ``h // 8``: leaf hashes at level 0,
    and above it the roots of the full tiles one level down (stored by the checkpoint that completed them).
    Entries read are kept for the reader's next call, and ``also`` is read with the first call, so a proof and
    its leaf's own hash cost one round of queries.
    """
    found: dict[int, dict[int, bytes]] = defaultdict(dict)
    extra = list(also)

    def positions(subtree: Subtree) -> tuple[int, range]:
        if subtree.end > size:
            raise ValueError(f"subtree {subtree} is outside the tree of {size} leaves")
        level = subtree.height // TILE_HEIGHT
        first = subtree.start >> (TILE_HEIGHT * level)
        return level, range(first, first + (1 << (subtree.height % TILE_HEIGHT)))

    def read(subtrees: Sequence[Subtree]) -> list[bytes]:
        wanted: dict[int, set[int]] = defaultdict(set)
        for subtree in [*subtrees, *extra]:
            level, span = positions(subtree)
            wanted[level].update(p for p in span if p not in found[level])
        extra.clear()
        if any(wanted.values()):
            for level, entries in _tile_entries(wanted).items():
                found[level].update(entries)
            for level, missing in wanted.items():
                rest = {p for p in missing if p not in found[level]}
                if rest:
                    found[level].update(_level_entries(level, rest))
        hashes = []
        for subtree in subtrees:
            level, span = positions(subtree)
            try:
                hashes.append(hash_up([found[level][p] for p in span]))
            except KeyError:
                raise RuntimeError(f"the log is missing hashes under {subtree}") from None
        return hashes

    return read


def _tile_entries(wanted: dict[int, set[int]]) -> dict[int, dict[int, bytes]]:
    """The wanted entries the stored tiles hold, all levels in one query (the widest tile of each position)."""
    tiles = Q()
    for level, positions in wanted.items():
        numbers = {p >> TILE_HEIGHT for p in positions}
        if numbers:
            tiles |= Q(level=level, number__in=sorted(numbers))
    if not tiles:
        return {}
    widest: dict[tuple[int, int], bytes] = {}
    for level, number, stored in (
        LogTile.objects.filter(tiles).order_by("width").values_list("level", "number", "hashes")
    ):
        widest[(level, number)] = bytes(stored)
    entries: dict[int, dict[int, bytes]] = defaultdict(dict)
    for level, positions in wanted.items():
        for p in positions:
            tile = widest.get((level, p >> TILE_HEIGHT))
            offset = (p & (TILE_WIDTH - 1)) * HASH_SIZE
            if tile is not None and offset < len(tile):
                entries[level][p] = tile[offset : offset + HASH_SIZE]
    return entries


def _runs(positions: set[int]) -> list[tuple[int, int]]:
    """Sorted positions as half-open runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for position in sorted(positions):
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs


def _level_entries(level: int, positions: set[int]) -> dict[int, bytes]:
    ranges = Q()
    if level == 0:
        for start, end in _runs(positions):
            ranges |= Q(index__gte=start, index__lt=end)
        leaves = LogEntry.objects.filter(ranges).values_list("index", "leaf_hash")
        return {position: bytes(value) for position, value in leaves}
    for start, end in _runs(positions):
        ranges |= Q(number__gte=start, number__lt=end)
    roots = LogTile.objects.filter(ranges, level=level - 1, width=TILE_WIDTH).values_list("number", "root")
    return {position: bytes(value) for position, value in roots if value is not None}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _integer(value: str | None, *, field: str) -> int:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        raise InvalidInput(_("Give a non-negative integer."), code="invalid_integer", field=field)
    return int(value)


def _checkpointed(size: int, *, field: str) -> None:
    if size > checkpointed_size():
        raise InvalidInput(
            _("No checkpoint covers a tree this large yet; ask for a size up to the latest checkpoint's."),
            code="size_not_checkpointed",
            field=field,
        )


def log_inclusion_proof(*, index: str | None, size: str | None) -> dict[str, object]:
    """``{"leaf_index", "tree_size", "leaf_hash", "hashes"}`` for leaf ``index`` in the tree of ``size`` leaves."""
    leaf_index = _integer(index, field="index")
    tree_size = _integer(size, field="size")
    if leaf_index >= tree_size:
        raise InvalidInput(_("The index must be smaller than the size."), code="index_out_of_range", field="index")
    _checkpointed(tree_size, field="size")
    read = log_reader(size=tree_size, also=[Subtree(leaf_index, 0)])
    hashes = inclusion_proof(leaf_index, tree_size, read) if tree_size > 1 else []
    leaf = read([Subtree(leaf_index, 0)])[0]
    return {
        "leaf_index": leaf_index,
        "tree_size": tree_size,
        "leaf_hash": _b64(leaf),
        "hashes": [_b64(h) for h in hashes],
    }


def log_consistency_proof(*, first: str | None, second: str | None) -> dict[str, object]:
    """``{"first", "second", "hashes"}``: the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    older = _integer(first, field="from")
    newer = _integer(second, field="to")
    if not 0 < older <= newer:
        raise InvalidInput(_("from must be at least 1 and at most to."), code="invalid_range", field="from")
    _checkpointed(newer, field="to")
    hashes = consistency_proof(older, newer, log_reader(size=newer))
    return {"first": older, "second": newer, "hashes": [_b64(h) for h in hashes]}


def log_entry(*, index: int) -> bytes:
    data = LogEntry.objects.filter(index=index).values_list("data", flat=True).first()
    if data is None:
        raise NotFound(_("No log entry has that index."), code="entry_not_found")
    return bytes(data)


@dataclass(frozen=True)
class Tile:
    data: bytes
    full: bool


def log_tile(*, level: int, number: int, width: int) -> Tile | None:
    """The hashes of a C2SP tile within the latest checkpoint's tree, or None if the tree does not reach it."""
    if not 0 <= level <= MAX_TILE_LEVEL or not 1 <= width <= TILE_WIDTH:
        return None
    size = checkpointed_size()
    first = number * TILE_WIDTH
    if (first + width) << (TILE_HEIGHT * level) > size:
        return None
    stored = (
        LogTile.objects.filter(level=level, number=number, width__gte=width)
        .order_by("width")
        .values_list("hashes", flat=True)
        .first()
    )
    if stored is not None:
        return Tile(bytes(stored)[: width * HASH_SIZE], full=width == TILE_WIDTH)
    entries = _level_entries(level, set(range(first, first + width)))
    return Tile(b"".join(entries[p] for p in range(first, first + width)), full=width == TILE_WIDTH)


def log_entry_bundle(*, number: int, width: int) -> Tile | None:
    """A C2SP entry bundle: each leaf's canonical JSON after its length as a big-endian uint16."""
    if not 1 <= width <= TILE_WIDTH:
        return None
    first = number * TILE_WIDTH
    if first + width > checkpointed_size():
        return None
    rows = LogEntry.objects.filter(index__gte=first, index__lt=first + width).order_by("index")
    chunks = []
    for data in rows.values_list("data", flat=True):
        raw = bytes(data)
        chunks.append(len(raw).to_bytes(2, "big") + raw)
    return Tile(b"".join(chunks), full=width == TILE_WIDTH)


def log_checkpoint_ref(checkpoint: LogCheckpoint | None) -> dict[str, object] | None:
    """How a lookup names a checkpoint: ``{"origin", "tree_size", "root_hash"}`` (base64, as in the note)."""
    if checkpoint is None:
        return None
    origin = checkpoint.note.split("\n", 1)[0]
    return {"origin": origin, "tree_size": checkpoint.size, "root_hash": _b64(bytes(checkpoint.root_hash))}
