"""Accrual benchmark: a usage manifest through the API and a real Celery worker, against set-based SQL.

Run from the project root with PostgreSQL and Redis (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/accrual.py

It loads the works as bench/lookup.py does (the same database serves both: one ISBN per work, a verified
100% claim of the bench holder on every work, a ``train-ai`` refusal on every tenth), makes sure of a tariff
for text per token in force over the manifest's period, and writes a gzip CSV manifest of ``--lines`` lines
to disk, streaming: 70% registered works (matched), 15% valid ISBNs no work has (unmatched_held), 5%
refused works used after the refusal (refused_at_use), 5% invalid lines (bad check digit, negative units,
unknown unit) and 5% repeats of an earlier line (duplicate). It then:

- starts gunicorn and a real Celery worker (the commands docker-compose and the Procfile ship), uploads the file
  with ``POST /api/v1/usage-manifests`` (multipart, streamed) and polls ``GET /api/v1/usage-manifests/{id}``
  until it is processed: upload, queue and processing times, lines per second end to end, the worker's peak
  resident memory (``VmHWM``) plus what its parsing process had of its own;
- does the same accrual as hand-written set-based SQL in one transaction (``COPY`` into a staging table,
  then ``INSERT ... SELECT``: validate, deduplicate, match, decide refusals at use, price, accounts, one
  ledger entry per chunk with its lines summed per account, the outcome rows) into scratch copies of the
  ledger and outcome tables (same columns, indexes, checks, foreign keys and insert triggers), the ceiling;
- checks both: every line's outcome against what the generator meant, counts and amounts per outcome,
  balanced entries, the lab's receivable equal to the lines' amounts and every credit to where the lines
  say the money went; and the two results against each other, column by column.

``--profile`` also processes smaller manifests in this process (the worker's code, called directly): the
time of each function of the usage modules and the time waiting on PostgreSQL, and cProfile's top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import gzip
import hashlib
import http.client
import io
import json
import os
import pstats
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock
from urllib.parse import urlsplit

import psycopg
from lookup import (
    MAX_NUMBER,
    Mismatch,
    bench_environment,
    cpu_busy,
    database_prepare,
    django_setup,
    isbn_for,
    load_check,
    parties_ensure,
    server,
    works_load,
)
from psycopg import sql as pgsql

from core.tasks import QUEUE_LONG
from tests.shipped import procfile_command, procfile_worker

if TYPE_CHECKING:
    from registry.models import ApiKey, Party

ROOT = Path(__file__).resolve().parent.parent
GOAL_LINES_PER_S = 20_000
GOAL_PEAK_RSS_MB = 500
RATE_KRW = "0.0005"  # per token, for text: set when the bench database has no such tariff yet
KST = timezone(timedelta(hours=9))

MATCHED = "matched"
UNMATCHED = "unmatched_held"
REFUSED = "refused_at_use"
INVALID = "invalid"
DUPLICATE = "duplicate"
# Index in this tuple = the byte recorded per line by the generator.
OUTCOMES = (MATCHED, UNMATCHED, REFUSED, INVALID, DUPLICATE)
# The generated mix, in this order (what is left after the last is a duplicate).
MIX = ((MATCHED, 0.70), (UNMATCHED, 0.15), (REFUSED, 0.05), (INVALID, 0.05))
INVALID_KINDS = ("invalid_checksum", "negative_units", "unknown_unit")
# Earlier lines a duplicate may repeat: far enough back to cross chunk boundaries.
DUPLICATE_WINDOW = 50_000


# --- The manifest -------------------------------------------------------------------------------------


@dataclass
class Expected:
    """What the generator meant: each line's outcome (one byte per line), counts and amounts."""

    lines: int
    outcomes: bytearray
    counts: Counter[str] = field(default_factory=Counter)
    amounts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def total_micro(self) -> int:
        return sum(self.amounts.values())


def price_micro(units: int, rate: Decimal) -> int:
    """Units at ``rate`` KRW each in micro-won, rounded half-even (written here, not the app's)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int((Decimal(units) * rate * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def manifest_write(
    path: Path, *, lines: int, works: int, used_from: datetime, used_to: datetime, rate: Decimal, seed: int
) -> Expected:
    """Write a gzip CSV manifest of ``lines`` lines, streaming, and return what each line should become.

    Every original line has its own ``used_at`` (evenly spread over the period, microseconds apart at
    least), so the only duplicates are the ones made on purpose: exact repeats of an earlier valid line.
    """
    rng = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
    expected = Expected(lines=lines, outcomes=bytearray(lines))
    step_us = max(1, int((used_to - used_from) / timedelta(microseconds=1)) // max(1, lines))
    recent: list[tuple[str, str, str, str, str]] = []
    recent_at = 0
    codes = {name: index for index, name in enumerate(OUTCOMES)}
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["scheme", "value", "units", "unit", "used_at"])
        for index in range(lines):
            used_at = (used_from + timedelta(microseconds=index * step_us)).isoformat(timespec="microseconds")
            draw = rng.random()
            outcome = DUPLICATE
            for name, share in MIX:
                if draw < share:
                    outcome = name
                    break
                draw -= share
            if outcome == DUPLICATE and not recent:
                outcome = MATCHED
            units = rng.randint(1, 200_000)
            if outcome == DUPLICATE:
                row = recent[rng.randrange(len(recent))]
            elif outcome == INVALID:
                kind = INVALID_KINDS[index % len(INVALID_KINDS)]
                expected.reasons[kind] += 1
                value = isbn_for(registered_number(rng, works))
                if kind == "invalid_checksum":
                    value = value[:-1] + str((int(value[-1]) + 1) % 10)
                row = ("isbn", value, str(-units if kind == "negative_units" else units),
                       "words" if kind == "unknown_unit" else "token", used_at)  # fmt: skip
            else:
                if outcome == MATCHED:
                    number = registered_number(rng, works)
                elif outcome == REFUSED:
                    number = rng.randint(1, works // 10) * 10
                else:
                    number = rng.randint(works + 1, MAX_NUMBER)
                row = ("isbn", isbn_for(number), str(units), "token", used_at)
                expected.amounts[outcome] += price_micro(units, rate)
                if len(recent) < DUPLICATE_WINDOW:
                    recent.append(row)
                else:
                    recent[recent_at] = row
                    recent_at = (recent_at + 1) % DUPLICATE_WINDOW
            writer.writerow(row)
            expected.outcomes[index] = codes[outcome]
            expected.counts[outcome] += 1
    return expected


def registered_number(rng: random.Random, works: int) -> int:
    """A registered work that is not refused (lookup.py refuses every tenth)."""
    number = rng.randint(1, works)
    return number - 1 if number % 10 == 0 else number


# --- Set-up -------------------------------------------------------------------------------------------


@dataclass
class Setup:
    holder: Party
    lab: Party
    key: ApiKey
    raw_key: str
    used_from: datetime
    used_to: datetime
    rate: Decimal
    tariff_id: int


def setup(args: argparse.Namespace) -> Setup:
    from django.db.models import Max

    from compensation.models import Tariff
    from compensation.usage.tariffs import tariff_set
    from core.actors import Actor
    from optout.models import KindRegime, Refusal
    from registry.models import ApiScope, OwnershipClaim
    from registry.services import apikey_create

    holder, lab = parties_ensure()
    works_load(holder=holder, works=args.works)
    load_check(args.works)
    if KindRegime.objects.exists():
        sys.exit("The bench database has kind regimes (licence required): the expected outcomes assume none.")
    used_to = datetime.now(KST).replace(microsecond=0) - timedelta(minutes=10)
    used_from = used_to - timedelta(days=args.days)
    latest = max(
        Refusal.objects.filter(holder=holder).aggregate(at=Max("effective_from"))["at"] or used_from,
        OwnershipClaim.objects.filter(holder=holder).aggregate(at=Max("decided_at"))["at"] or used_from,
    )
    if latest >= used_from:
        sys.exit(
            f"The bench refusals or claims start {latest:%Y-%m-%d %H:%M}, inside the manifest's period from "
            f"{used_from:%Y-%m-%d %H:%M}: use a shorter --days or --reload."
        )
    tariffs = list(Tariff.objects.filter(kind="text", unit="token").order_by("effective_from"))
    if not tariffs:
        # Before the first tariff of its kind and unit, a tariff may start in the past.
        tariffs = [
            tariff_set(
                actor=Actor.system(), kind="text", unit="token", rate_krw=RATE_KRW,
                effective_from=used_from - timedelta(days=365),
            )
        ]  # fmt: skip
    in_force = [t for t in tariffs if t.effective_from <= used_from]
    if not in_force or any(used_from < t.effective_from <= used_to for t in tariffs):
        sys.exit("The text/token tariffs of the bench database do not give one rate over the manifest's period.")
    key, raw_key = apikey_create(
        actor=Actor.system(), scopes=[ApiScope.USAGE_WRITE], party=lab, name="bench/accrual.py"
    )
    return Setup(
        holder=holder, lab=lab, key=key, raw_key=raw_key, used_from=used_from, used_to=used_to,
        rate=in_force[-1].rate_krw, tariff_id=in_force[-1].pk,
    )  # fmt: skip


def schema_drift(url: str) -> list[str]:
    """Columns and foreign keys of the project's models that the bench database does not have as the models say
    (a migration edited in place since the database was migrated; ``--reload`` rebuilds it)."""
    from django.apps import apps

    with psycopg.connect(url) as conn:
        columns = set(
            conn.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")
        )
        foreign_keys = set(
            conn.execute(
                "SELECT k.conrelid::regclass::text, a.attname FROM pg_constraint k JOIN pg_attribute a"
                " ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] WHERE k.contype = 'f'"
            )
        )
    drift = []
    for model in apps.get_models():
        meta = model._meta
        if meta.app_label not in ("registry", "optout", "compensation") or not meta.managed or meta.proxy:
            continue
        for model_field in meta.concrete_fields:
            where = f"{meta.db_table}.{model_field.column}"
            if (meta.db_table, model_field.column) not in columns:
                drift.append(f"{where}: no such column")
            elif model_field.many_to_one or model_field.one_to_one:
                wanted = bool(getattr(model_field, "db_constraint", False))
                if wanted != ((meta.db_table, model_field.column) in foreign_keys):
                    drift.append(f"{where}: foreign key {'missing' if wanted else 'present, the model has none'}")
    return drift


def unfinished_warn(lab: Party) -> None:
    from compensation.models import ManifestStatus, UsageManifest

    stale = UsageManifest.objects.filter(lab=lab, status__in=[ManifestStatus.RECEIVED, ManifestStatus.PROCESSING])
    if stale.exists():
        print(
            f"  warning: {stale.count()} earlier bench manifest(s) never finished (an interrupted run); a worker "
            "may resume them (Redis redelivers unacknowledged tasks) and skew this run's figures"
        )


def code_fingerprint() -> str:
    """A short hash of the application's Python files as they are now, to tie figures to the code measured."""
    digest = hashlib.sha256()
    for path in sorted(
        p for app in ("compensation", "optout", "registry", "config") for p in (ROOT / app).rglob("*.py")
    ):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    head = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    return f"{digest.hexdigest()[:12]}" + (f" (on git {head} and any uncommitted changes)" if head else "")


def checkpoint(url: str) -> None:
    """Write dirty pages out before a measured part, so neither inherits the other's checkpoint."""
    with psycopg.connect(url, autocommit=True) as conn, contextlib.suppress(psycopg.Error):
        conn.execute("CHECKPOINT")


# --- Processes: the Celery worker, memory -------------------------------------------------------------


def proc_status_kb(pid: int, name: str) -> int:
    """A ``/proc/<pid>/status`` figure in kB (VmRSS now, VmHWM the peak resident set); 0 if unreadable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def private_kb(pid: int) -> int:
    """The memory only ``pid`` has (``Private_Clean`` + ``Private_Dirty`` of ``/proc/<pid>/smaps_rollup``), in kB:
    for a forked child, what it added to its parent's pages rather than what it shares with them."""
    total = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


class ParserPeak(threading.Thread):
    """Samples the worker's grandchildren (its pool processes' children): the process that parses a manifest one
    chunk ahead lives as long as the task.
    ``kb`` is its peak resident set (VmHWM, which counts the pages it shares with the worker), ``private_kb`` the
    most memory it had of its own, read twice a second."""

    def __init__(self, worker_pid: int) -> None:
        super().__init__(name="parser-peak", daemon=True)
        self.worker_pid = worker_pid
        self.kb = 0
        self.private_kb = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(0.5):
            for pid in (parser for pool in children(self.worker_pid) for parser in children(pool)):
                self.kb = max(self.kb, proc_status_kb(pid, "VmHWM"))
                self.private_kb = max(self.private_kb, private_kb(pid))

    def stop(self) -> None:
        self._stopping.set()
        self.join()


def gunicorn_workers() -> list[int]:
    """The gunicorn workers started by this process (children of the gunicorn master, our child)."""
    workers: list[int] = []
    for child in children(os.getpid()):
        with contextlib.suppress(OSError):
            if b"gunicorn" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.extend(children(child))
    return workers


@contextlib.contextmanager
def celery_worker(log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The Procfile's worker of the long queue, which runs manifests (docker-compose's command too), with this
    process's settings; stopped on exit.
    """
    command = procfile_command(procfile_worker(QUEUE_LONG))
    print("worker: " + " ".join([Path(command[0]).name, *command[1:]]))
    env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "0"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while " ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None:
                raise RuntimeError(f"the worker exited with {process.returncode}:\n{log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker was not ready in 90 s:\n{log_tail(log_path)}")
            time.sleep(0.2)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def log_tail(path: Path, size: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-size:]
    return ""


def queue_purge() -> int:
    """Drop tasks left in the bench broker by an interrupted run, so the worker starts on ours."""
    from config.celery import app

    return int(app.control.purge() or 0)


# --- Through the API ----------------------------------------------------------------------------------


@dataclass
class ApiRun:
    manifest_pk: int
    answer: dict[str, Any]
    upload_s: float
    queued_s: float
    processing_s: float
    end_to_end_s: float
    worker_baseline_kb: int
    worker_peak_kb: int
    parser_peak_kb: int
    parser_private_kb: int
    web_peak_kb: int
    polls: int
    poll_ms: float
    code: str = ""


def multipart_upload(base_url: str, raw_key: str, path: Path, fields: dict[str, str]) -> dict[str, Any]:
    """POST the file as multipart/form-data, streamed from disk with a known Content-Length."""
    boundary = "bench" + secrets.token_hex(12)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/gzip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk
        yield tail

    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1800)
    try:
        connection.request(
            "POST",
            "/api/v1/usage-manifests",
            body=body(),
            headers={
                "Authorization": f"Api-Key {raw_key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
            },
        )
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    if response.status != 202:
        raise Mismatch(f"upload: HTTP {response.status} {content[:1000]!r}")
    answer: dict[str, Any] = json.loads(content)
    return answer


def api_get(base_url: str, raw_key: str, path: str) -> dict[str, Any]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        connection.request("GET", path, headers={"Authorization": f"Api-Key {raw_key}"})
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise Mismatch(f"GET {path}: HTTP {response.status} {content[:500]!r}")
    answer: dict[str, Any] = json.loads(content)
    return answer


def api_run(
    base_url: str,
    state: Setup,
    path: Path,
    manifest_id: str,
    worker: subprocess.Popen[bytes],
    worker_log: Path,
    *,
    poll: float,
    timeout: float,
) -> ApiRun:
    # Celery's prefork pool runs the task in one of the worker's children; it forks the parsing process.
    baseline_kb = max((proc_status_kb(pid, "VmRSS") for pid in children(worker.pid)), default=0)
    parser_peak = ParserPeak(worker.pid)
    parser_peak.start()
    started_wall = datetime.now(UTC)
    started = time.perf_counter()
    accepted = multipart_upload(
        base_url, state.raw_key, path, {"manifest_id": manifest_id, "model": "bench-model", "purpose": "train-genai"}
    )
    upload_s = time.perf_counter() - started
    web_peak_kb = max((proc_status_kb(pid, "VmHWM") for pid in gunicorn_workers()), default=0)
    manifest_pk = int(accepted["id"])
    print(f"  uploaded in {upload_s:.1f} s: manifest {manifest_pk}, {accepted['lines_total']:,} lines, polling")
    polls, poll_seconds = 0, 0.0
    last_print = time.monotonic()
    deadline = time.monotonic() + timeout
    while True:
        poll_started = time.perf_counter()
        answer = api_get(base_url, state.raw_key, f"/api/v1/usage-manifests/{manifest_pk}")
        poll_seconds += time.perf_counter() - poll_started
        polls += 1
        if answer["status"] in ("processed", "failed"):
            break
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}:\n{log_tail(worker_log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not processed after {timeout:.0f} s ({answer['lines_done']:,} lines done)")
        if time.monotonic() - last_print >= 10:
            last_print = time.monotonic()
            rss = max((proc_status_kb(pid, "VmRSS") for pid in children(worker.pid)), default=0) / 1024
            done, total = answer["lines_done"], answer["lines_total"]
            print(f"  {answer['status']}: {done:,} of {total:,} lines, worker {rss:.0f} MB")
        time.sleep(poll)
    worker_peak_kb = max((proc_status_kb(pid, "VmHWM") for pid in children(worker.pid)), default=0)
    parser_peak.stop()
    if answer["status"] != "processed":
        raise Mismatch(f"manifest {manifest_pk} {answer['status']}: {answer.get('failure_reason')}")
    created = datetime.fromisoformat(answer["created_at"])
    begun = datetime.fromisoformat(answer["started_at"])
    finished = datetime.fromisoformat(answer["finished_at"])
    return ApiRun(
        manifest_pk=manifest_pk,
        answer=answer,
        upload_s=upload_s,
        queued_s=(begun - created).total_seconds(),
        processing_s=(finished - begun).total_seconds(),
        end_to_end_s=(finished - started_wall).total_seconds(),
        worker_baseline_kb=baseline_kb,
        worker_peak_kb=worker_peak_kb,
        parser_peak_kb=parser_peak.kb,
        parser_private_kb=parser_peak.private_kb,
        web_peak_kb=web_peak_kb,
        polls=polls,
        poll_ms=poll_seconds / polls * 1000 if polls else 0.0,
    )


# --- The ceiling: hand-written set-based SQL ----------------------------------------------------------

# Scratch copies of the tables an accrual writes; the ceiling writes these, never the real ledger.
SCRATCH = {
    "compensation_account": "bench_ceiling_account",
    "compensation_ledgerentry": "bench_ceiling_entry",
    "compensation_ledgerline": "bench_ceiling_ledgerline",
    "compensation_manifestline": "bench_ceiling_line",
}
SCRATCH_FUNCTION_PREFIX = "bench_ceiling_"
_TABLES_RE = re.compile(r"\b(" + "|".join(SCRATCH) + r")\b")
_TRIGGER_ON_INSERT = 1 << 2  # pg_trigger.tgtype bit


def scratch_drop(conn: psycopg.Connection[Any]) -> None:
    for table in reversed(list(SCRATCH.values())):
        conn.execute(pgsql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(pgsql.Identifier(table)))
    for (signature,) in conn.execute(
        "SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE %s", [SCRATCH_FUNCTION_PREFIX + "%"]
    ).fetchall():
        conn.execute(f"DROP FUNCTION IF EXISTS {signature}")


def scratch_create(url: str) -> None:
    """Copies of the accounts, entries, ledger lines and outcome rows tables: the same columns, defaults,
    checks and indexes (``LIKE ... INCLUDING ALL``), the same foreign keys (to the copies where the original
    points at a copied table) and the same insert triggers (their functions copied, table names swapped),
    read from the database itself. The accounts are copied as they are now, before the measured runs, so the
    ceiling finds the accounts the worker found.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        scratch_drop(conn)
        for original, copy in SCRATCH.items():
            conn.execute(
                pgsql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                    pgsql.Identifier(copy), pgsql.Identifier(original)
                )
            )
        for original, copy in SCRATCH.items():
            for name, definition in conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass"
                " AND contype = 'f'",
                [original],
            ).fetchall():
                conn.execute(
                    pgsql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                        pgsql.Identifier(copy), pgsql.Identifier(name)
                    )
                    + pgsql.SQL(_TABLES_RE.sub(lambda m: SCRATCH[m.group(1)], definition))
                )
            triggers = conn.execute(
                "SELECT pg_get_triggerdef(t.oid), p.proname, pg_get_functiondef(p.oid) FROM pg_trigger t"
                " JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal"
                " AND t.tgtype & %s <> 0",
                [original, _TRIGGER_ON_INSERT],
            ).fetchall()
            for trigger, function, body in triggers:
                renamed = SCRATCH_FUNCTION_PREFIX + function

                def swap(text: str, function: str = function, renamed: str = renamed) -> str:
                    text = _TABLES_RE.sub(lambda m: SCRATCH[m.group(1)], text)
                    return re.sub(rf"\b{re.escape(function)}\(", renamed + "(", text)

                conn.execute(swap(body).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
                conn.execute(swap(trigger))
        conn.execute("INSERT INTO bench_ceiling_account SELECT * FROM compensation_account")
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('bench_ceiling_account', 'id'),"
            " (SELECT coalesce(max(id), 0) + 1 FROM bench_ceiling_account), false)"
        )
        conn.execute("ANALYZE bench_ceiling_account")


def _checksum_sql(number: str) -> str:
    """The EAN-13 check of a 13-digit number (bigint), true when the check digit is wrong (weights 1 and 3 from
    the right): integer arithmetic, about twice as fast as thirteen substrings of the text.
    """
    terms = " + ".join(f"{3 if k % 2 else 1} * mod({number} / {10**k}, 10)" for k in range(13))
    return f"mod({terms}, 10) <> 0"


def _instant_shapes() -> str:
    """Every shape of an ISO 8601 date or date and time (digits as 9) that the service reads, as an SQL array.

    PostgreSQL's regular expressions cost about 10 us a line here; comparing the shape is about 0.3 us.
    """
    times = [""] + [
        f"{sep}99:99{rest}" for sep in ("T", " ") for rest in ["", ":99", *(":99." + "9" * n for n in range(1, 7))]
    ]
    offsets = ["", "Z"] + [f"{sign}{o}" for sign in "+-" for o in ("99", "9999", "99:99")]
    return "ARRAY[" + ", ".join(f"'9999-99-99{t}{o}'" for t in times for o in offsets) + "]"


_UNITS = "('token', 'image', 'second', 'item', 'byte')"

# One step per statement, timed apart. Parameters: received (the manifest's received_at), manifest, lab,
# purposes, chunk. Covered: ISBN-13 lines as the bench writes them (other schemes, ISBN-10 and hyphenated
# forms are "unknown_scheme" / "invalid_format" here, where the service normalizes them); work-scoped and
# catalogue refusals; one verified owner per work (floor of the share, the rest held, which is the largest
# remainder for one owner); no licence regimes; no manifest period. The outcome rows, accounts, entries and
# lines are those the service writes, column for column, and the run compares the two.
CEILING_STEPS: tuple[tuple[str, str], ...] = (
    (
        "parse, validate, deduplicate",
        f"""
CREATE TEMP TABLE bench_lines ON COMMIT DROP AS
SELECT s.line_no, a.scheme, a.value, a.unit, c.reason_code, d.key, d.units, d.used_at, d.dedupe,
       (c.reason_code = '' AND row_number() OVER (PARTITION BY d.dedupe ORDER BY s.line_no) > 1) AS duplicate
FROM bench_stage s
CROSS JOIN LATERAL (
    SELECT left(btrim(s.scheme), 32) AS scheme, left(btrim(s.value), 2000) AS value,
           left(lower(btrim(s.unit)), 16) AS unit, btrim(s.units) AS units_text, btrim(s.used_at) AS used_at_text,
           replace(replace(btrim(s.value), '-', ''), ' ', '') AS digits
    OFFSET 0
) a
CROSS JOIN LATERAL (
    -- Cheaper than the regular expression for 97[89] and ten digits (about 2 us a line here).
    SELECT CASE WHEN length(a.digits) = 13 AND left(a.digits, 3) IN ('978', '979')
                     AND translate(a.digits, '0123456789', '') = '' THEN a.digits::bigint END AS number,
           CASE WHEN left(a.units_text, 1) IN ('+', '-') THEN substr(a.units_text, 2) ELSE a.units_text END
               AS unsigned
    OFFSET 0
) b
CROSS JOIN LATERAL (
    SELECT CASE WHEN b.unsigned NOT IN ('', '.') AND translate(b.unsigned, '0123456789', '') IN ('', '.')
                THEN a.units_text::numeric END AS units,
           CASE WHEN translate(a.used_at_text, '012345678', '999999999') = ANY({_instant_shapes()})
                THEN a.used_at_text::timestamptz END AS used_at
    OFFSET 0
) n
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN lower(a.scheme) <> 'isbn' THEN 'unknown_scheme'
        WHEN a.value = '' THEN 'empty'
        WHEN b.number IS NULL THEN 'invalid_format'
        WHEN {_checksum_sql("b.number")} THEN 'invalid_checksum'
        WHEN n.units IS NULL THEN 'invalid_units'
        WHEN n.units < 0 THEN 'negative_units'
        WHEN n.units = 0 OR n.units >= 1e24 OR scale(trim_scale(n.units)) > 6 THEN 'invalid_units'
        WHEN a.unit NOT IN {_UNITS} THEN 'unknown_unit'
        WHEN n.used_at IS NULL THEN 'invalid_used_at'
        WHEN n.used_at > %(received)s THEN 'used_at_in_future'
        ELSE '' END AS reason_code
    OFFSET 0
) c
CROSS JOIN LATERAL (
    SELECT k.*, CASE WHEN c.reason_code = '' THEN md5(k.key || '|' || trim_scale(k.units)::text || '|' || a.unit
                || '|' || round(extract(epoch FROM k.used_at), 6)::text)::uuid END AS dedupe
    FROM (
        SELECT CASE WHEN c.reason_code IN ('', 'invalid_units', 'negative_units', 'unknown_unit', 'invalid_used_at',
                                           'used_at_in_future') THEN 'isbn:' || a.digits ELSE '' END AS key,
               CASE WHEN c.reason_code IN ('', 'unknown_unit', 'invalid_used_at', 'used_at_in_future')
                    THEN n.units END AS units,
               CASE WHEN c.reason_code IN ('', 'used_at_in_future') THEN n.used_at END AS used_at
        OFFSET 0
    ) k
    OFFSET 0
) d
""",  # noqa: S608 (constant SQL: the check-digit terms and patterns are built here)
    ),
    (
        "match identifiers to works",
        """
CREATE TEMP TABLE bench_matched ON COMMIT DROP AS
SELECT l.line_no, l.used_at, i.work_id, w.kind AS work_kind, w.status AS work_status
FROM bench_lines l
JOIN registry_identifier i ON i.scheme = 'isbn' AND i.value = substr(l.key, 6)
JOIN registry_work w ON w.id = i.work_id
WHERE l.reason_code = '' AND NOT l.duplicate
""",
    ),
    (
        "refusals in force at use",
        """
CREATE TEMP TABLE bench_refused ON COMMIT DROP AS
SELECT DISTINCT ON (line_no) line_no, refusal_id FROM (
    SELECT m.line_no, r.id AS refusal_id, r.effective_from
    FROM bench_matched m
    JOIN optout_refusal r ON r.scope = 'work' AND r.work_id = m.work_id
    JOIN registry_ownershipclaim c ON c.work_id = m.work_id AND c.holder_id = r.holder_id
        AND c.status = 'verified' AND c.decided_at <= m.used_at
    WHERE r.purpose = ANY(%(purposes)s) AND r.effective_from <= m.used_at
      AND NOT EXISTS (SELECT 1 FROM optout_refusalevent e
                      WHERE e.refusal_id = r.id AND e.kind = 'withdrawn' AND e.effective_at <= m.used_at)
    UNION ALL
    SELECT m.line_no, r.id, r.effective_from
    FROM bench_matched m
    JOIN registry_ownershipclaim c ON c.work_id = m.work_id AND c.status = 'verified' AND c.decided_at <= m.used_at
    JOIN optout_refusal r ON r.scope = 'catalogue' AND r.holder_id = c.holder_id
    WHERE r.purpose = ANY(%(purposes)s) AND r.effective_from <= m.used_at
      AND NOT EXISTS (SELECT 1 FROM optout_refusalevent e
                      WHERE e.refusal_id = r.id AND e.kind = 'withdrawn' AND e.effective_at <= m.used_at)
) hits
ORDER BY line_no, effective_from, refusal_id
""",
    ),
    (
        "decide, price, split",
        """
CREATE TEMP TABLE bench_decided ON COMMIT DROP AS
WITH tariffs AS (
    SELECT id, kind, unit, rate_krw, effective_from,
           lead(effective_from) OVER (PARTITION BY kind, unit ORDER BY effective_from) AS until
    FROM compensation_tariff
)
SELECT l.line_no, l.scheme, l.value, l.key, l.units, l.unit, l.used_at, l.dedupe, o.outcome, l.reason_code,
       CASE WHEN o.outcome IN ('invalid', 'duplicate') THEN NULL ELSE m.work_id END AS work_id, k.kind,
       rf.refusal_id, t.id AS tariff_id, x.amount, p.paid, c.holder_id, c.id AS claim_id,
       CASE WHEN o.outcome = 'refused_at_use' THEN coalesce(x.amount, 0) ELSE 0 END AS violation,
       CASE WHEN o.outcome IN ('unmatched_held', 'disputed_held', 'share_unclaimed', 'matched')
            THEN x.amount - p.paid ELSE 0 END AS held,
       CASE WHEN o.outcome IN ('unmatched_held', 'disputed_held', 'share_unclaimed') THEN 10000
            WHEN o.outcome = 'matched' AND x.amount > p.paid THEN 10000 - c.share_bp ELSE 0 END AS open_bp,
       CASE o.outcome WHEN 'unmatched_held' THEN 'escrow_unmatched' WHEN 'disputed_held' THEN 'escrow_disputed'
            ELSE 'escrow_unclaimed' END AS held_kind,
       CASE WHEN o.outcome = 'unmatched_held' THEN l.key ELSE 'work:' || m.work_id END AS held_key,
       (l.line_no - 1) / %(chunk)s AS chunk
FROM bench_lines l
LEFT JOIN bench_matched m ON m.line_no = l.line_no
LEFT JOIN bench_refused rf ON rf.line_no = l.line_no
LEFT JOIN registry_ownershipclaim c ON c.work_id = m.work_id AND c.status = 'verified'
CROSS JOIN LATERAL (
    SELECT CASE WHEN l.reason_code = '' AND NOT l.duplicate THEN coalesce(m.work_kind, 'text') ELSE '' END AS kind
    OFFSET 0
) k
LEFT JOIN tariffs t ON t.kind = k.kind AND t.unit = l.unit AND t.effective_from <= l.used_at
    AND (t.until IS NULL OR l.used_at < t.until)
CROSS JOIN LATERAL (
    -- Rounded half-even, as the service does (PostgreSQL's round() takes halves away from zero).
    SELECT (CASE WHEN e.exact - floor(e.exact) = 0.5 AND mod(floor(e.exact), 2) = 0 THEN floor(e.exact)
                 ELSE round(e.exact) END)::bigint AS amount
    FROM (SELECT l.units * t.rate_krw * 1000000 AS exact OFFSET 0) e
    OFFSET 0
) x
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN l.reason_code <> '' THEN 'invalid'
        WHEN l.duplicate THEN 'duplicate'
        WHEN rf.refusal_id IS NOT NULL THEN 'refused_at_use'
        WHEN t.id IS NULL THEN 'unpriced'
        WHEN m.work_id IS NULL THEN 'unmatched_held'
        WHEN m.work_status = 'disputed' THEN 'disputed_held'
        WHEN c.id IS NULL THEN 'share_unclaimed'
        ELSE 'matched' END AS outcome
    OFFSET 0
) o
CROSS JOIN LATERAL (
    SELECT CASE WHEN o.outcome = 'matched' THEN x.amount * c.share_bp / 10000 ELSE 0 END AS paid
    OFFSET 0
) p
""",
    ),
    (
        "accounts (ON CONFLICT DO NOTHING)",
        """
INSERT INTO bench_ceiling_account (kind, party_id, escrow_key, created_at)
SELECT kind, party_id, escrow_key, now() FROM (
    SELECT 'lab_receivable' AS kind, %(lab)s::bigint AS party_id, '' AS escrow_key
    UNION SELECT 'holder_payable', holder_id, '' FROM bench_decided WHERE paid > 0
    UNION SELECT 'violations', %(lab)s::bigint, '' FROM bench_decided WHERE violation > 0
    UNION SELECT held_kind, NULL, held_key FROM bench_decided WHERE held > 0
) wanted
ORDER BY kind, party_id, escrow_key
ON CONFLICT DO NOTHING
""",
    ),
    (
        "ledger entries, one per chunk",
        """
CREATE TEMP TABLE bench_chunks ON COMMIT DROP AS
SELECT chunk, min(line_no) AS first, max(line_no) AS last, sum(amount) AS total,
       format('bench-ceiling:%%s:lines:%%s-%%s', %(manifest)s::bigint, min(line_no), max(line_no)) AS key,
       NULL::bigint AS entry_id
FROM bench_decided GROUP BY chunk;
INSERT INTO bench_ceiling_entry (idempotency_key, kind, effective_at, created_at, memo, source, reverses_id)
SELECT key, 'accrual', %(received)s, now(), format('lines %%s-%%s', first, last),
       jsonb_build_object('manifest', %(manifest)s::bigint, 'lines', format('lines %%s-%%s', first, last)), NULL
FROM bench_chunks WHERE total > 0 ORDER BY chunk;
UPDATE bench_chunks c SET entry_id = e.id FROM bench_ceiling_entry e WHERE e.idempotency_key = c.key
""",
    ),
    (
        "ledger lines, summed per chunk and account",
        """
INSERT INTO bench_ceiling_ledgerline (entry_id, account_id, amount_micro)
SELECT c.entry_id, x.account_id, sum(x.amount)
FROM (
    SELECT d.chunk, a.id AS account_id, d.amount FROM bench_decided d
    JOIN bench_ceiling_account a ON a.kind = 'lab_receivable' AND a.party_id = %(lab)s AND a.escrow_key = ''
    WHERE d.amount IS NOT NULL
    UNION ALL
    SELECT d.chunk, a.id, -d.paid FROM bench_decided d
    JOIN bench_ceiling_account a ON a.kind = 'holder_payable' AND a.party_id = d.holder_id AND a.escrow_key = ''
    WHERE d.paid > 0
    UNION ALL
    SELECT d.chunk, a.id, -d.held FROM bench_decided d
    JOIN bench_ceiling_account a ON a.kind = d.held_kind AND a.party_id IS NULL AND a.escrow_key = d.held_key
    WHERE d.held > 0
    UNION ALL
    SELECT d.chunk, a.id, -d.violation FROM bench_decided d
    JOIN bench_ceiling_account a ON a.kind = 'violations' AND a.party_id = %(lab)s AND a.escrow_key = ''
    WHERE d.violation > 0
) x
JOIN bench_chunks c ON c.chunk = x.chunk
GROUP BY c.entry_id, x.account_id
HAVING sum(x.amount) <> 0
ORDER BY c.entry_id, x.account_id
""",
    ),
    (
        "outcome rows",
        """
INSERT INTO bench_ceiling_line (manifest_id, line_no, scheme, value, key, units, unit, used_at, dedupe, outcome,
    reason_code, reason, work_id, kind, refusal_id, tariff_id, amount_micro, paid_micro, held_micro,
    violation_micro, released_micro, held_account_id, open_bp, hold_open, allocation, entry_id, processed_at)
SELECT %(manifest)s, d.line_no, d.scheme, d.value, d.key, d.units, d.unit, d.used_at,
       CASE WHEN d.outcome = 'invalid' THEN NULL ELSE d.dedupe END, d.outcome, d.reason_code,
       CASE WHEN d.reason_code <> '' THEN 'rejected: ' || d.reason_code ELSE '' END,
       d.work_id, d.kind, d.refusal_id, d.tariff_id, d.amount, d.paid, d.held, d.violation, 0, a.id, d.open_bp,
       d.held > 0,
       CASE WHEN d.amount IS NOT NULL AND d.paid > 0
            THEN jsonb_build_array(jsonb_build_array(d.holder_id, d.claim_id, d.paid, c.entry_id))
            ELSE '[]'::jsonb END,
       CASE WHEN d.amount IS NOT NULL THEN c.entry_id END, now()
FROM bench_decided d
JOIN bench_chunks c ON c.chunk = d.chunk
LEFT JOIN bench_ceiling_account a ON d.held > 0 AND a.kind = d.held_kind AND a.party_id IS NULL
    AND a.escrow_key = d.held_key
ORDER BY d.line_no
""",
    ),
)


CEILING_WORK_MEM = "256MB"


@dataclass
class CeilingRun:
    seconds: float
    steps: list[tuple[str, float]]


def ceiling_run(url: str, path: Path, *, manifest_pk: int, lab_pk: int, received: datetime, chunk: int) -> CeilingRun:
    """The same accrual as hand-written SQL in one transaction, into the scratch tables."""
    params = {
        "received": received, "manifest": manifest_pk, "lab": lab_pk, "chunk": chunk,
        "purposes": ["train-ai", "train-genai"],
    }  # fmt: skip
    steps: list[tuple[str, float]] = []
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        # A batch job's memory: hashes and sorts of a million rows stay in memory instead of spilling to disk.
        conn.execute(f"SET LOCAL work_mem = '{CEILING_WORK_MEM}'")
        # With that much memory the planner caches the per-line LATERAL steps (Memoize) though nearly every
        # line is new: hashing the cache keys cost more than the steps.
        conn.execute("SET LOCAL enable_memoize = off")
        conn.execute(
            "CREATE TEMP TABLE bench_stage (line_no bigint GENERATED ALWAYS AS IDENTITY, scheme text, value text,"
            " units text, unit text, used_at text) ON COMMIT DROP"
        )
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY bench_stage (scheme, value, units, unit, used_at) FROM STDIN (FORMAT csv, HEADER true)"
            ) as copy,
            gzip.open(path, "rb") as source,
        ):
            while data := source.read(1 << 20):
                copy.write(data)
        conn.execute("ANALYZE bench_stage")
        steps.append(("COPY the decompressed file into a staging table", time.perf_counter() - started))
        for label, statement in CEILING_STEPS:
            step_started = time.perf_counter()
            for part in statement.split(";\n"):
                conn.execute(part, params)
            for table in re.findall(r"CREATE TEMP TABLE (\w+)", statement):
                conn.execute(pgsql.SQL("ANALYZE {}").format(pgsql.Identifier(table)))
            steps.append((label, time.perf_counter() - step_started))
        step_started = time.perf_counter()
        conn.commit()
        steps.append(("COMMIT (deferred foreign keys and balance triggers)", time.perf_counter() - step_started))
        seconds = time.perf_counter() - started
    return CeilingRun(seconds=seconds, steps=steps)


# --- Checks -------------------------------------------------------------------------------------------


@dataclass
class Checked:
    label: str
    problems: list[str]
    counts: dict[str, int]
    amounts: dict[str, int]
    entries: int
    ledger_lines: int


def result_check(url: str, expected: Expected, *, manifest_pk: int, lab_pk: int, scratch: bool, label: str) -> Checked:
    """Every line's outcome against the generator's, and the ledger the lines point at."""
    tables = {k: (SCRATCH[k] if scratch else k) for k in SCRATCH}
    lines_t = pgsql.Identifier(tables["compensation_manifestline"])
    ledger_t, account_t = pgsql.Identifier(tables["compensation_ledgerline"]), tables["compensation_account"]
    problems: list[str] = []
    with psycopg.connect(url) as conn:
        seen = 0
        wrong: list[str] = []
        with conn.cursor(name="bench_outcomes") as cursor:
            cursor.itersize = 50_000
            cursor.execute(
                pgsql.SQL("SELECT line_no, outcome FROM {} WHERE manifest_id = %s ORDER BY line_no").format(lines_t),
                [manifest_pk],
            )
            for line_no, outcome in cursor:
                seen += 1
                want = OUTCOMES[expected.outcomes[line_no - 1]] if 0 < line_no <= expected.lines else "(no line)"
                if outcome != want:
                    wrong.append(f"line {line_no}: {outcome}, not {want}")
        if seen != expected.lines:
            problems.append(f"{seen:,} outcome rows for {expected.lines:,} lines")
        if wrong:
            problems.append(f"{len(wrong):,} lines with another outcome than meant, e.g. " + "; ".join(wrong[:5]))
        counts: dict[str, int] = {}
        amounts: dict[str, int] = {}
        for outcome, count, outcome_total in conn.execute(
            pgsql.SQL(
                "SELECT outcome, count(*), coalesce(sum(amount_micro), 0) FROM {} WHERE manifest_id = %s"
                " GROUP BY outcome"
            ).format(lines_t),
            [manifest_pk],
        ).fetchall():
            counts[outcome], amounts[outcome] = int(count), int(outcome_total)
        for outcome in OUTCOMES:
            if counts.get(outcome, 0) != expected.counts[outcome]:
                problems.append(f"{outcome}: {counts.get(outcome, 0):,} lines, not {expected.counts[outcome]:,}")
            if amounts.get(outcome, 0) != expected.amounts[outcome]:
                problems.append(f"{outcome}: {amounts.get(outcome, 0):,} micro-won, not {expected.amounts[outcome]:,}")
        reasons: dict[str, int] = dict(
            conn.execute(
                pgsql.SQL(
                    "SELECT reason_code, count(*) FROM {} WHERE manifest_id = %s AND outcome = 'invalid'"
                    " GROUP BY reason_code"
                ).format(lines_t),
                [manifest_pk],
            ).fetchall()
        )
        if reasons != dict(expected.reasons):
            problems.append(f"invalid lines' reasons {reasons}, not {dict(expected.reasons)}")
        # The ledger: every entry these lines point at balances; the lab owes what the lines cost, and each
        # kind of account was credited what the lines say went there.
        sums = conn.execute(
            pgsql.SQL(
                "SELECT coalesce(sum(amount_micro), 0), coalesce(sum(paid_micro), 0), coalesce(sum(held_micro), 0),"
                " coalesce(sum(violation_micro), 0), count(DISTINCT entry_id) FROM {} WHERE manifest_id = %s"
            ).format(lines_t),
            [manifest_pk],
        ).fetchone()
        assert sums is not None
        amount, paid, held, violation, entries = (int(x) for x in sums)
        entry_ids = pgsql.SQL(
            "SELECT DISTINCT entry_id FROM {} WHERE manifest_id = %s AND entry_id IS NOT NULL"
        ).format(lines_t)
        by_kind: dict[tuple[str, bool], int] = defaultdict(int)
        ledger_lines = 0
        for kind, is_lab, count, total in conn.execute(
            pgsql.SQL(
                "SELECT a.kind, a.party_id IS NOT DISTINCT FROM %s, count(*), sum(l.amount_micro) FROM {} l"
                " JOIN {} a ON a.id = l.account_id WHERE l.entry_id IN ({}) GROUP BY 1, 2"
            ).format(ledger_t, pgsql.Identifier(account_t), entry_ids),
            [lab_pk, manifest_pk],
        ).fetchall():
            by_kind[(kind, bool(is_lab))] += int(total)
            ledger_lines += int(count)
        unbalanced = conn.execute(
            pgsql.SQL(
                "SELECT count(*) FROM (SELECT entry_id FROM {} WHERE entry_id IN ({}) GROUP BY entry_id"
                " HAVING sum(amount_micro) <> 0) u"
            ).format(ledger_t, entry_ids),
            [manifest_pk],
        ).fetchone()
        if unbalanced and unbalanced[0]:
            problems.append(f"{unbalanced[0]} unbalanced ledger entries")
        receivable = by_kind.get(("lab_receivable", True), 0)
        escrow = sum(v for (k, _lab), v in by_kind.items() if k.startswith("escrow_"))
        balances: list[tuple[str, int, int]] = [
            ("the lab's receivable", receivable, amount),
            ("the lines' amounts", amount, expected.total_micro),
            ("holders' payables", -by_kind.get(("holder_payable", False), 0), paid),
            ("escrow", -escrow, held),
            ("the lab's violations", -by_kind.get(("violations", True), 0), violation),
        ]
        for what, got, meant in balances:
            if got != meant:
                problems.append(f"{what}: {got:,} micro-won, not {meant:,}")
        expected_accounts = {("lab_receivable", True), ("holder_payable", False), ("violations", True)}
        unexpected = [
            k for k in by_kind if k not in expected_accounts and not (k[0].startswith("escrow_") and not k[1])
        ]
        if unexpected:
            problems.append(f"ledger lines on unexpected accounts: {sorted(unexpected)}")
        return Checked(
            label=label, problems=problems, counts=counts, amounts=amounts, entries=entries, ledger_lines=ledger_lines
        )


COMPARED = (
    "scheme", "value", "key", "units", "unit", "used_at", "dedupe", "outcome", "reason_code", "work_id", "kind",
    "refusal_id", "tariff_id", "amount_micro", "paid_micro", "held_micro", "violation_micro", "released_micro",
    "open_bp", "hold_open",
)  # fmt: skip


# Columns that only represent (a deduplication hash): a difference there is reported, not a wrong answer.
REPRESENTATION = ("dedupe",)


def results_compare(url: str, manifest_pk: int) -> dict[str, int]:
    """The service's outcome rows against the ceiling's, column by column (held accounts by their key,
    allocations without their entry ids, which differ by construction)."""
    differs = [
        pgsql.SQL("count(*) FILTER (WHERE r.{0} IS DISTINCT FROM c.{0})").format(pgsql.Identifier(column))
        for column in COMPARED
    ]
    query = pgsql.SQL(
        "SELECT count(*) FILTER (WHERE r.line_no IS NULL OR c.line_no IS NULL), {},"
        " count(*) FILTER (WHERE ra.kind IS DISTINCT FROM ca.kind OR ra.escrow_key IS DISTINCT FROM ca.escrow_key),"
        " count(*) FILTER (WHERE jsonb_path_query_array(r.allocation, '$[*][0 to 2]')"
        "   IS DISTINCT FROM jsonb_path_query_array(c.allocation, '$[*][0 to 2]'))"
        " FROM (SELECT * FROM compensation_manifestline WHERE manifest_id = %(m)s) r"
        " FULL JOIN (SELECT * FROM bench_ceiling_line WHERE manifest_id = %(m)s) c ON c.line_no = r.line_no"
        " LEFT JOIN compensation_account ra ON ra.id = r.held_account_id"
        " LEFT JOIN bench_ceiling_account ca ON ca.id = c.held_account_id"
    ).format(pgsql.SQL(", ").join(differs))
    with psycopg.connect(url) as conn:
        row = conn.execute(query, {"m": manifest_pk}).fetchone()
    assert row is not None
    names = ["line missing on one side", *COMPARED, "held account", "allocation"]
    return {name: int(count) for name, count in zip(names, row, strict=True) if count}


def accounts_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM compensation_account").fetchone()
    return int(row[0]) if row else 0


# --- In-process: where the worker's time goes -----------------------------------------------------------

# Modules whose functions are timed per call (whatever they are named today: the code is being optimized),
# and the per-line parser from compensation.usage.manifests. Generators are left alone (a call only creates one).
TIMED_MODULES = ("compensation.usage.services", "compensation.usage.sql")
TIMED_EXTRA = (("compensation.usage.manifests", "line_parse"),)


@dataclass
class Profile:
    lines: int
    seconds: float
    functions: list[tuple[str, float, int]]  # name, inclusive seconds, calls
    postgres_seconds: float
    postgres_waits: int
    statements: list[tuple[str, float, int]]  # statement (start), seconds, executions
    text: str
    code: str = ""


def inprocess_manifest(state: Setup, path: Path, manifest_id: str) -> int:
    """Submit a manifest in this process, without queueing its task (processed here instead)."""
    from django.core.files import File

    from compensation.usage import services as usage
    from core.actors import Actor

    actor = Actor(party=state.lab, api_key=state.key)
    with path.open("rb") as handle, mock.patch.object(usage, "_enqueue"):
        manifest, _created = usage.usage_manifest_submit_file(
            actor=actor,
            fields={"manifest_id": manifest_id, "model": "bench-model", "purpose": "train-genai"},
            file=File(handle, name=path.name),
            filename=path.name,
        )
    return int(manifest.pk)


def _timing_patches(totals: dict[str, float], calls: Counter[str]) -> list[Any]:
    """Patches that time every function of ``TIMED_MODULES`` (inclusive time), wherever it is bound."""
    import importlib
    import inspect

    modules = []
    for name in (*TIMED_MODULES, *(module for module, _function in TIMED_EXTRA)):
        with contextlib.suppress(ImportError):
            modules.append(importlib.import_module(name))
    wanted: dict[int, tuple[str, Callable[..., Any]]] = {}
    for module in modules:
        short = module.__name__.rsplit(".", 1)[-1]
        for attr, value in vars(module).items():
            timed_here = module.__name__ in TIMED_MODULES or (module.__name__, attr) in TIMED_EXTRA
            if (
                timed_here
                and inspect.isfunction(value)
                and value.__module__ == module.__name__
                and not inspect.isgeneratorfunction(value)
            ):
                wanted[id(value)] = (f"{short}.{attr}", value)
    wrappers: dict[int, Callable[..., Any]] = {}
    for key, (label, original) in wanted.items():

        def timed(*args: Any, _label: str = label, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                totals[_label] += time.perf_counter() - started
                calls[_label] += 1

        wrappers[key] = timed
    patches = []
    for module in modules:
        for attr, value in list(vars(module).items()):
            if id(value) in wrappers and inspect.isfunction(value):
                patches.append(mock.patch.object(module, attr, wrappers[id(value)]))
    return patches


def inprocess_profile(state: Setup, path: Path, lines: int, run_id: str) -> Profile:
    """Process two manifests of ``path`` here: one with its functions timed, one under cProfile."""
    from compensation.usage import services as usage

    totals: dict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    postgres = [0.0, 0.0]
    original_wait = psycopg.Connection.wait

    def timed_wait(self: psycopg.Connection[Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_wait(self, *args, **kwargs)
        finally:
            postgres[0] += time.perf_counter() - started
            postgres[1] += 1

    statements: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    original_execute = psycopg.Cursor.execute
    original_copy = psycopg.Cursor.copy

    def statement_record(query: Any, seconds: float, prefix: str = "") -> None:
        text = query if isinstance(query, str) else type(query).__name__
        entry = statements[prefix + " ".join(text.split())[:90]]
        entry[0] += seconds
        entry[1] += 1

    def timed_execute(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_execute(self, query, *args, **kwargs)
        finally:
            statement_record(query, time.perf_counter() - started)

    @contextlib.contextmanager
    def timed_copy(self: psycopg.Cursor[Any], statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            with original_copy(self, statement, *args, **kwargs) as copy:
                yield copy
        finally:
            statement_record(statement, time.perf_counter() - started, "(block, with the rows made in Python) ")

    original_commit = psycopg.Connection.commit

    def timed_commit(self: psycopg.Connection[Any]) -> None:
        started = time.perf_counter()
        try:
            original_commit(self)
        finally:
            statement_record(
                "COMMIT (deferred foreign keys and constraint triggers run here)", time.perf_counter() - started
            )

    manifest_pk = inprocess_manifest(state, path, f"{run_id}-phases")
    with contextlib.ExitStack() as stack:
        for patch in _timing_patches(totals, calls):
            stack.enter_context(patch)
        # Every round trip of psycopg (Django's queries, raw cursors, COPY) waits here.
        stack.enter_context(mock.patch.object(psycopg.Connection, "wait", timed_wait))
        stack.enter_context(mock.patch.object(psycopg.Cursor, "execute", timed_execute))
        stack.enter_context(mock.patch.object(psycopg.Cursor, "copy", timed_copy))
        stack.enter_context(mock.patch.object(psycopg.Connection, "commit", timed_commit))
        started = time.perf_counter()
        usage.usage_manifest_process(manifest_id=manifest_pk)
        seconds = time.perf_counter() - started
    functions = sorted(((name, totals[name], calls[name]) for name in calls), key=lambda f: -f[1])

    manifest_pk = inprocess_manifest(state, path, f"{run_id}-cprofile")
    profiler = cProfile.Profile()
    profiler.enable()
    usage.usage_manifest_process(manifest_id=manifest_pk)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(30)
    return Profile(
        lines=lines, seconds=seconds, functions=functions, postgres_seconds=postgres[0],
        postgres_waits=int(postgres[1]), text=out.getvalue(),
        statements=sorted(((k, v[0], int(v[1])) for k, v in statements.items()), key=lambda s: -s[1]),
    )  # fmt: skip


# --- Report -------------------------------------------------------------------------------------------


def rate(lines: int, seconds: float) -> float:
    return lines / seconds if seconds > 0 else 0.0


def report(
    args: argparse.Namespace,
    expected: Expected,
    file_mb: float,
    api: ApiRun,
    ceiling: CeilingRun,
    checks: list[Checked],
    differences: dict[str, int],
    accounts: tuple[int, int],
    profile: Profile | None,
) -> bool:
    ours = rate(expected.lines, api.end_to_end_s)
    best = rate(expected.lines, ceiling.seconds)
    ratio = ours / best if best else 0.0
    # The worker's peak and the most its parsing process had of its own (a forked child shares the worker's pages
    # until either writes them; adding both resident sets would count those twice).
    peak_mb = (api.worker_peak_kb + api.parser_private_kb) / 1024
    speed_ok = ours >= GOAL_LINES_PER_S
    memory_ok = 0 < peak_mb < GOAL_PEAK_RSS_MB
    correct = not (set(differences) - set(REPRESENTATION)) and all(not c.problems for c in checks)
    mix = ", ".join(f"{o} {expected.counts[o] / expected.lines:.1%}" for o in OUTCOMES)
    print()
    print(f"works {args.works:,}; manifest {expected.lines:,} lines ({mix}), {file_mb:.1f} MB gzip CSV;")
    from django.conf import settings

    print(f"chunks of {settings.USAGE_CHUNK_LINES:,} lines (USAGE_CHUNK_LINES); "
          f"ledger accounts before/after the API run: {accounts[0]:,}/{accounts[1]:,}")  # fmt: skip
    print(f"code measured by the worker: {api.code}")
    print()
    print(f"{'':44}{'API + worker':>14}{'set-based SQL':>15}{'ratio':>9}   goal")
    print(
        f"{'lines/s, end to end':44}{ours:>14,.0f}{best:>15,.0f}{ratio:>9.1%}   "
        f">= {GOAL_LINES_PER_S:,}  {'PASS' if speed_ok else 'FAIL'}"
    )
    print(f"{'seconds, end to end':44}{api.end_to_end_s:>14.1f}{ceiling.seconds:>15.1f}")
    print(f"{'  upload (POST until 202: stream, inspect)':44}{api.upload_s:>14.1f}")
    print(f"{'  queued (202 until the task starts)':44}{api.queued_s:>14.1f}")
    print(f"{'  processing (task start to processed)':44}{api.processing_s:>14.1f}")
    print(f"{'lines/s, processing only':44}{rate(expected.lines, api.processing_s):>14,.0f}")
    print(
        f"{'peak worker memory (the two below), MB':44}{peak_mb:>14.0f}{'':>15}{'':>9}   "
        f"< {GOAL_PEAK_RSS_MB}  {'PASS' if memory_ok else 'FAIL'}"
    )
    print(f"{'  the Celery pool process (VmHWM), MB':44}{api.worker_peak_kb / 1024:>14.0f}")
    print(f"{'  its parsing process, its own memory, MB':44}{api.parser_private_kb / 1024:>14.0f}")
    print(f"{'  its parsing process (VmHWM, with shared), MB':44}{api.parser_peak_kb / 1024:>14.0f}")
    print(f"{'  worker resident before the task, MB':44}{api.worker_baseline_kb / 1024:>14.0f}")
    print(f"{'  peak web worker memory (VmHWM), MB':44}{api.web_peak_kb / 1024:>14.0f}")
    polling = api.polls * api.poll_ms / 1000 / api.end_to_end_s if api.end_to_end_s else 0.0
    print(f"{'polls of GET /usage-manifests/{id}, mean ms':44}{api.poll_ms:>14.1f}   "
          f"({api.polls} polls, one running {polling:.0%} of the time)")  # fmt: skip
    print()
    print(f"set-based SQL, by step (one transaction, work_mem {CEILING_WORK_MEM}, no Memoize):")
    for label, seconds in ceiling.steps:
        print(f"  {label:<56}{seconds:>8.2f} s")
    print()
    for check in checks:
        status = "ok" if not check.problems else "WRONG"
        print(f"checked {check.label}: {status}; {check.entries:,} ledger entries, {check.ledger_lines:,} ledger lines")
        for problem in check.problems:
            print(f"  {problem}")
    print(f"API and SQL outcome rows, column by column: {'identical' if not differences else 'DIFFERENT'}")
    for column, count in differences.items():
        note = " (a representation: reported, not a wrong answer)" if column in REPRESENTATION else ""
        print(f"  {column}: {count:,} lines differ{note}")
    if profile is not None:
        print()
        print(
            f"in-process usage_manifest_process of {profile.lines:,} lines: {profile.seconds:.1f} s "
            f"({rate(profile.lines, profile.seconds):,.0f} lines/s), the chunk size as above. Inclusive time per "
            "function (nested calls count in each caller, calls in other threads overlap the caller's; per-call "
            "timing adds about 0.3 us a call; cProfile below sees the main thread only; a manifest of more than "
            "a chunk is read and parsed in a child process, which neither sees, so the time not spent waiting on "
            "PostgreSQL is mostly the wait for the first chunk):"
        )
        if profile.code != api.code:
            print(f"  (the code changed since the worker started: now {profile.code})")
        print(f"  {'waiting on PostgreSQL (psycopg: queries, COPY, commits)':<58}{profile.postgres_seconds:>8.2f} s "
              f"{profile.postgres_seconds / profile.seconds:>6.1%} {profile.postgres_waits:>9,} waits")  # fmt: skip
        for name, seconds, count in profile.functions:
            share = seconds / profile.seconds if profile.seconds else 0.0
            if share >= 0.005:
                print(f"  {name:<58}{seconds:>8.2f} s {share:>6.1%} {count:>9,} calls")
        print("  the statements that took longest (execute, round trip included):")
        for statement, seconds, count in profile.statements[:15]:
            share = seconds / profile.seconds if profile.seconds else 0.0
            print(f"    {seconds:>7.2f} s {share:>6.1%} {count:>6,}x  {statement}")
        print()
        print(profile.text)
    print()
    print(f"RESULT: {'PASS' if speed_ok and memory_ok and correct else 'FAIL'}")
    return speed_ok and memory_ok and correct


# --- Main ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--works", type=int, default=1_000_000, help="works to load (default 1,000,000)")
    parser.add_argument("--lines", type=int, default=1_000_000, help="manifest lines (default 1,000,000)")
    parser.add_argument("--chunk", type=int, help="USAGE_CHUNK_LINES for the worker (default: the settings')")
    parser.add_argument("--days", type=int, default=7, help="the manifest's uses span the last DAYS (default 7)")
    parser.add_argument(
        "--database", default=os.environ.get("DATABASE_URL"), help="PostgreSQL URL (default: DATABASE_URL)"
    )
    parser.add_argument("--redis-url", help="REDIS_URL for the broker (default: the environment's)")
    parser.add_argument("--reload", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the manifest (default 1)")
    parser.add_argument(
        "--poll", type=float, default=5.0, help="seconds between progress polls (default 5; each one sums the lines)"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds processing")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--profile", action="store_true", help="also time and cProfile processing in-process")
    parser.add_argument("--profile-lines", type=int, default=100_000, help="lines of the in-process manifests")
    parser.add_argument("--keep", action="store_true", help="keep the manifest file and the scratch tables")
    args = parser.parse_args(argv)
    if args.works < 100 or args.works >= MAX_NUMBER or args.lines < 1 or (args.chunk is not None and args.chunk < 1):
        parser.error(f"--works from 100 to {MAX_NUMBER - 1:,}; --lines and --chunk at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database:
        os.environ["DATABASE_URL"] = args.database
    if args.chunk:
        os.environ["USAGE_CHUNK_LINES"] = str(args.chunk)
    bench_environment(args)
    url = os.environ["DATABASE_URL"]
    database_prepare(url, reload=args.reload)
    django_setup()
    from registry.services import apikey_revoke

    drift = schema_drift(url)
    if drift:
        sys.exit(
            "The bench database's schema differs from the models (a migration edited after it was applied?); "
            "run again with --reload:\n  " + "\n  ".join(drift[:20])
        )

    state = setup(args)
    unfinished_warn(state.lab)
    run_id = f"bench-accrual-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    work_dir = Path(tempfile.mkdtemp(prefix="registry-accrual-"))
    path = work_dir / "usage.csv.gz"
    started = time.perf_counter()
    expected = manifest_write(
        path, lines=args.lines, works=args.works, used_from=state.used_from, used_to=state.used_to,
        rate=state.rate, seed=args.seed,
    )  # fmt: skip
    file_mb = path.stat().st_size / 1e6
    print(f"manifest: {args.lines:,} lines, {file_mb:.1f} MB, written in {time.perf_counter() - started:.1f} s: {path}")
    from core.actors import Actor

    try:
        scratch_create(url)
        accounts_before = accounts_count(url)
        purged = queue_purge()
        if purged:
            print(f"broker: purged {purged} waiting task(s) (an earlier run's, or the re-pricing a new tariff queued)")
        busy = cpu_busy()
        print(f"CPU busy before measuring: {busy:.0%} of {os.cpu_count()} CPUs")
        if busy > 0.2:
            print("  warning: the machine is busy with other work; the figures will be noisy (run again when idle)")
        checkpoint(url)
        worker_log = Path(os.environ["DATA_DIR"]) / "worker.log"
        code = code_fingerprint()
        with (
            server(None, args.workers, ["--timeout", "1800"]) as base_url,
            celery_worker(worker_log) as worker,
        ):
            print(f"measuring {base_url}: POST /api/v1/usage-manifests, then polling every {args.poll:g} s")
            api = api_run(
                base_url, state, path, f"{run_id}-api", worker, worker_log, poll=args.poll, timeout=args.timeout
            )
            api.code = code
        accounts_after = accounts_count(url)
        checkpoint(url)
        print("measuring the set-based SQL")
        from django.conf import settings

        from compensation.models import UsageManifest

        received = UsageManifest.objects.get(pk=api.manifest_pk).created_at
        ceiling = ceiling_run(
            url, path, manifest_pk=api.manifest_pk, lab_pk=state.lab.pk, received=received,
            chunk=settings.USAGE_CHUNK_LINES,
        )  # fmt: skip
        print("checking")
        checks = [
            result_check(url, expected, manifest_pk=api.manifest_pk, lab_pk=state.lab.pk, scratch=False,
                         label="API + worker"),
            result_check(url, expected, manifest_pk=api.manifest_pk, lab_pk=state.lab.pk, scratch=True,
                         label="set-based SQL"),
        ]  # fmt: skip
        answer_problems = api_answer_check(api.answer, expected)
        checks[0].problems.extend(answer_problems)
        differences = results_compare(url, api.manifest_pk)
        profile = None
        if args.profile:
            profile_path = work_dir / "profile.csv.gz"
            profile_expected = manifest_write(
                profile_path, lines=args.profile_lines, works=args.works, used_from=state.used_from,
                used_to=state.used_to, rate=state.rate, seed=args.seed + 1,
            )  # fmt: skip
            code_profile = code_fingerprint()
            print(f"profiling in-process: 2 manifests of {profile_expected.lines:,} lines")
            profile = inprocess_profile(state, profile_path, profile_expected.lines, run_id)
            profile.code = code_profile
    except Mismatch as exc:
        print(f"WRONG ANSWER: {exc}", file=sys.stderr)
        return 2
    finally:
        with contextlib.suppress(Exception):
            apikey_revoke(actor=Actor.system(), api_key=state.key)
        if args.keep:
            print(f"kept: {work_dir} and the tables {', '.join(SCRATCH.values())}")
        else:
            for leftover in work_dir.iterdir():
                leftover.unlink()
            work_dir.rmdir()
            with psycopg.connect(url, autocommit=True) as conn:
                scratch_drop(conn)
    ok = report(args, expected, file_mb, api, ceiling, checks, differences, (accounts_before, accounts_after), profile)
    return 0 if ok else 1


def api_answer_check(answer: dict[str, Any], expected: Expected) -> list[str]:
    """What the lab reads back: totals, progress, and the summary per outcome."""
    problems = []
    if answer.get("lines_total") != expected.lines or answer.get("lines_done") != expected.lines:
        problems.append(f"API: lines_total {answer.get('lines_total')}, lines_done {answer.get('lines_done')}")
    outcomes = (answer.get("summary") or {}).get("outcomes") or {}
    for outcome in OUTCOMES:
        got = (outcomes.get(outcome) or {}).get("lines", 0)
        if got != expected.counts[outcome]:
            problems.append(f"API summary: {outcome} {got:,} lines, not {expected.counts[outcome]:,}")
    total = ((answer.get("summary") or {}).get("totals") or {}).get("amount_micro")
    if total != expected.total_micro:
        problems.append(f"API summary: amount {total} micro-won, not {expected.total_micro:,}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
