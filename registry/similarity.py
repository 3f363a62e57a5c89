"""Near-duplicate search over the 64-bit ISCC Content-Codes of registered works (ISO 24138).

Similar content has Content-Codes a few bits apart, so "is this a near copy of a registered work" is "which
registered codes of the same modality lie within the threshold's Hamming distance of this one". The answer
must be exact (every code within the threshold, nothing beyond it) over tens of millions of codes, at
thousands of queries a second.

How: multi-index hashing (Norouzi, Punjani, Fleet, "Fast exact search in Hamming space with multi-index
hashing", 2014). The 64 bits are cut into three bands of 21, 21 and 22 bits. If two codes differ in at most
``t = 3r + a`` bits (``0 <= a < 3``), then one of the first ``a + 1`` bands differs in at most ``r`` bits or
one of the others in at most ``r - 1`` (otherwise the differences would add up to more than ``t``). So the
candidates are the codes whose band equals one of the query band's neighbours within that radius, looked up
in a sorted array of each band; each candidate's full distance is then counted and kept if within ``t``.
Three bands of about log2(10,000,000) bits each keep both the neighbours probed and the candidates per
probe small (bench/similarity.py measures it).

Where: in each process's memory, as NumPy arrays. PostgreSQL answered the same probes as index lookups at
about 11 µs each, 124 queries a second at 8 bits over 10,000,000 codes: an eighth of the goal (README). The
arrays are split in two:

- the **base**, built from the database by ``similarity_index_build`` (beat and ``manage.py``) into
  ``SIMILARITY_INDEX_DIR`` and memory-mapped, so every web process on a host shares one copy in the page
  cache and a new one is picked up without a restart;
- the **delta**, the content codes added since (ids above the base's last), read from the database when its
  row count or last id changed, and scanned whole: a new registration is found by the very next lookup.

Codes are never changed in place (identifiers are read-only); a removed identifier may linger in the base
until the next build, which is why ``similar_search`` returns identifier ids that the caller reads back
from the database (a removed one is simply not found there).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import iscc_core
import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from registry.models import ContentModality, Identifier, SimilarityThreshold

# Chosen from bench/iscc_transformations.py (figures in bench/README.md, reasons in README.md, "Near copies"): the
# largest distance that covers the common transformations of a work while staying well below the closest
# unrelated pair measured (text 16, image 14, audio 9 bits).
DEFAULT_THRESHOLDS: dict[str, int] = {
    ContentModality.TEXT: 10,
    ContentModality.IMAGE: 8,
    ContentModality.AUDIO: 6,
    ContentModality.VIDEO: 8,
    ContentModality.MIXED: 8,
}
MAX_THRESHOLD = 16

_SUBTYPE_MODALITY = {
    iscc_core.ST_CC.TEXT: ContentModality.TEXT,
    iscc_core.ST_CC.IMAGE: ContentModality.IMAGE,
    iscc_core.ST_CC.AUDIO: ContentModality.AUDIO,
    iscc_core.ST_CC.VIDEO: ContentModality.VIDEO,
    iscc_core.ST_CC.MIXED: ContentModality.MIXED,
}
# A modality's number, kept above each band's bits in the sorted keys so one array serves every modality.
_MODALITY_NUMBER = {modality: number for number, modality in enumerate(ContentModality.values)}

# (shift, bits) of the three bands, most significant first.
_BANDS = ((43, 21), (22, 21), (0, 22))
_BAND_KEY_SHIFT = 22
_SIGN = 1 << 63
_FULL = (1 << 64) - 1


@dataclass(frozen=True)
class ContentUnit:
    modality: str
    code: int  # the 64-bit Content-Code as a signed integer, as PostgreSQL's bigint holds it


def content_unit_of(iscc: str) -> ContentUnit | None:
    """The Content-Code unit of a normalized ISCC (``ISCC:...``): the first 64 bits of its body.

    An ISCC-CODE carries it as one of its units; a Content-Code given alone is its own unit. An ISCC-SUM
    (Data- and Instance-Codes only) has none, and neither do the other kinds of unit.
    """
    try:
        units = iscc_core.iscc_decompose(iscc)
    except (ValueError, LookupError, TypeError):
        return None
    for unit in units:
        code = iscc_core.Code(unit)
        if code.maintype == iscc_core.MT.CONTENT:
            modality = _SUBTYPE_MODALITY.get(code.subtype)
            if modality is None:
                return None
            unsigned = int.from_bytes(code.hash_bytes[:8], "big")
            return ContentUnit(modality=str(modality), code=unsigned - (1 << 64) if unsigned & _SIGN else unsigned)
    return None


def identifier_content_fields(*, scheme: str, value: str) -> dict[str, Any]:
    """The ``content_modality`` and ``content_code`` an identifier row is created with."""
    unit = content_unit_of(value) if scheme == "iscc" else None
    if unit is None:
        return {"content_modality": "", "content_code": None}
    return {"content_modality": unit.modality, "content_code": unit.code}


class ThresholdHistory:
    """Every threshold staff have set, to answer "the threshold in force at" any instant without a query."""

    def __init__(self) -> None:
        self._by_modality: dict[str, list[tuple[datetime, int]]] = {}
        for modality, distance, starts in SimilarityThreshold.objects.order_by("effective_from").values_list(
            "modality", "max_distance", "effective_from"
        ):
            self._by_modality.setdefault(modality, []).append((starts, distance))

    def at(self, modality: str, at: datetime) -> int:
        """The latest setting in force at ``at``, else the default."""
        in_force = [distance for starts, distance in self._by_modality.get(modality, ()) if starts <= at]
        return in_force[-1] if in_force else DEFAULT_THRESHOLDS[modality]

    def widest(self, modality: str) -> int:
        """The largest threshold the modality ever had: a search with it finds what any instant needs."""
        return max([DEFAULT_THRESHOLDS[modality], *(d for _s, d in self._by_modality.get(modality, ()))])


def similarity_thresholds_list(*, at: datetime) -> list[dict[str, Any]]:
    """Per modality: the threshold in force at ``at`` (staff's or the default) and those scheduled after it."""
    rows = list(
        SimilarityThreshold.objects.order_by("modality", "effective_from").values(
            "modality", "max_distance", "effective_from", "reason"
        )
    )
    answer = []
    for modality in ContentModality.values:
        own = [row for row in rows if row["modality"] == modality]
        in_force = [row for row in own if row["effective_from"] <= at]
        current = in_force[-1] if in_force else None
        answer.append(
            {
                "modality": modality,
                "max_distance": current["max_distance"] if current else DEFAULT_THRESHOLDS[modality],
                "effective_from": current["effective_from"] if current else None,
                "source": "staff" if current else "default",
                "reason": current["reason"] if current else "",
                "scheduled": [
                    {"max_distance": row["max_distance"], "effective_from": row["effective_from"]}
                    for row in own
                    if row["effective_from"] > at
                ],
            }
        )
    return answer


# --- the search ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimilarHit:
    query: int  # index into the codes asked about
    identifier_id: int
    work_id: int
    distance: int


class _Arrays:
    """Content codes with, per band, their keys sorted and the order that sorts them."""

    def __init__(
        self,
        *,
        ids: npt.NDArray[np.int64],
        works: npt.NDArray[np.int64],
        modalities: npt.NDArray[np.int8],
        codes: npt.NDArray[np.uint64],
        sorted_keys: Sequence[npt.NDArray[np.uint32]] = (),
        orders: Sequence[npt.NDArray[np.int32]] = (),
    ) -> None:
        self.ids, self.works, self.modalities, self.codes = ids, works, modalities, codes
        self.sorted_keys, self.orders = list(sorted_keys), list(orders)

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])

    def with_band_index(self) -> _Arrays:
        sorted_keys, orders = [], []
        for shift, bits in _BANDS:
            keys = _band_keys(self.codes, self.modalities, shift, bits)
            order = np.argsort(keys, kind="stable").astype(np.int32)
            sorted_keys.append(keys[order])
            orders.append(order)
        return _Arrays(
            ids=self.ids,
            works=self.works,
            modalities=self.modalities,
            codes=self.codes,
            sorted_keys=sorted_keys,
            orders=orders,
        )


def _band_keys(
    codes: npt.NDArray[np.uint64], modalities: npt.NDArray[np.int8], shift: int, bits: int
) -> npt.NDArray[np.uint32]:
    band = (codes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
    return (band | (modalities.astype(np.uint64) << np.uint64(_BAND_KEY_SHIFT))).astype(np.uint32)


@lru_cache(maxsize=64)
def _flip_masks(bits: int, radius: int) -> npt.NDArray[np.uint32]:
    """Every ``bits``-bit mask with at most ``radius`` bits set: XORed with a band, its neighbours."""
    masks = [0]
    for count in range(1, radius + 1):
        masks.extend(sum(1 << p for p in positions) for positions in itertools.combinations(range(bits), count))
    return np.array(masks, dtype=np.uint32)


def _band_radii(threshold: int) -> list[int]:
    """Per band, how far it must be probed for exact recall at ``threshold`` (the module docstring's rule)."""
    radius, extra = divmod(threshold, len(_BANDS))
    return [radius if band <= extra else radius - 1 for band in range(len(_BANDS))]


def _search_banded(
    arrays: _Arrays,
    query_codes: npt.NDArray[np.uint64],
    query_modalities: npt.NDArray[np.int8],
    thresholds: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(query index, row, distance) of every base code within its query's threshold, each pair once."""
    found_queries: list[npt.NDArray[np.int64]] = []
    found_rows: list[npt.NDArray[np.int64]] = []
    for band, (shift, bits) in enumerate(_BANDS):
        query_keys = _band_keys(query_codes, query_modalities, shift, bits)
        probe_keys: list[npt.NDArray[np.uint32]] = []
        probe_queries: list[npt.NDArray[np.int64]] = []
        # Queries sharing a threshold share the masks, so they are probed together.
        for threshold in np.unique(thresholds):
            radius = _band_radii(int(threshold))[band]
            if radius < 0:
                continue
            masks = _flip_masks(bits, radius)
            members = np.flatnonzero(thresholds == threshold)
            probe_keys.append((query_keys[members, None] ^ masks[None, :]).ravel())
            probe_queries.append(np.repeat(members, masks.shape[0]))
        if not probe_keys:
            continue
        keys = np.concatenate(probe_keys)
        owners = np.concatenate(probe_queries)
        sorted_keys = arrays.sorted_keys[band]
        starts = np.searchsorted(sorted_keys, keys, side="left")
        ends = np.searchsorted(sorted_keys, keys, side="right")
        counts = ends - starts
        hit = counts > 0
        if not hit.any():
            continue
        starts, counts, owners = starts[hit], counts[hit], owners[hit]
        # Expand every [start, end) range into its positions without a Python loop.
        total = int(counts.sum())
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        positions = offsets + np.arange(total)
        found_rows.append(arrays.orders[band][positions].astype(np.int64))
        found_queries.append(np.repeat(owners, counts))
    if not found_rows:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    queries = np.concatenate(found_queries)
    rows = np.concatenate(found_rows)
    distances = np.bitwise_count(arrays.codes[rows] ^ query_codes[queries]).astype(np.int64)
    keep = distances <= thresholds[queries]
    queries, rows, distances = queries[keep], rows[keep], distances[keep]
    # A code close in several bands was found once per band.
    _pairs, first = np.unique(queries * max(arrays.size, 1) + rows, return_index=True)
    return queries[first], rows[first], distances[first]


def _search_scan(
    arrays: _Arrays,
    query_codes: npt.NDArray[np.uint64],
    query_modalities: npt.NDArray[np.int8],
    thresholds: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The same answer by comparing every query with every code: for the small delta."""
    found: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
    step = 4096
    for begin in range(0, arrays.size, step):
        codes = arrays.codes[begin : begin + step]
        distances = np.bitwise_count(query_codes[:, None] ^ codes[None, :]).astype(np.int64)
        within = (distances <= thresholds[:, None]) & (
            query_modalities[:, None] == arrays.modalities[None, begin : begin + step]
        )
        queries, rows = np.nonzero(within)
        found.append((queries.astype(np.int64), rows.astype(np.int64) + begin, distances[queries, rows]))
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return (
        np.concatenate([f[0] for f in found]),
        np.concatenate([f[1] for f in found]),
        np.concatenate([f[2] for f in found]),
    )


# --- the base on disk and the delta in memory -------------------------------------------------------------

_BASE_FILES = ("ids", "works", "modalities", "codes", "keys0", "keys1", "keys2", "order0", "order1", "order2")
_CURRENT = "CURRENT"


def _index_dir() -> Path:
    return Path(settings.SIMILARITY_INDEX_DIR)


def _load_base(directory: Path) -> tuple[_Arrays, int] | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in _BASE_FILES}
    except (OSError, ValueError):
        return None
    base = _Arrays(
        ids=arrays["ids"],
        works=arrays["works"],
        modalities=arrays["modalities"],
        codes=arrays["codes"],
        sorted_keys=[arrays["keys0"], arrays["keys1"], arrays["keys2"]],
        orders=[arrays["order0"], arrays["order1"], arrays["order2"]],
    )
    return base, int(meta["last_id"])


def _rows_to_arrays(rows: Sequence[tuple[int, int, str, int | None]]) -> _Arrays:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    works = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    modalities = np.fromiter((_MODALITY_NUMBER[r[2]] for r in rows), dtype=np.int8, count=len(rows))
    codes = np.fromiter(((r[3] or 0) & _FULL for r in rows), dtype=np.uint64, count=len(rows))
    return _Arrays(ids=ids, works=works, modalities=modalities, codes=codes)


class _Index:
    """One process's view: the current base (re-read when a new one is published) and the delta after it."""

    # How often a process looks for a newer base on disk.
    BASE_CHECK_SECONDS = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._base: _Arrays | None = None
        self._base_name = ""
        self._base_last_id = 0
        self._base_checked = 0.0
        self._delta = _rows_to_arrays([])
        self._delta_version: tuple[int, int] = (0, 0)

    def refresh(self) -> tuple[_Arrays | None, _Arrays, int]:
        with self._lock:
            now = time.monotonic()
            if now - self._base_checked >= self.BASE_CHECK_SECONDS:
                self._base_checked = now
                self._refresh_base()
            self._refresh_delta()
            return self._base, self._delta, self._base_last_id

    def forget(self) -> None:
        with self._lock:
            self._reset()

    def _refresh_base(self) -> None:
        try:
            name = (_index_dir() / _CURRENT).read_text().strip()
        except OSError:
            name = ""
        if name == self._base_name:
            return
        loaded = _load_base(_index_dir() / name) if name else None
        if loaded is None:
            self._base, self._base_name, self._base_last_id = None, "", 0
        else:
            self._base, self._base_last_id = loaded
            self._base_name = name
        self._delta_version = (-1, -1)

    def _refresh_delta(self) -> None:
        # The row count and last id of the delta together change whenever a row is added (even one committed
        # after a higher id was seen) or removed, so the delta is read again exactly then.
        coded = Identifier.objects.filter(content_code__isnull=False, id__gt=self._base_last_id)
        counted = coded.aggregate(count=Count("id"), last=Max("id"))
        version = (int(counted["count"]), int(counted["last"] or 0))
        if version == self._delta_version:
            return
        rows = list(coded.order_by("id").values_list("id", "work_id", "content_modality", "content_code"))
        self._delta = _rows_to_arrays(rows)
        self._delta_version = version


_INDEX = _Index()


def similarity_index_forget() -> None:
    """Drop this process's loaded index (tests, after a build in the same process)."""
    _INDEX.forget()


def similar_search(*, units: Sequence[ContentUnit], thresholds: Sequence[int]) -> list[list[SimilarHit]]:
    """For each unit, every registered Content-Code of its modality within its threshold, nearest first.

    Exact: nothing within the threshold is missed and nothing beyond it is returned (bench/similarity.py
    holds it to a brute-force scan). The hits name identifiers; one removed since the base was built may
    still be among them, so callers read the identifiers back.
    """
    results: list[list[SimilarHit]] = [[] for _ in units]
    if not units:
        return results
    base, delta, _last = _INDEX.refresh()
    query_codes = np.fromiter((u.code & _FULL for u in units), dtype=np.uint64, count=len(units))
    query_modalities = np.fromiter((_MODALITY_NUMBER[u.modality] for u in units), dtype=np.int8, count=len(units))
    limits = np.fromiter((min(max(t, 0), MAX_THRESHOLD) for t in thresholds), dtype=np.int64, count=len(units))
    for arrays, search in ((base, _search_banded), (delta, _search_scan)):
        if arrays is None or arrays.size == 0:
            continue
        # Both searches compare only codes of the query's modality (the banded keys carry it).
        queries, rows, distances = search(arrays, query_codes, query_modalities, limits)
        ids, works = arrays.ids[rows], arrays.works[rows]
        for query, identifier_id, work_id, distance in zip(
            queries.tolist(), ids.tolist(), works.tolist(), distances.tolist(), strict=True
        ):
            results[query].append(
                SimilarHit(query=query, identifier_id=identifier_id, work_id=work_id, distance=distance)
            )
    for hits in results:
        hits.sort(key=lambda hit: (hit.distance, hit.work_id, hit.identifier_id))
    return results


def similarity_index_build(*, keep: int = 2) -> dict[str, int]:
    """Write a new base of every content code to ``SIMILARITY_INDEX_DIR`` and publish it; keep the newest
    ``keep`` (a process may still be reading the one before). Returns the code count and last id."""
    directory = _index_dir()
    directory.mkdir(parents=True, exist_ok=True)
    ids_chunks, works_chunks, modality_chunks, code_chunks = [], [], [], []
    batch = 1_000_000
    last_id = 0
    while True:
        rows = list(
            Identifier.objects.filter(content_code__isnull=False, id__gt=last_id)
            .order_by("id")
            .values_list("id", "work_id", "content_modality", "content_code")[:batch]
        )
        if not rows:
            break
        chunk = _rows_to_arrays(rows)
        ids_chunks.append(chunk.ids)
        works_chunks.append(chunk.works)
        modality_chunks.append(chunk.modalities)
        code_chunks.append(chunk.codes)
        last_id = int(rows[-1][0])
        if len(rows) < batch:
            break
    arrays = _Arrays(
        ids=np.concatenate(ids_chunks) if ids_chunks else np.empty(0, dtype=np.int64),
        works=np.concatenate(works_chunks) if works_chunks else np.empty(0, dtype=np.int64),
        modalities=np.concatenate(modality_chunks) if modality_chunks else np.empty(0, dtype=np.int8),
        codes=np.concatenate(code_chunks) if code_chunks else np.empty(0, dtype=np.uint64),
    ).with_band_index()
    name = f"base-{timezone.now():%Y%m%dT%H%M%S%f}-{last_id}"
    target = directory / name
    staging = directory / f".{name}.partial"
    staging.mkdir()
    files: dict[str, npt.NDArray[Any]] = {
        "ids": arrays.ids,
        "works": arrays.works,
        "modalities": arrays.modalities,
        "codes": arrays.codes,
        **{f"keys{band}": arrays.sorted_keys[band] for band in range(len(_BANDS))},
        **{f"order{band}": arrays.orders[band] for band in range(len(_BANDS))},
    }
    for file_name, array in files.items():
        np.save(staging / f"{file_name}.npy", array)
    (staging / "meta.json").write_text(json.dumps({"last_id": last_id, "size": arrays.size}))
    staging.rename(target)
    # The pointer is replaced atomically: a reader sees the old base or the new one, never half of one.
    pointer = directory / f".{_CURRENT}.tmp"
    pointer.write_text(name)
    os.replace(pointer, directory / _CURRENT)
    bases = sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("base-"))
    for old in bases[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return {"size": arrays.size, "last_id": last_id}


def similarity_delta_size() -> int:
    """How many content codes the published base lacks: what every process scans whole."""
    _base, delta, _last = _INDEX.refresh()
    return delta.size


def similarity_index_refresh_if_needed() -> int:
    """Build a new base when the delta has grown past ``SIMILARITY_DELTA_MAX``; returns the delta's size then.

    Two beats firing at once both build; the second's base simply replaces the first's.
    """
    delta = similarity_delta_size()
    if delta > settings.SIMILARITY_DELTA_MAX:
        similarity_index_build()
    return delta
