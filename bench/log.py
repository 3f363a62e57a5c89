"""Transparency log benchmark: what the log adds to each event, the checkpoint, and proofs at 10,000,000 leaves.

Run from the project root with PostgreSQL (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_logbench .venv/bin/python bench/log.py

It creates and migrates the database if missing (``--reload`` starts over), then:

1. **Appends**: ``--events`` audit events of a logged kind (``registry.work.identifier_added``), each in a
   transaction of its own as the services write them, alternating blocks of ``--block`` with the log's receiver
   connected and disconnected. The figure is the time per event with the log (its leaf queued in the event's
   transaction), next to the same events without it (the ceiling this feature cannot beat), and their difference:
   what the log adds (goal: under 0.2 ms).
2. **Sequencer and checkpoint**: the time the sequencer takes to number the queued leaves (after commit, off the
   events' path), then to sign a checkpoint of everything appended (tiles built, root computed, note signed).
3. **Proofs**: the log is grown to ``--tree-size`` leaves (synthetic leaves written with COPY, their hashes
   computed here), checkpointed (timed again), and gunicorn is started as docker-compose's web service. Then
   ``--proofs`` inclusion proofs of random leaves and consistency proofs between random sizes are asked for one at
   a time over HTTP; each answer is verified with the lab-side client's RFC 9162 verifier against the checkpoint's
   root, and p50/p99 are printed next to the in-process proof computation and to the server's floor
   (``/healthz``). Goal: each proof under 10 ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "client" / "src"))

from lookup import bench_environment, database_prepare, django_setup, server  # noqa: E402

GOAL_APPEND_MS = 0.2
GOAL_PROOF_MS = 10.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


def appends_measure(events: int, block: int) -> tuple[float, float]:
    """Milliseconds per event with the log and without it."""
    from django.db import transaction

    from core.actors import Actor
    from optout.transparency.receivers import _log_events_append  # noqa: PLC2701  (connected and disconnected here)
    from registry.audit import audit_record
    from registry.signals import audit_events_recorded

    actor = Actor.system()
    spent = {True: 0.0, False: 0.0}
    counted = {True: 0, False: 0}
    done = 0
    with_log = True
    while done < events:
        count = min(block, events - done)
        if with_log:
            audit_events_recorded.connect(_log_events_append, dispatch_uid="optout.transparency.log_events_append")
        else:
            audit_events_recorded.disconnect(dispatch_uid="optout.transparency.log_events_append")
        started = time.perf_counter()
        for n in range(done, done + count):
            with transaction.atomic():
                audit_record(
                    code="registry.work.identifier_added",
                    actor=actor,
                    data={"holder": 1, "identifier": f"url:https://bench.example/{n}"},
                )
        spent[with_log] += time.perf_counter() - started
        counted[with_log] += count
        done += count
        with_log = not with_log
        if done % (block * 20) == 0:
            print(f"  {done:,} events", flush=True)
    audit_events_recorded.connect(_log_events_append, dispatch_uid="optout.transparency.log_events_append")
    return spent[True] / counted[True] * 1000, spent[False] / max(counted[False], 1) * 1000


def synthetic_grow(url: str, tree_size: int) -> None:
    """Grow the log to ``tree_size`` leaves with synthetic ``bench.synthetic`` leaves, by COPY."""
    from core.jcs import canonical_json
    from core.merkle import leaf_hash

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT size FROM optout_loghead WHERE id = 1").fetchone()
        size = row[0] if row else 0
        if size >= tree_size:
            return
        print(f"growing the log from {size:,} to {tree_size:,} leaves")
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY optout_logentry (index, kind, event_id, data, leaf_hash, appended_at) FROM STDIN"
        ) as copy:
            for index in range(size, tree_size):
                data = canonical_json(
                    {"v": 1, "id": index, "kind": "bench.synthetic", "time": "2026-12-05T00:00:00Z", "subject": {}}
                )
                copy.write_row((index, "bench.synthetic", 10**12 + index, data, leaf_hash(data), "now()"))
        conn.execute("UPDATE optout_loghead SET size = %s WHERE id = 1", [tree_size])
        conn.commit()
        print(f"  {time.perf_counter() - started:.0f} s")


# The tables each event writes, and those a proof reads.
EVENT_TABLES = ("optout_logqueuedleaf", "optout_logentry", "registry_auditevent")
PROOF_TABLES = ("optout_logtile", "optout_logcheckpoint", "optout_loghead")


def tables_vacuum(url: str, tables: tuple[str, ...]) -> None:
    """VACUUM (ANALYZE) ``tables``, as autovacuum keeps them in production: this machine's PostgreSQL runs with
    autovacuum off, so dead rows and statistics from earlier runs would weigh on what is measured (proofs read tiles
    by a plan made on the tile table's statistics)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")


def sequencer_time() -> tuple[float, int]:
    """Seconds the sequencer takes to number the queued leaves (after commit, off the events' path), and how many."""
    from optout.transparency.services import log_sequence

    started = time.perf_counter()
    numbered = log_sequence()
    return time.perf_counter() - started, numbered


def checkpoint_time() -> tuple[float, int]:
    from optout.transparency.services import log_checkpoint_issue

    started = time.perf_counter()
    checkpoint = log_checkpoint_issue()
    return time.perf_counter() - started, checkpoint.size


def proofs_measure(base: str, count: int, seed: int) -> dict[str, Any]:
    from optout_client.transparency import LogVerifier, checkpoint_open, consistency_verify, inclusion_verify

    from optout.transparency.selectors import log_consistency_proof, log_inclusion_proof

    rng = random.Random(seed)  # noqa: S311  (a repeatable workload, not a secret)
    client = httpx.Client(timeout=30)
    verifier = LogVerifier.parse(client.get(f"{base}/log/key").text)
    checkpoint = checkpoint_open(client.get(f"{base}/log/checkpoint").text, verifier)
    size = checkpoint.size
    figures: dict[str, Any] = {"size": size}
    inclusion_ms, consistency_ms, floor_ms, local_inclusion_ms, local_consistency_ms = [], [], [], [], []
    roots: dict[int, bytes] = {size: checkpoint.root_hash}
    for n in range(count):
        index = rng.randrange(size)
        started = time.perf_counter()
        answer = client.get(f"{base}/api/v1/log/proof/inclusion", params={"index": index, "size": size})
        inclusion_ms.append((time.perf_counter() - started) * 1000)
        proof = answer.json()
        inclusion_verify(
            index,
            size,
            base64.b64decode(proof["leaf_hash"]),
            [base64.b64decode(h) for h in proof["hashes"]],
            checkpoint.root_hash,
        )
        older = rng.randrange(1, size)
        started = time.perf_counter()
        answer = client.get(f"{base}/api/v1/log/proof/consistency", params={"from": older, "to": size})
        consistency_ms.append((time.perf_counter() - started) * 1000)
        if n < 50:
            # The older root, from the tree the server stores, to check the proof end to end.
            from core.merkle import tree_root
            from optout.transparency.selectors import log_reader

            roots[older] = tree_root(older, log_reader(size=older))
            consistency_verify(
                older, size, roots[older], checkpoint.root_hash, [base64.b64decode(h) for h in answer.json()["hashes"]]
            )
        started = time.perf_counter()
        client.get(f"{base}/healthz")
        floor_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        log_inclusion_proof(index=str(index), size=str(size))
        local_inclusion_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        log_consistency_proof(first=str(older), second=str(size))
        local_consistency_ms.append((time.perf_counter() - started) * 1000)
    for name, values in (
        ("inclusion over HTTP", inclusion_ms),
        ("consistency over HTTP", consistency_ms),
        ("inclusion in process (ceiling)", local_inclusion_ms),
        ("consistency in process (ceiling)", local_consistency_ms),
        ("/healthz over HTTP (floor)", floor_ms),
    ):
        figures[name] = (statistics.median(values), percentile(values, 99))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events appended, half with the log")
    parser.add_argument("--block", type=int, default=5_000, help="events per alternating block")
    parser.add_argument("--tree-size", type=int, default=10_000_000, help="leaves the proofs are served from")
    parser.add_argument("--proofs", type=int, default=2_000, help="proofs of each kind asked for")
    parser.add_argument("--skip-appends", action="store_true", help="only grow the log and measure proofs")
    parser.add_argument("--reload", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--base-url", help="measure a running server instead of starting gunicorn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    bench_environment(args)
    import os

    url = os.environ["DATABASE_URL"]
    database_prepare(url, reload=args.reload)
    django_setup()

    results: dict[str, Any] = {}
    if not args.skip_appends and args.events:
        print(
            f"appending {args.events:,} events, each in its own transaction, "
            f"blocks of {args.block:,} with and without the log"
        )
        tables_vacuum(url, EVENT_TABLES)
        with_log, without = appends_measure(args.events, args.block)
        results["append"] = (with_log, without)
        results["sequencer"] = sequencer_time()
        seconds, size = checkpoint_time()
        results["checkpoint after appends"] = (seconds, size)
        print(f"  checkpoint of {size:,} leaves: {seconds:.2f} s")
    synthetic_grow(url, args.tree_size)
    seconds, size = checkpoint_time()
    results["checkpoint at tree size"] = (seconds, size)
    print(f"checkpoint of {size:,} leaves: {seconds:.2f} s")
    tables_vacuum(url, PROOF_TABLES)
    with server(args.base_url, args.workers) as base:
        proofs = proofs_measure(base, args.proofs, args.seed)

    print("\n=== transparency log ===")
    verdicts = []
    if "append" in results:
        with_log, without = results["append"]
        added = with_log - without
        ok = added < GOAL_APPEND_MS
        verdicts.append(ok)
        print(f"event in its own transaction: {with_log:.3f} ms with the log, {without:.3f} ms without (ceiling)")
        print(f"  added by the log: {added:.3f} ms per event (goal < {GOAL_APPEND_MS} ms)  {'PASS' if ok else 'FAIL'}")
        seconds, numbered = results["sequencer"]
        per_leaf = seconds / max(numbered, 1) * 1_000_000
        print(
            f"sequencer after the appends: {numbered:,} queued leaves numbered in {seconds:.2f} s "
            f"({per_leaf:.0f} µs each)"
        )
        seconds, size = results["checkpoint after appends"]
        print(f"checkpoint after the appends: {size:,} leaves in {seconds:.2f} s")
    seconds, size = results["checkpoint at tree size"]
    print(f"checkpoint at {size:,} leaves (incremental): {seconds:.2f} s")
    print(f"proofs at {proofs['size']:,} leaves, {args.proofs:,} each, p50 / p99 ms:")
    for name in (
        "inclusion over HTTP",
        "consistency over HTTP",
        "inclusion in process (ceiling)",
        "consistency in process (ceiling)",
        "/healthz over HTTP (floor)",
    ):
        p50, p99 = proofs[name]
        mark = ""
        if name.endswith("over HTTP"):
            ok = p99 < GOAL_PROOF_MS
            verdicts.append(ok)
            mark = f"  (goal p99 < {GOAL_PROOF_MS} ms) {'PASS' if ok else 'FAIL'}"
        print(f"  {name:34s} {p50:7.2f} / {p99:7.2f}{mark}")
    print("\n" + json.dumps({"pass": all(verdicts)}))
    sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
