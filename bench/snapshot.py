"""Snapshot benchmark: a snapshot of 10,000,000 works with 1,000,000 refused keys, built by the shipped worker.

Run from the project root with PostgreSQL and Redis (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_snapshot_bench REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/snapshot.py

It creates the database if missing and migrates it, then loads ``--works`` works with set-based SQL: one ISBN-13
each (979-1nnnnnnnn-c), a verified 100% claim of one bench holder, a work-scoped ``train-ai`` refusal on every tenth
(effective since 29 days ago) with its event, and what the status projection holds for them: per key and purpose a
``permitted`` segment from the load, and for the refused keys a ``refused`` one from the refusal's instant, with
the change feed that led there (``unregistered -> permitted`` per key and purpose, then ``permitted -> refused``).
A sample of keys is checked against the projection's own rules (``key_timelines``, as ``status_check`` does).

Then it starts the Procfile's worker of the long queue, queues a snapshot as beat does (``snapshot_schedule``:
the task ``optout.tasks.snapshot_build`` through Redis), waits for it, and prints the build time (the job's
``started_at`` to ``finished_at``) and the peak resident set (VmHWM) of the worker's pool processes, one of which
built it, next to two ceilings measured in the same run: ``COPY (SELECT ...) TO STDOUT`` of the same segment rows
(what reading them costs at the least) and hashing the same keys in this process. The files are checked: counts,
every file's SHA-256 against the signed manifest, the signature, and the membership files against the refused
keys recomputed here from the README's definition. PASS/FAIL against issue 14's goal: under 60 s, under 500 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from accrual import celery_worker, children, log_tail, proc_status_kb
from lookup import bench_environment, cpu_busy, database_prepare, django_setup, parties_ensure
from psycopg import sql as pgsql

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 60.0
GOAL_PEAK_RSS_MB = 500

# ISBN-13 979-1 + the work number on 8 digits + check digit: '9','7','9','1' weigh 1,3,1,3 (42), the number's
# digits 1,3,1,3,1,3,1,3.
ISBN_SQL = (
    "'9791' || lpad(n::text, 8, '0') || mod(10 - mod(42 + mod(n / 10000000, 10) + 3 * mod(n / 1000000, 10)"
    " + mod(n / 100000, 10) + 3 * mod(n / 10000, 10) + mod(n / 1000, 10) + 3 * mod(n / 100, 10)"
    " + mod(n / 10, 10) + 3 * mod(n, 10), 10), 10)::text"
)
PURPOSES_SQL = "(VALUES ('train-ai'), ('train-genai')) AS p(purpose)"


def isbn_for(number: int) -> str:
    body = f"9791{number:08d}"
    total = sum(int(digit) * (3 if i % 2 else 1) for i, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


def refused(number: int) -> bool:
    return number % 10 == 0


# --- Loading ------------------------------------------------------------------------------------------------


def works_load(*, holder: Any, works: int) -> None:
    """Works, identifiers, claims, refusals, their events, segments and changes, each one INSERT ... SELECT."""
    from django.db import connection, transaction

    from optout.models import StatusSegment
    from registry.models import Work

    existing = Work.objects.filter(registered_by=holder).count()
    if existing == works and StatusSegment.objects.exists():
        print(f"load: skipped, the bench holder already has {works:,} works (--reload to load afresh)")
        return
    if existing:
        sys.exit(f"The bench database holds {existing:,} bench works, not {works:,}: run again with --reload.")
    loaded_at = datetime.now().astimezone() - timedelta(days=30)
    refused_from = loaded_at + timedelta(days=1)
    params: dict[str, Any] = {"holder": holder.pk, "works": works, "at": loaded_at, "refused_from": refused_from}
    key = "'isbn:' || isbn"
    steps = [
        (
            "numbering",
            "CREATE TEMP TABLE bench_n ON COMMIT DROP AS SELECT n, nextval(pg_get_serial_sequence("  # noqa: S608
            f"'registry_work', 'id')) AS work_id, {ISBN_SQL} AS isbn FROM generate_series(1, %(works)s) AS n",
        ),
        (
            "works",
            "INSERT INTO registry_work (id, kind, title, creators, language, creation_year, status,"
            " registered_by_id, created_at)"
            " SELECT work_id, 'text', 'Bench work ' || n, '[]'::jsonb, 'ko', 2024, 'verified', %(holder)s, %(at)s"
            " FROM bench_n ORDER BY n",
        ),
        (
            "identifiers",
            "INSERT INTO registry_identifier (work_id, scheme, value, created_at)"
            " SELECT work_id, 'isbn', isbn, %(at)s FROM bench_n ORDER BY n",
        ),
        (
            "claims",
            "INSERT INTO registry_ownershipclaim (work_id, holder_id, share_bp, valid_from, status,"
            " decision_reason, decided_by_id, decided_at, verified_by_domain_id, created_at)"
            " SELECT work_id, %(holder)s, 10000, %(at)s::date, 'verified', 'bench', NULL, %(at)s, NULL, %(at)s"
            " FROM bench_n ORDER BY n",
        ),
        (
            "refusals",
            "INSERT INTO optout_refusal (holder_id, scope, purpose, work_id, domain_id, url_prefix, url_host,"
            " effective_from, filed_at, filed_by_id)"
            " SELECT %(holder)s, 'work', 'train-ai', work_id, NULL, '', '', %(refused_from)s, %(refused_from)s, NULL"
            " FROM bench_n WHERE mod(n, 10) = 0 ORDER BY n",
        ),
        (
            "refusal events",
            "INSERT INTO optout_refusalevent (refusal_id, kind, effective_at, recorded_at, actor_id)"
            " SELECT id, 'filed', effective_from, filed_at, NULL FROM optout_refusal"
            " WHERE holder_id = %(holder)s ORDER BY id",
        ),
        (
            "refusal ids",
            "CREATE TEMP TABLE bench_r ON COMMIT DROP AS SELECT b.n, r.id AS refusal_id FROM bench_n b"
            " JOIN optout_refusal r ON r.work_id = b.work_id",
        ),
        (
            "segments",
            # Per key and purpose: permitted from the load (until the refusal, for the refused keys) ...
            "INSERT INTO optout_statussegment (subject_type, subject, host, purpose, valid_from, valid_to, status,"  # noqa: S608
            " compensation, regime, pending_refusal, work_id, refusal_id)"
            f" SELECT 'key', {key}, '', p.purpose, %(at)s, CASE WHEN mod(n, 10) = 0 THEN %(refused_from)s END,"
            " 'permitted', 'owners', 'use_first', false, work_id, NULL"
            f" FROM bench_n CROSS JOIN {PURPOSES_SQL} ORDER BY n, p.purpose",
        ),
        (
            "refused segments",
            # ... and refused from the refusal's instant on.
            "INSERT INTO optout_statussegment (subject_type, subject, host, purpose, valid_from, valid_to, status,"  # noqa: S608
            " compensation, regime, pending_refusal, work_id, refusal_id)"
            f" SELECT 'key', {key}, '', p.purpose, %(refused_from)s, NULL, 'refused', 'none', 'use_first', false,"
            f" b.work_id, r.refusal_id FROM bench_n b JOIN bench_r r USING (n) CROSS JOIN {PURPOSES_SQL}"
            " ORDER BY n, p.purpose",
        ),
        (
            "changes",
            "INSERT INTO optout_statuschange (subject_type, subject, host, purpose, old_status, new_status,"  # noqa: S608
            " effective_at, recorded_at, cause_id, cause_code)"
            f" SELECT 'key', {key}, '', p.purpose, 'unregistered', 'permitted', %(at)s, %(at)s, NULL,"
            f" 'registry.claim.verified' FROM bench_n CROSS JOIN {PURPOSES_SQL} ORDER BY n, p.purpose",
        ),
        (
            "refusal changes",
            "INSERT INTO optout_statuschange (subject_type, subject, host, purpose, old_status, new_status,"  # noqa: S608
            " effective_at, recorded_at, cause_id, cause_code)"
            f" SELECT 'key', {key}, '', p.purpose, 'permitted', 'refused', %(refused_from)s, %(refused_from)s,"
            f" NULL, 'optout.refusal.filed' FROM bench_n JOIN bench_r USING (n) CROSS JOIN {PURPOSES_SQL}"
            " ORDER BY n, p.purpose",
        ),
    ]
    print(f"load: {works:,} works, {works // 10:,} refusals")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for label, statement in steps:
            step_started = time.perf_counter()
            cursor.execute(statement, params)
            print(f"  {label:<17} {cursor.rowcount:>11,} rows  {time.perf_counter() - step_started:7.1f} s", flush=True)
    step_started = time.perf_counter()
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        raw.execute(
            "VACUUM (ANALYZE) registry_work, registry_identifier, registry_ownershipclaim, optout_refusal,"
            " optout_refusalevent, optout_statussegment, optout_statuschange"
        )
        with contextlib.suppress(psycopg.Error):
            raw.execute("CHECKPOINT")
    print(f"  {'vacuum, analyze, checkpoint':<29}        {time.perf_counter() - step_started:7.1f} s")
    print(f"load: {time.perf_counter() - started:.1f} s in all")


def load_check(works: int) -> None:
    """The SQL ISBNs are valid to the registry's normalizer, and the loaded projection is what the projection's
    own rules compute for a sample of keys (refused and not)."""
    from django.utils import timezone

    from optout.status.services import stored_segments, stored_timeline
    from optout.status.timelines import key_timelines
    from registry.identifiers import identifier_normalize

    numbers = sorted({1, 2, 9, 10, 11, 20, works // 2, works // 2 + 5, works - 1, works} - {0})
    for number in numbers:
        value = isbn_for(number)
        if identifier_normalize(scheme="isbn", value=value).value != value:
            sys.exit(f"load check failed: ISBN {value} for work number {number} is not the normalized form.")
    now = timezone.now()
    expected = key_timelines(keys=[f"isbn:{isbn_for(n)}" for n in numbers], now=now)
    stored = stored_segments(list(expected), now)
    for subject, timeline in expected.items():
        have = stored_timeline(stored.get(subject, []), now)
        if have != timeline:
            sys.exit(f"load check failed: {subject} has {have} in the projection, the events say {timeline}.")
    print(f"load check: {len(expected)} keys and purposes agree with the projection's rules")


# --- Measuring ----------------------------------------------------------------------------------------------


def build_by_worker(data_dir: Path, *, timeout: float) -> tuple[Any, float, int, int]:
    """Queue a snapshot as beat does and let the shipped long-queue worker build it; ``(snapshot, seconds, peak kB,
    baseline kB)``, the peak and baseline being the largest VmHWM / VmRSS among the worker's pool processes."""
    from optout.models import Snapshot, SnapshotStatus
    from optout.snapshots.services import snapshot_schedule

    log_path = data_dir / "worker_long.log"
    with celery_worker(log_path) as worker:
        baseline_kb = max((proc_status_kb(pid, "VmRSS") for pid in children(worker.pid)), default=0)
        snapshot = snapshot_schedule()
        print(f"build: snapshot {snapshot.snapshot_id} queued; worker pool at {baseline_kb / 1024:.0f} MB")
        deadline = time.monotonic() + timeout
        peak_kb = 0
        while True:
            peak_kb = max([peak_kb, *(proc_status_kb(pid, "VmHWM") for pid in children(worker.pid))])
            snapshot = Snapshot.objects.get(pk=snapshot.pk)
            if snapshot.status in (SnapshotStatus.READY, SnapshotStatus.FAILED):
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"snapshot not built after {timeout:.0f} s:\n{log_tail(log_path)}")
            time.sleep(0.2)
        peak_kb = max([peak_kb, *(proc_status_kb(pid, "VmHWM") for pid in children(worker.pid))])
    if snapshot.status != SnapshotStatus.READY:
        raise RuntimeError(f"snapshot failed: {snapshot.failure_code} {snapshot.failure_detail}\n{log_tail(log_path)}")
    # A READY snapshot has both times.
    assert snapshot.finished_at is not None
    assert snapshot.started_at is not None
    seconds = (snapshot.finished_at - snapshot.started_at).total_seconds()
    return snapshot, seconds, peak_kb, baseline_kb


def ceiling_copy(url: str, as_of: datetime) -> tuple[float, int]:
    """``COPY (SELECT ...) TO STDOUT`` of the rows the build reads for keys, read to the end and dropped."""
    query = (
        "COPY (SELECT subject, purpose, status, work_id, refusal_id, valid_from FROM optout_statussegment"
        " WHERE subject_type = 'key' AND status IN ('refused', 'license_required') AND valid_from <= {at}"
        " AND (valid_to IS NULL OR valid_to > {at})) TO STDOUT"
    )
    started = time.perf_counter()
    size = 0
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        at = pgsql.Literal(as_of)
        with cursor.copy(pgsql.SQL(query).format(at=at)) as copy:
            for block in copy:
                size += len(block)
    return time.perf_counter() - started, size


def ceiling_hash(keys: list[str]) -> float:
    started = time.perf_counter()
    for key in keys:
        int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return time.perf_counter() - started


def files_check(snapshot: Any, works: int) -> list[str]:
    """The snapshot against what was loaded: counts, file hashes, the signature, the membership files."""
    from optout.receipts import receipt_verify
    from optout.snapshots import files
    from optout.snapshots.services import snapshot_storage

    problems: list[str] = []
    manifest = dict(snapshot.manifest)
    expected = works // 10
    if manifest["counts"]["keys"] != {"train-ai": expected, "train-genai": expected}:
        problems.append(f"counts {manifest['counts']['keys']}, expected {expected:,} per purpose")
    receipt = manifest.pop("receipt")
    if not receipt_verify(payload=manifest, receipt=receipt).valid:
        problems.append("the manifest's signature does not verify")
    storage = snapshot_storage()
    for entry in manifest["files"]:
        with storage.open(snapshot.storage_prefix + entry["name"], "rb") as handle:
            data = handle.read()
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["bytes"]:
            problems.append(f"{entry['name']}: bytes or SHA-256 differ from the manifest")
        if entry["name"] == files.membership_file("train-ai"):
            membership = data
    want = sorted(int.from_bytes(hashlib.sha256(f"isbn:{isbn_for(n)}".encode()).digest()[:8], "big")
                  for n in range(10, works + 1, 10))  # fmt: skip
    if membership != b"".join(value.to_bytes(8, "big") for value in want):
        problems.append("keys-train-ai.bin is not the sorted big-endian hashes of the refused keys")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--works", type=int, default=10_000_000, help="works to load (a tenth refused)")
    parser.add_argument("--reload", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--redis-url", default="", help="REDIS_URL for this script and the worker")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the build")
    args = parser.parse_args(argv)
    if args.works > 99_999_999:
        sys.exit("--works must stay below 100,000,000 (8 digits of the ISBN).")
    bench_environment(args)
    if not os.environ.get("REDIS_URL"):
        sys.exit("bench/snapshot.py needs Redis (REDIS_URL or --redis-url): the worker takes the task from it.")
    url = os.environ["DATABASE_URL"]
    database_prepare(url, reload=args.reload)
    django_setup()
    from django.conf import settings

    from config.celery import app

    app.conf.task_always_eager = False
    holder, _lab = parties_ensure()
    works_load(holder=holder, works=args.works)
    load_check(args.works)
    busy = cpu_busy()
    print(f"CPU busy before measuring: {busy:.0%} of {os.cpu_count()} CPUs")
    if busy > 0.2:
        print("  warning: the machine is busy with other work; the figures will be noisy (run again when idle)")

    snapshot, seconds, peak_kb, baseline_kb = build_by_worker(Path(settings.DATA_DIR), timeout=args.timeout)
    copy_seconds, copy_bytes = ceiling_copy(url, snapshot.as_of)
    keys = [f"isbn:{isbn_for(n)}" for n in range(10, args.works + 1, 10)] * 2  # both purposes
    hash_seconds = ceiling_hash(keys)
    del keys
    problems = files_check(snapshot, args.works)

    manifest = snapshot.manifest
    print()
    print(f"snapshot {snapshot.snapshot_id}: as of {manifest['as_of']}, cursor {manifest['cursor']:,}")
    for entry in manifest["files"]:
        print(f"  {entry['name']:<24} {entry['bytes']:>13,} bytes")
    print(f"{'':<28}{'seconds':>9}  {'peak RSS MB':>11}")
    peak_mb = peak_kb / 1024
    before = baseline_kb / 1024
    print(f"{'build (shipped worker)':<28}{seconds:>9.1f}  {peak_mb:>11.0f}   (pool process at {before:.0f} MB before)")
    print(f"{'ceiling: COPY of the rows':<28}{copy_seconds:>9.1f}  {'':>11}   ({copy_bytes / 1e6:,.0f} MB of text)")
    hashed = 2 * (args.works // 10)
    print(f"{'ceiling: hash the keys':<28}{hash_seconds:>9.1f}  {'':>11}   ({hashed:,} keys, in this process)")
    time_ok = seconds < GOAL_SECONDS
    memory_ok = 0 < peak_mb < GOAL_PEAK_RSS_MB
    print(f"goal: build < {GOAL_SECONDS:.0f} s {'PASS' if time_ok else 'FAIL'}; "
          f"worker < {GOAL_PEAK_RSS_MB} MB {'PASS' if memory_ok else 'FAIL'}")  # fmt: skip
    for problem in problems:
        print(f"WRONG: {problem}", file=sys.stderr)
    if problems:
        return 2
    return 0 if time_ok and memory_ok else 1


if __name__ == "__main__":
    sys.exit(main())
