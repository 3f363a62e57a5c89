"""Near-duplicate lookup benchmark: exact recall at the threshold over 10,000,000 content codes, and speed.

Run from the project root with PostgreSQL (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_simbench .venv/bin/python bench/similarity.py

It creates and migrates the database if missing, and loads (once; ``--reload`` starts over):

- ``--codes`` random 64-bit image Content-Codes as ISCC identifiers, spread over ``--works`` works;
- for each of ``--anchors`` fresh random codes, one planted near copy at every distance from 0 to the threshold
  + 2 (each its own work), so every distance around the threshold is asked about.

Then it builds the search base (``registry.similarity.similarity_index_build``, what beat runs) and measures:

- recall and false matches: for every anchor and ``--random-queries`` unplanted codes, the index's answer
  (``similar_search``) against a brute-force NumPy scan of every code, which is the truth; any difference
  fails the run;
- the ceiling: the index alone, in this process, queries per second for batches of ``--batch``;
- over HTTP (gunicorn started as docker-compose's web service, 2 workers): batches of ``--batch`` ISCC items
  POSTed to ``/api/v1/lookup`` by ``--clients`` clients, queries per second, and single lookups one at a time,
  p50/p99; each answer checked (the anchors' distances and statuses);

and prints PASS/FAIL against issue 15's goals: recall 100% within the threshold, no match beyond it,
>= 1,000 queries/s in batches over HTTP, single-query p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lookup import (  # noqa: E402
    apikey_make,
    bench_environment,
    database_prepare,
    django_setup,
    parties_ensure,
    server,
)

GOAL_BATCH_QPS = 1_000
GOAL_SINGLE_P99_MS = 50.0
PLANTED_TITLE = "similarity bench: planted"
RANDOM_TITLE = "similarity bench: random"


def iscc_of(bits: int) -> str:
    import iscc_core

    return "ISCC:" + str(
        iscc_core.encode_component(
            iscc_core.MT.CONTENT, iscc_core.ST_CC.IMAGE, iscc_core.VS.V0, 64, bits.to_bytes(8, "big")
        )
    )


def signed(bits: int) -> int:
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def flip(bits: int, count: int, rng: random.Random) -> int:
    for position in rng.sample(range(64), count):
        bits ^= 1 << position
    return bits


def load(*, url: str, codes: int, works: int, anchors: list[int], threshold: int, seed: int) -> None:
    """Works and identifiers by COPY, skipped when the database already holds this many codes."""
    from registry.models import Identifier, Work

    holder, _lab = parties_ensure()
    have = Identifier.objects.filter(content_code__isnull=False).count()
    planted = len(anchors) * (threshold + 3)
    if have >= codes + planted:
        print(f"loaded already: {have:,} content codes")
        return
    if have:
        sys.exit(f"the database holds {have:,} content codes, not {codes + planted:,}: run with --reload")
    started = time.perf_counter()
    random_works = Work.objects.bulk_create(
        [Work(kind="image", title=f"{RANDOM_TITLE} {n}", registered_by=holder) for n in range(works)],
        batch_size=5000,
    )
    planted_works = Work.objects.bulk_create(
        [Work(kind="image", title=f"{PLANTED_TITLE} {n}", registered_by=holder) for n in range(planted)],
        batch_size=5000,
    )
    work_ids = np.array([w.pk for w in random_works], dtype=np.int64)
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        columns = "(work_id, scheme, value, content_modality, content_code, created_at)"
        step = 500_000
        for begin in range(0, codes, step):
            count = min(step, codes - begin)
            bits = rng.integers(0, 2**64, size=count, dtype=np.uint64, endpoint=False)
            owners = work_ids[np.arange(begin, begin + count) % len(work_ids)]
            buffer = io.StringIO()
            for code, owner in zip(bits.tolist(), owners.tolist(), strict=True):
                buffer.write(f"{owner}\tiscc\t{iscc_of(code)}\timage\t{signed(code)}\t2026-01-01 00:00:00+00\n")
            with cursor.copy(f"COPY registry_identifier {columns} FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            conn.commit()
            print(f"  {begin + count:,} random codes", flush=True)
        plant_rng = random.Random(seed + 1)  # noqa: S311 (reproducible test data)
        rows = []
        for n, anchor in enumerate(anchors):
            for distance in range(threshold + 3):
                copy_bits = flip(anchor, distance, plant_rng)
                work = planted_works[n * (threshold + 3) + distance]
                rows.append(
                    f"{work.pk}\tiscc\t{iscc_of(copy_bits)}\timage\t{signed(copy_bits)}\t2026-01-01 00:00:00+00\n"
                )
        with cursor.copy(f"COPY registry_identifier {columns} FROM STDIN") as copy:
            copy.write("".join(rows))
        conn.commit()
        # The status projection the services would have written (the load bypasses them): every code permitted,
        # its money held (no verified owner), for both purposes. Lookups without as_of read it.
        cursor.execute(
            "INSERT INTO optout_statussegment (subject_type, subject, host, purpose, valid_from, valid_to, status,"
            " compensation, regime, pending_refusal, work_id, refusal_id, work_title, work_kind)"
            " SELECT 'key', 'iscc:' || i.value, '', p.purpose, '2026-01-01 00:00:00+00', NULL, 'permitted',"
            " 'escrow', 'use_first', false, i.work_id, NULL, w.title, w.kind"
            " FROM registry_identifier i JOIN registry_work w ON w.id = i.work_id"
            " CROSS JOIN (VALUES ('train-ai'), ('train-genai')) AS p(purpose)"
            " WHERE i.content_code IS NOT NULL ORDER BY i.id"
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE registry_identifier, optout_statussegment")
    print(f"loaded {codes:,} random and {planted:,} planted codes in {time.perf_counter() - started:.0f} s")


def all_codes(url: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Every content code and its identifier id, for the brute-force truth."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, content_code FROM registry_identifier WHERE content_code IS NOT NULL ORDER BY id"
        ).fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    codes = np.fromiter((r[1] & ((1 << 64) - 1) for r in rows), dtype=np.uint64, count=len(rows))
    return ids, codes


def brute_force(codes: np.ndarray[Any, Any], ids: np.ndarray[Any, Any], query: int, threshold: int) -> set[int]:
    distances = np.bitwise_count(codes ^ np.uint64(query))
    return set(ids[distances <= threshold].tolist())


def recall_check(*, url: str, queries: Sequence[int], threshold: int, wider: int) -> tuple[int, int, int, float, float]:
    """(true pairs, missed, false) over ``queries``, and the seconds the truth and the index took."""
    from registry.similarity import ContentUnit, similar_search

    ids, codes = all_codes(url)
    started = time.perf_counter()
    truth = [brute_force(codes, ids, q, threshold) for q in queries]
    truth_seconds = time.perf_counter() - started
    # Asked at a wider threshold too: whatever the index returns beyond ``threshold`` would be a false match.
    units = [ContentUnit(modality="image", code=signed(q)) for q in queries]
    started = time.perf_counter()
    found = similar_search(units=units, thresholds=[threshold] * len(units))
    index_seconds = time.perf_counter() - started
    wide = similar_search(units=units, thresholds=[wider] * len(units))
    missed = false = pairs = 0
    for expected, hits, wide_hits in zip(truth, found, wide, strict=True):
        got = {h.identifier_id for h in hits}
        pairs += len(expected)
        missed += len(expected - got)
        false += len(got - expected)
        false += sum(1 for h in hits if h.distance > threshold)
        # The wide search must agree with the truth at the wider radius on what lies within ``threshold``.
        missed += len(expected - {h.identifier_id for h in wide_hits if h.distance <= threshold})
    return pairs, missed, false, truth_seconds, index_seconds


def index_rate(queries: Sequence[int], threshold: int, batch: int) -> float:
    from registry.similarity import ContentUnit, similar_search

    units = [ContentUnit(modality="image", code=signed(q)) for q in queries]
    similar_search(units=units[:batch], thresholds=[threshold] * batch)
    started = time.perf_counter()
    done = 0
    for begin in range(0, len(units), batch):
        chunk = units[begin : begin + batch]
        similar_search(units=chunk, thresholds=[threshold] * len(chunk))
        done += len(chunk)
    return done / (time.perf_counter() - started)


def http_batches(url: str, key: str, queries: Sequence[int], batch: int, clients: int) -> float:
    bodies = [
        {"items": [{"scheme": "iscc", "value": iscc_of(q)} for q in queries[begin : begin + batch]]}
        for begin in range(0, len(queries), batch)
    ]
    headers = {"Authorization": f"Api-Key {key}"}

    def post(body: dict[str, Any]) -> int:
        with httpx.Client(timeout=120) as client:
            response = client.post(f"{url}/api/v1/lookup", json=body, headers=headers)
            response.raise_for_status()
            return len(response.json()["results"])

    post(bodies[0])
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(post, bodies))
    return done / (time.perf_counter() - started)


def http_singles(url: str, key: str, anchors: Sequence[int], threshold: int) -> list[float]:
    headers = {"Authorization": f"Api-Key {key}"}
    latencies = []
    with httpx.Client(timeout=30) as client:
        for anchor in anchors:
            started = time.perf_counter()
            response = client.post(
                f"{url}/api/v1/lookup", json={"items": [{"scheme": "iscc", "value": iscc_of(anchor)}]}, headers=headers
            )
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            (result,) = response.json()["results"]
            distances = sorted(c["distance"] for c in result["candidates"])
            # Each anchor has one planted copy at every distance 0..threshold (and more beyond, never shown).
            if distances[: threshold + 1] != list(range(threshold + 1)) or result["match"] != "exact":
                sys.exit(f"wrong answer for anchor {anchor:#x}: {result}")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", type=int, default=10_000_000)
    parser.add_argument("--works", type=int, default=10_000)
    parser.add_argument("--anchors", type=int, default=100)
    parser.add_argument("--random-queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--http-queries", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    args = parser.parse_args()
    bench_environment(args)
    url = os.environ["DATABASE_URL"]
    # Shared by this process and the server it starts: the base is built once, memory-mapped by all.
    os.environ.setdefault("SIMILARITY_INDEX_DIR", str(Path(os.environ["DATA_DIR"]) / "similarity-index"))
    database_prepare(url, reload=args.reload)
    django_setup()
    from registry.similarity import DEFAULT_THRESHOLDS, similarity_index_build

    threshold = DEFAULT_THRESHOLDS["image"]
    rng = random.Random(args.seed)  # noqa: S311 (reproducible test data)
    anchors = [rng.getrandbits(64) for _ in range(args.anchors)]
    load(url=url, codes=args.codes, works=args.works, anchors=anchors, threshold=threshold, seed=args.seed)

    started = time.perf_counter()
    built = similarity_index_build()
    print(f"search base: {built['size']:,} codes built in {time.perf_counter() - started:.1f} s")

    random_queries = [rng.getrandbits(64) for _ in range(args.random_queries)]
    pairs, missed, false, truth_s, index_s = recall_check(
        url=url, queries=anchors + random_queries, threshold=threshold, wider=threshold + 2
    )
    asked = len(anchors) + len(random_queries)
    print(
        f"recall at {threshold} bits over {asked} queries: {pairs} true pairs, {missed} missed, {false} false "
        f"(brute force {truth_s / asked * 1000:.1f} ms/query, index {index_s / asked * 1000:.2f} ms/query)"
    )

    load_queries = [flip(anchors[n % len(anchors)], n % (threshold + 3), rng) for n in range(args.http_queries)]
    ceiling = index_rate(load_queries, threshold, args.batch)
    _holder, lab = parties_ensure()
    _api_key, raw_key = apikey_make(lab)
    with server(None, workers=2) as base_url:
        batch_qps = http_batches(base_url, raw_key, load_queries, args.batch, args.clients)
        latencies = http_singles(base_url, raw_key, anchors * 3, threshold)
    p50 = statistics.median(latencies)
    p99 = float(np.percentile(latencies, 99))
    print(f"index alone (this process, batches of {args.batch}): {ceiling:,.0f} queries/s  [ceiling]")
    print(f"HTTP batches of {args.batch} ({args.clients} clients): {batch_qps:,.0f} queries/s")
    print(f"HTTP single lookups: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms")
    checks = [
        ("recall 100% within the threshold", missed == 0),
        ("no match beyond it", false == 0),
        (f"batches >= {GOAL_BATCH_QPS:,} queries/s over HTTP", batch_qps >= GOAL_BATCH_QPS),
        (f"single p99 < {GOAL_SINGLE_P99_MS:.0f} ms", p99 < GOAL_SINGLE_P99_MS),
    ]
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    sys.exit(0 if all(ok for _n, ok in checks) else 1)


if __name__ == "__main__":
    main()
