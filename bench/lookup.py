"""Lookup benchmark: the registry's lookup API over HTTP against the same lookups as raw SQL.

Run from the project root with PostgreSQL (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench .venv/bin/python bench/lookup.py

It creates the database if missing and migrates it, loads ``--works`` works (one ISBN each, a verified 100%
claim of one bench holder, a work-scoped ``train-ai`` refusal on every tenth) with set-based SQL, starts
gunicorn (2 sync workers, production settings) unless ``--base-url`` is given, and measures:

- batch lookups of ``--batch`` items (``POST /api/v1/lookup`` with a lab's API key): items per second;
- single lookups (anonymous ``GET /api/v1/lookup``): p50/p99/max latency;
- the same batches and singles as one raw SQL query each through psycopg: items per second, latency;

then prints HTTP against SQL with PASS/FAIL against the goals (batch >= 50% of the raw-SQL rate, single p99
< 20 ms) and a breakdown of where a batch's time goes in-process. Every answer is checked against the
known truth (refused / permitted / unregistered), so a fast wrong answer fails the run.

With ``--wrk``, instead: keyed single lookups (``GET /api/v1/lookup`` with the lab's API key) under wrk at
``--wrk-connections`` (8) against ``GET /bench/plain``, a JSON view that reads nothing, on the same gunicorn
(``bench/server_settings.py``: the shipped settings plus that URL), once with the lookup throttle as it was
(DRF's ``SimpleRateThrottle``) and once with the fixed-window counter that ships, ``--wrk-repeat`` times each;
on the latter server also batch lookups (the ``--batch`` workload's batches, POSTed by a wrk Lua script at
``--wrk-batch-connections``), against issue 14's goal of 100,000 items/s;
then the throttle alone per request, in this process. PASS/FAIL against issue 14's goal (>= 40% of the plain
view's rate, p99 < 20 ms).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import cProfile
import http.client
import importlib
import io
import json
import math
import os
import pstats
import queue
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode, urlsplit

import httpx
import psycopg
from psycopg import sql as pgsql

if TYPE_CHECKING:
    from registry.models import ApiKey, Party

T = TypeVar("T")
R = TypeVar("R")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.shipped import compose_command  # noqa: E402  (the project root is on the path only from here)

HOLDER_NAME = "Bench holder (bench/lookup.py)"
LAB_NAME = "Bench lab (bench/lookup.py)"
# The largest work number an ISBN 979-11-nnnnnnn-c can carry; numbers above --works are unregistered.
MAX_NUMBER = 9_999_999
GOAL_BATCH_RATIO = 0.50
# Issue 14: batch lookups of 1,000 items under wrk at >= 100,000 items/s (gunicorn, 2 workers, 1,000,000 works).
GOAL_WRK_BATCH_ITEMS_PER_S = 100_000
GOAL_SINGLE_P99_MS = 20.0

REFUSED = "refused"
PERMITTED = "permitted"
UNREGISTERED = "unregistered"


# --- ISBNs -------------------------------------------------------------------------------------------


def isbn_for(number: int) -> str:
    """The ISBN-13 979-11-nnnnnnn-c for work number ``number`` (1 <= number <= 9,999,999)."""
    body = f"97911{number:07d}"
    total = sum(int(digit) * (3 if i % 2 else 1) for i, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


# The same in SQL for generate_series' ``n``: 9,7,9,1,1 weigh 1,3,1,3,1 (43); the seven digits of n 3,1,3,1,3,1,3.
ISBN_SQL = (
    "'97911' || lpad(n::text, 7, '0') || mod(10 - mod(43 + 3 * mod(n / 1000000, 10) + mod(n / 100000, 10)"
    " + 3 * mod(n / 10000, 10) + mod(n / 1000, 10) + 3 * mod(n / 100, 10) + mod(n / 10, 10) + 3 * mod(n, 10), 10),"
    " 10)::text"
)


def expected_status(number: int, works: int) -> str:
    if number > works:
        return UNREGISTERED
    return REFUSED if number % 10 == 0 else PERMITTED


# --- Set-up: environment, database --------------------------------------------------------------------


def bench_environment(args: argparse.Namespace) -> None:
    """Production-like settings for this process and the server it starts (values already set are kept)."""
    url = os.environ.get("DATABASE_URL", "")
    script = f"bench/{Path(sys.argv[0]).name}"
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            f"{script} needs PostgreSQL: set DATABASE_URL to a dedicated database, e.g.\n"
            f"  DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench .venv/bin/python {script}\n"
            f"(got {'SQLite' if url.startswith('sqlite') or not url else repr(url)}; "
            "SQLite is the development default and is not what production serves lookups from)."
        )
    defaults = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_COOKIES": "0",
        "LOOKUP_RATE": "1000000/min",
        "LOOKUP_RATE_ANONYMOUS": "1000000/min",
        "LOG_LEVEL": "WARNING",
    }
    if not os.environ.get("DATA_DIR"):
        # Throwaway local data (gunicorn's log; the file cache and broker folders when there is no Redis).
        os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="registry-bench-")
        atexit.register(shutil.rmtree, os.environ["DATA_DIR"], ignore_errors=True)
    if not os.environ.get("RECEIPT_SIGNING_KEY") and not os.environ.get("RECEIPT_SIGNING_KEY_FILE"):
        defaults["RECEIPT_SIGNING_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    if not os.environ.get("PAYOUT_DATA_KEYS"):
        defaults["PAYOUT_DATA_KEYS"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def database_prepare(url: str, *, reload: bool) -> None:
    """Create the bench database if it is missing; with ``reload``, drop and recreate it first."""
    name = database_name(url)
    if reload and "bench" not in name:
        sys.exit(f"--reload drops the database {name!r}; refusing because its name does not contain 'bench'.")
    with psycopg.connect(url, dbname="postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        quoted = pgsql.Identifier(name)
        if exists and reload:
            print(f"--reload: dropping database {name}")
            admin.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(quoted))
            exists = False
        if not exists:
            print(f"creating database {name}")
            admin.execute(pgsql.SQL("CREATE DATABASE {}").format(quoted))


def django_setup() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


# --- Loading ------------------------------------------------------------------------------------------


def parties_ensure() -> tuple[Party, Party]:
    from core.actors import Actor
    from registry.models import Party, PartyKind
    from registry.services import party_create

    parties = []
    for name, kind in ((HOLDER_NAME, PartyKind.HOLDER), (LAB_NAME, PartyKind.LAB)):
        party = Party.objects.filter(name=name).first()
        if party is None:
            party = party_create(actor=Actor.system(), kind=kind, name=name)
        parties.append(party)
    return parties[0], parties[1]


def works_load(*, holder: Party, works: int) -> None:
    """Works, identifiers, verified claims, refusals and their events, each in one INSERT ... SELECT."""
    from django.db import connection, transaction

    from registry.models import Work

    existing = Work.objects.filter(registered_by=holder).count()
    if existing == works:
        print(f"load: skipped, the bench holder already has {works:,} works (--reload to load afresh)")
        return
    if existing:
        sys.exit(f"The bench database holds {existing:,} bench works, not {works:,}: run again with --reload.")

    loaded_at = datetime.now().astimezone() - timedelta(days=30)
    refused_from = loaded_at + timedelta(days=1)
    params: dict[str, Any] = {"holder": holder.pk, "works": works, "at": loaded_at, "refused_from": refused_from}
    steps = [
        (
            "numbering",
            "CREATE TEMP TABLE bench_n ON COMMIT DROP AS SELECT n, nextval(pg_get_serial_sequence("
            "'registry_work', 'id')) AS work_id FROM generate_series(1, %(works)s) AS n",
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
            "INSERT INTO registry_identifier (work_id, scheme, value, created_at)"  # noqa: S608 (constant SQL)
            f" SELECT work_id, 'isbn', {ISBN_SQL}, %(at)s FROM bench_n ORDER BY n",
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
        # The status projection the services would have written: each key permitted (owners paid) from its
        # registration, and a refused work refused from its refusal on, for both purposes (train-ai refuses
        # both). load_check compares it with the event path on a sample; manage.py status_check checks all of it.
        (
            "status segments",
            "INSERT INTO optout_statussegment (subject_type, subject, host, purpose, valid_from, valid_to, status,"
            " compensation, regime, pending_refusal, work_id, refusal_id, work_title, work_kind)"
            " SELECT 'key', 'isbn:' || i.value, '', p.purpose, %(at)s,"
            " CASE WHEN r.id IS NULL THEN NULL ELSE r.effective_from END, 'permitted', 'owners', 'use_first', false,"
            " i.work_id, NULL, w.title, w.kind"
            " FROM bench_n b JOIN registry_identifier i ON i.work_id = b.work_id"
            " JOIN registry_work w ON w.id = b.work_id"
            " LEFT JOIN optout_refusal r ON r.work_id = b.work_id AND r.holder_id = %(holder)s"
            " CROSS JOIN (VALUES ('train-ai'), ('train-genai')) AS p(purpose) ORDER BY b.n",
        ),
        (
            "refused segments",
            "INSERT INTO optout_statussegment (subject_type, subject, host, purpose, valid_from, valid_to, status,"
            " compensation, regime, pending_refusal, work_id, refusal_id, work_title, work_kind)"
            " SELECT 'key', 'isbn:' || i.value, '', p.purpose, r.effective_from, NULL, 'refused', 'none',"
            " 'use_first', false, i.work_id, r.id, w.title, w.kind"
            " FROM optout_refusal r JOIN registry_identifier i ON i.work_id = r.work_id"
            " JOIN registry_work w ON w.id = r.work_id"
            " CROSS JOIN (VALUES ('train-ai'), ('train-genai')) AS p(purpose)"
            " WHERE r.holder_id = %(holder)s ORDER BY r.id",
        ),
    ]
    print(f"load: {works:,} works, {works // 10:,} refusals")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for label, statement in steps:
            step_started = time.perf_counter()
            cursor.execute(statement, params)
            print(f"  {label:<15} {cursor.rowcount:>10,} rows  {time.perf_counter() - step_started:7.1f} s")
    step_started = time.perf_counter()
    # VACUUM sets the visibility map and hint bits, as autovacuum would on a live registry; ANALYZE the plans.
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        raw.execute(
            "VACUUM (ANALYZE) registry_work, registry_identifier, registry_ownershipclaim, optout_refusal,"
            " optout_refusalevent, optout_statussegment"
        )
        # Write the loaded pages out now rather than while measuring (needs superuser or pg_checkpoint).
        with contextlib.suppress(psycopg.Error):
            raw.execute("CHECKPOINT")
    print(f"  {'vacuum, analyze, checkpoint':<27} {'':>10}        {time.perf_counter() - step_started:7.1f} s")
    print(f"load: {time.perf_counter() - started:.1f} s in all")


def load_check(works: int) -> None:
    """The SQL-generated ISBNs are the ones this script asks for, and valid to the registry's own validator."""
    from registry.identifiers import identifier_normalize
    from registry.models import Identifier

    for number in sorted({1, 2, 9, 10, works // 2, works - 1, works} - {0}):
        value = isbn_for(number)
        key = identifier_normalize(scheme="isbn", value=value)
        if key.value != value or not Identifier.objects.filter(scheme="isbn", value=value).exists():
            sys.exit(f"load check failed: ISBN {value} for work number {number} is not registered as expected.")
    # The projection loaded set-based answers as the event path does (lookups without as_of read it).
    from django.utils import timezone

    from optout.selectors import lookup_batch
    from optout.status.selectors import lookup_batch_current

    picks = random.Random(7).sample(range(1, works + 1), min(works, 2000))  # noqa: S311 (a reproducible sample)
    sample = [{"scheme": "isbn", "value": isbn_for(n)} for n in picks]
    now = timezone.now()
    for purpose in ("train-ai", "train-genai"):
        projected = lookup_batch_current(items=sample, purpose=purpose, at=now).results
        if projected != lookup_batch(items=sample, purpose=purpose, as_of=now).results:
            sys.exit(f"load check failed: the status projection does not answer {purpose} as the event path.")


def apikey_make(lab: Party) -> tuple[ApiKey, str]:
    from core.actors import Actor
    from registry.models import ApiScope
    from registry.services import apikey_create

    return apikey_create(actor=Actor.system(), scopes=[ApiScope.LOOKUP], party=lab, name="bench/lookup.py")


def apikey_drop(key: ApiKey) -> None:
    from core.actors import Actor
    from registry.services import apikey_revoke

    with contextlib.suppress(Exception):
        apikey_revoke(actor=Actor.system(), api_key=key)


# --- The server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(
    base_url: str | None, workers: int, extra_args: Sequence[str] = (), environment: dict[str, str] | None = None
) -> Iterator[str]:
    """The base URL of the service: ``base_url`` as given, or gunicorn started here and stopped on exit.

    ``extra_args`` go to gunicorn as they are (e.g. ``--timeout 900`` for a long upload); ``environment`` is
    added to this process's for gunicorn only.
    """
    if base_url:
        yield base_url.rstrip("/")
        return
    port = free_port()
    log_path = Path(os.environ["DATA_DIR"]) / "gunicorn.log"
    # docker-compose's web command on a loopback port; gunicorn reads its worker count from WEB_CONCURRENCY.
    command = [*compose_command("web", bind=f"127.0.0.1:{port}"), "--error-logfile", str(log_path), *extra_args]
    print("server: " + " ".join(Path(command[0]).name if index == 0 else arg for index, arg in enumerate(command)))
    env = {**os.environ, **(environment or {}), "WEB_CONCURRENCY": str(workers)}
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /healthz in 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        # The whole process group this script started: the gunicorn master and its workers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- Workload -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    works: int
    purpose: str
    batches: list[list[int]]
    singles: list[int]


def workload_make(*, works: int, rounds: int, batch: int, singles: int, purpose: str, seed: int) -> Workload:
    """Batches: 90% registered works (a tenth of them refused), 10% valid unregistered ISBNs; singles registered."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
    if works >= MAX_NUMBER:
        sys.exit(f"--works must stay below {MAX_NUMBER:,}: the numbers above it are the unregistered ISBNs.")

    def item() -> int:
        return rng.randint(1, works) if rng.random() < 0.9 else rng.randint(works + 1, MAX_NUMBER)

    return Workload(
        works=works,
        purpose=purpose,
        batches=[[item() for _ in range(batch)] for _ in range(rounds)],
        singles=[rng.randint(1, works) for _ in range(singles)],
    )


def items_json(numbers: Sequence[int], purpose: str) -> bytes:
    return json.dumps(
        {"purpose": purpose, "items": [{"scheme": "isbn", "value": isbn_for(n)} for n in numbers]}
    ).encode()


# --- Measuring ----------------------------------------------------------------------------------------


@dataclass
class Figures:
    items: int
    seconds: float  # wall-clock time of the measured requests
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies."""
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        return values[max(1, min(len(values), math.ceil(p / 100 * len(values)))) - 1]


class Mismatch(Exception):
    pass


def timed_run(jobs: Sequence[T], run: Callable[[T], R], *, warmup: int, clients: int) -> tuple[list[R], Figures]:
    """Run ``warmup`` jobs unmeasured, then every job by ``clients`` parallel callers; results in job order.

    Answers are checked afterwards, outside the measured time. Items are counted by the caller.
    """
    for job in jobs[:warmup]:
        run(job)
    results: list[Any] = [None] * len(jobs)
    latencies = [0.0] * len(jobs)

    def one(index: int) -> None:
        started = time.perf_counter()
        results[index] = run(jobs[index])
        latencies[index] = (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    if clients == 1:
        for index in range(len(jobs)):
            one(index)
    else:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, range(len(jobs))))
    return results, Figures(items=0, seconds=time.perf_counter() - started, latencies_ms=latencies)


def check_results(numbers: Sequence[int], results: Sequence[dict[str, Any]], works: int, where: str) -> None:
    if len(results) != len(numbers):
        raise Mismatch(f"{where}: {len(results)} results for {len(numbers)} items")
    for index, (number, result) in enumerate(zip(numbers, results, strict=True)):
        want = expected_status(number, works)
        if result.get("index", index) != index or result.get("status") != want:
            raise Mismatch(f"{where}: item {index} (ISBN {isbn_for(number)}) is {result.get('status')!r}, not {want!r}")
        if want == PERMITTED and (result.get("may_train") is not True or result.get("compensation") != "owners"):
            raise Mismatch(f"{where}: item {index} permitted without may_train/compensation to owners: {result}")
        if want == REFUSED and (result.get("may_train") is not False or not result.get("refusal")):
            raise Mismatch(f"{where}: item {index} refused without the deciding refusal: {result}")


def raw_request(method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    """One request with the standard library's client, which reads bodies in C.

    httpx reads a 300 KB answer in pure Python (about 20 ms per 1,000-item batch here): that is the
    client's cost, not the service's, so the measured requests go through ``http.client``.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        connection.request(
            method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {}
        )
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise Mismatch(f"{method} {parts.path}: HTTP {response.status} {content[:500]!r}")
    return content


def http_ok(response: httpx.Response, where: str) -> bytes:
    if response.status_code != 200:
        raise Mismatch(f"{where}: HTTP {response.status_code} {response.text[:500]}")
    return response.content


def http_batches(client: httpx.Client, url: str, key: str, load: Workload, *, warmup: int, clients: int) -> Figures:
    headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
    bodies = [items_json(numbers, load.purpose) for numbers in load.batches]

    def run(body: bytes) -> bytes:
        return raw_request("POST", f"{url}/api/v1/lookup", body=body, headers=headers)

    contents, figures = timed_run(bodies, run, warmup=warmup, clients=clients)
    for index, (numbers, content) in enumerate(zip(load.batches, contents, strict=True)):
        answer = json.loads(content)
        check_results(numbers, answer["results"], load.works, "HTTP batch")
        if index == 0:
            receipt_check(answer, client, url)
    figures.items = sum(len(numbers) for numbers in load.batches)
    return figures


def http_singles(client: httpx.Client, url: str, load: Workload, *, warmup: int) -> Figures:
    def run(number: int) -> bytes:
        params = {"scheme": "isbn", "value": isbn_for(number), "purpose": load.purpose}
        return raw_request("GET", f"{url}/api/v1/lookup?{urlencode(params)}")

    contents, figures = timed_run(load.singles, run, warmup=warmup, clients=1)
    for number, content in zip(load.singles, contents, strict=True):
        check_results([number], json.loads(content)["results"], load.works, "HTTP single")
    figures.items = len(load.singles)
    return figures


def http_floor(client: httpx.Client, url: str, count: int) -> Figures:
    """What any request costs here: a new connection (gunicorn's sync workers close each), Django, one query."""
    _contents, figures = timed_run(range(count), lambda _: raw_request("GET", f"{url}/healthz"), warmup=50, clients=1)
    figures.items = count
    return figures


_receipt_checked: list[str] = []


def receipt_check(answer: dict[str, Any], client: httpx.Client, url: str) -> None:
    """The first batch's receipt verifies: against the service's published keys, else this process's own key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from core.jcs import canonical_json
    from optout.receipts import receipt_verify

    payload = {k: v for k, v in answer.items() if k != "receipt"}
    receipt = answer.get("receipt") or {}
    published: Any = None
    with contextlib.suppress(httpx.HTTPError, ValueError):
        response = client.get(f"{url}/.well-known/optout-registry/keys.json")
        if response.status_code == 200:
            published = response.json()
    keys = published.get("keys") if isinstance(published, dict) else published
    jwk = next((k for k in keys or [] if isinstance(k, dict) and k.get("kid") == receipt.get("key_id")), None)
    if jwk is None:
        check = receipt_verify(payload=payload, receipt=receipt)
        _receipt_checked.append("valid (this process's key)" if check.valid else f"NOT verified ({check.reason})")
        return
    public_key = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))
    signature = str(receipt.get("signature", ""))
    try:
        public_key.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), canonical_json(payload))
        _receipt_checked.append("valid (published key)")
    except (InvalidSignature, ValueError):
        _receipt_checked.append("NOT valid against the published key")


# The SQL answering the same question for a batch, written by hand: identifier -> work; the work's owners
# verified by then (a refusal decides only once its filer's claim is verified, and compensation goes to
# owners only when one is); the earliest work-scoped or catalogue refusal of the purpose, in force then, by a
# verified owner. Left out, as the bench's data has none: URL-prefix refusals and regimes; and what is not
# SQL: normalizing and validating input, the snapshot's last event id, JSON and the signed receipt.
RAW_SQL = """
SELECT q.ord, i.work_id, r.id, owners.verified
FROM unnest(%(schemes)s::text[], %(values)s::text[]) WITH ORDINALITY AS q(scheme, value, ord)
LEFT JOIN registry_identifier i ON i.scheme = q.scheme AND i.value = q.value
LEFT JOIN LATERAL (
    SELECT bool_or(c.status = 'verified' AND c.decided_at <= %(at)s) AS verified
    FROM registry_ownershipclaim c
    WHERE c.work_id = i.work_id AND c.status <> 'rejected'
) owners ON true
LEFT JOIN LATERAL (
    SELECT r.id FROM optout_refusal r
    JOIN registry_ownershipclaim c
      ON c.work_id = i.work_id AND c.holder_id = r.holder_id AND c.status = 'verified' AND c.decided_at <= %(at)s
    WHERE ((r.scope = 'work' AND r.work_id = i.work_id) OR r.scope = 'catalogue')
      AND r.purpose = ANY(%(purposes)s)
      AND r.effective_from <= %(at)s
      AND NOT EXISTS (
          SELECT 1 FROM optout_refusalevent e
          WHERE e.refusal_id = r.id AND e.kind = 'withdrawn' AND e.effective_at <= %(at)s
      )
    ORDER BY r.effective_from, r.id LIMIT 1
) r ON true
ORDER BY q.ord
"""


def sql_lookup(conn: psycopg.Connection[Any], numbers: Sequence[int], purpose: str) -> list[dict[str, Any]]:
    purposes = ["train-ai"] if purpose == "train-ai" else ["train-ai", "train-genai"]
    values = [isbn_for(n) for n in numbers]
    rows = conn.execute(
        RAW_SQL,
        {"schemes": ["isbn"] * len(values), "values": values, "purposes": purposes, "at": datetime.now().astimezone()},
    ).fetchall()
    return [
        {"index": ord_ - 1, "status": REFUSED if refusal else (PERMITTED if work else UNREGISTERED),
         "may_train": not refusal,
         "compensation": "none" if refusal else ("owners" if work and verified else "escrow"),
         "refusal": refusal}
        for ord_, work, refusal, verified in rows
    ]  # fmt: skip


@contextlib.contextmanager
def sql_connections(url: str, count: int) -> Iterator[queue.Queue[psycopg.Connection[Any]]]:
    """``count`` autocommit connections, handed out one per running job."""
    pool: queue.Queue[psycopg.Connection[Any]] = queue.Queue()
    opened = [psycopg.connect(url, autocommit=True) for _ in range(count)]
    for conn in opened:
        pool.put(conn)
    try:
        yield pool
    finally:
        for conn in opened:
            conn.close()


def sql_run(pool: queue.Queue[psycopg.Connection[Any]], numbers: Sequence[int], purpose: str) -> list[dict[str, Any]]:
    conn = pool.get()
    try:
        return sql_lookup(conn, numbers, purpose)
    finally:
        pool.put(conn)


def sql_batches(url: str, load: Workload, *, warmup: int, clients: int) -> Figures:
    with sql_connections(url, clients) as pool:
        answers, figures = timed_run(
            load.batches, lambda numbers: sql_run(pool, numbers, load.purpose), warmup=warmup, clients=clients
        )
    for numbers, results in zip(load.batches, answers, strict=True):
        check_results(numbers, results, load.works, "SQL batch")
    figures.items = sum(len(numbers) for numbers in load.batches)
    return figures


def sql_singles(url: str, load: Workload, *, warmup: int) -> Figures:
    with sql_connections(url, 1) as pool:
        answers, figures = timed_run(
            load.singles, lambda number: sql_run(pool, [number], load.purpose), warmup=warmup, clients=1
        )
    for number, results in zip(load.singles, answers, strict=True):
        check_results([number], results, load.works, "SQL single")
    figures.items = len(load.singles)
    return figures


# --- Where a batch's time goes (in-process) -------------------------------------------------------------


@dataclass
class Phases:
    rows: list[tuple[str, float]]
    queries: int
    profile: str


def best_ms(action: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return min(timings)


def phases_measure(load: Workload, key: ApiKey, raw_key: str, *, repeat: int, profile: bool) -> Phases:
    """Time the steps of one batch inside this process: normalizing, queries, building, signing, rendering."""
    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from rest_framework.renderers import JSONRenderer

    from core.actors import Actor
    from optout.selectors import lookup_answer_signed, lookup_batch
    from registry.identifiers import identifier_normalize

    numbers = load.batches[0]
    items = [{"scheme": "isbn", "value": isbn_for(n)} for n in numbers]
    actor = Actor(party=key.party, api_key=key)
    query_ms: list[float] = []

    def timed_query(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            query_ms.append((time.perf_counter() - started) * 1000)

    def sql_of(action: Callable[[], object]) -> tuple[int, float]:
        """Queries and their milliseconds in one run of ``action`` (warm; the quickest of three)."""
        action()
        runs = []
        for _ in range(3):
            query_ms.clear()
            with connection.execute_wrapper(timed_query):
                action()
            runs.append((len(query_ms), sum(query_ms)))
        return min(runs, key=lambda run: run[1])

    queries, sql_ms = sql_of(lambda: lookup_batch(items=items, purpose=load.purpose, as_of=timezone.now()))

    normalize_ms = best_ms(lambda: [identifier_normalize(scheme=i["scheme"], value=i["value"]) for i in items], repeat)
    batch_ms = best_ms(lambda: lookup_batch(items=items, purpose=load.purpose, as_of=timezone.now()), repeat)
    body: dict[str, Any] = {}

    def signed() -> None:
        body.update(lookup_answer_signed(actor=actor, items=items, purpose=load.purpose, as_of=None))

    signed_ms = best_ms(signed, repeat)
    render_ms = best_ms(lambda: JSONRenderer().render(body), repeat)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    payload = items_json(numbers, load.purpose)

    def request() -> None:
        response = client.post("/api/v1/lookup", data=payload, content_type="application/json")
        if response.status_code != 200:
            raise Mismatch(f"in-process request: {response.status_code} {response.content[:300]!r}")

    request_ms = best_ms(request, repeat)
    request_queries, request_sql_ms = sql_of(request)
    anonymous = Client(HTTP_HOST="127.0.0.1")
    single_params = {"scheme": "isbn", "value": isbn_for(load.singles[0]), "purpose": load.purpose}

    def single() -> None:
        response = anonymous.get("/api/v1/lookup", single_params)
        if response.status_code != 200:
            raise Mismatch(f"in-process single: {response.status_code} {response.content[:300]!r}")

    single_queries, single_sql_ms = sql_of(single)
    single_ms = best_ms(single, repeat * 10)
    rows = [
        ("normalize + validate 1,000 identifiers", normalize_ms),
        (f"lookup_batch SQL ({queries} queries, round trips included)", sql_ms),
        ("lookup_batch total (normalize, SQL, build results)", batch_ms),
        ("+ request echo and signed receipt (lookup_answer_signed)", signed_ms),
        ("DRF JSON rendering of the response", render_ms),
        ("whole request in-process (Django test client)", request_ms),
        (f"  of which SQL ({request_queries} queries)", request_sql_ms),
        ("single lookup, whole request in-process (anonymous GET)", single_ms),
        (f"  of which SQL ({single_queries} queries)", single_sql_ms),
    ]
    text = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            request()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(30)
        text = out.getvalue()
    return Phases(rows=rows, queries=queries, profile=text)


# --- Report -------------------------------------------------------------------------------------------


def report(
    load: Workload,
    http_b: Figures,
    sql_b: Figures,
    http_s: Figures,
    sql_s: Figures,
    healthz: Figures,
    phases: Phases | None,
    clients: int,
) -> bool:
    ratio = http_b.rate / sql_b.rate if sql_b.rate else 0.0
    p99 = http_s.percentile(99)
    batch_ok = ratio >= GOAL_BATCH_RATIO
    single_ok = p99 < GOAL_SINGLE_P99_MS
    mix = Counter(expected_status(n, load.works) for numbers in load.batches for n in numbers)
    print()
    print(f"works {load.works:,}; {len(load.batches)} batches of {len(load.batches[0]):,} items "
          f"({', '.join(f'{k} {v / mix.total():.1%}' for k, v in sorted(mix.items()))}); "
          f"{len(load.singles):,} singles; purpose {load.purpose}; {clients} batch client(s)")  # fmt: skip
    print(f"{'':34}{'HTTP':>12}{'raw SQL':>12}{'ratio':>10}   goal")
    print(
        f"{'batch items/s':34}{http_b.rate:>12,.0f}{sql_b.rate:>12,.0f}{ratio:>10.1%}   "
        f">= {GOAL_BATCH_RATIO:.0%}  {'PASS' if batch_ok else 'FAIL'}"
    )
    for label, p in (("batch p50 ms", 50.0), ("batch p99 ms", 99.0)):
        print(f"{label:34}{http_b.percentile(p):>12.1f}{sql_b.percentile(p):>12.1f}")
    print(f"{'HTTP floor: GET /healthz p50 ms':34}{healthz.percentile(50):>12.2f}")
    for label, p in (("single p50 ms", 50.0), ("single p99 ms", 99.0), ("single max ms", 100.0)):
        goal = f"   < {GOAL_SINGLE_P99_MS:.0f} ms  {'PASS' if single_ok else 'FAIL'}" if p == 99.0 else ""
        print(f"{label:34}{http_s.percentile(p):>12.2f}{sql_s.percentile(p):>12.2f}{'':>10}{goal}")
    print(
        f"answers checked: every item of every batch and single, HTTP and SQL; receipt: {', '.join(_receipt_checked)}"
    )
    if phases is not None:
        print()
        print(f"one batch of {len(load.batches[0]):,} in-process (best of repeats, ms):")
        for label, ms in phases.rows:
            print(f"  {label:<58}{ms:>9.1f}")
        print(f"  {'HTTP batch, mean over the run':<58}{sum(http_b.latencies_ms) / len(http_b.latencies_ms):>9.1f}")
        if phases.profile:
            print()
            print(phases.profile)
    print()
    print(f"RESULT: {'PASS' if batch_ok and single_ok else 'FAIL'}")
    return batch_ok and single_ok


def database_memory_report() -> None:
    """PostgreSQL's shared_buffers next to what a lookup reads at random: the projection's segments and the
    refusals (with their indexes). Smaller buffers make every batch read pages from the OS cache."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setting::bigint * 8192, current_setting('shared_buffers')"
            " FROM pg_settings WHERE name = 'shared_buffers'"
        )
        buffers_bytes, buffers_text = cursor.fetchone()
        cursor.execute(
            "SELECT pg_total_relation_size('optout_statussegment') + pg_total_relation_size('optout_refusal')"
        )
        (hot_bytes,) = cursor.fetchone()
    print(f"PostgreSQL shared_buffers {buffers_text}; the lookup's tables (status segments, refusals, their indexes) "
          f"{hot_bytes / 2**30:.2f} GiB")  # fmt: skip
    if buffers_bytes < hot_bytes:
        print("  warning: shared_buffers is smaller than what lookups read: batch lookups will be slower "
              "(bench/README.md, 'PostgreSQL')")  # fmt: skip


def cpu_busy(seconds: float = 2.0) -> float:
    """The share of all CPUs busy over ``seconds`` (from /proc/stat; 0 where there is none)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    try:
        total_1, idle_1 = sample()
        time.sleep(seconds)
        total_2, idle_2 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1 - (idle_2 - idle_1) / max(1, total_2 - total_1)


# --- Single lookups with an API key under wrk, against a plain JSON view --------------------------------

# The goal of issue 14: keyed single lookups at >= 40% of the plain view's rate in the same run, p99 < 20 ms.
GOAL_WRK_RATIO = 0.40
WRK_PLAIN_PATH = "/bench/plain"
# The lookup throttle each server is started with: DRF's list of request times per caller (the code before
# core/api/throttles.py, see bench/server_urls.py), then the fixed-window counter that ships.
WRK_THROTTLES = {"timestamps": "DRF SimpleRateThrottle (list of times)", "window": "fixed-window counter"}
_WRK_TIME = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkFigures:
    rate: float  # requests per second
    p99_ms: float
    requests: int
    errors: str  # non-2xx answers and socket errors as wrk counts them, empty if none


def wrk_script(folder: Path, load: Workload, raw_key: str) -> Path:
    """A wrk Lua script that sends keyed single lookups of the workload's singles in turn."""
    paths = [
        "/api/v1/lookup?" + urlencode({"scheme": "isbn", "value": isbn_for(n), "purpose": load.purpose})
        for n in load.singles
    ]
    script = folder / "singles.lua"
    script.write_text(
        f'wrk.headers["Authorization"] = "Api-Key {raw_key}"\n'
        "local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        "  return wrk.format(nil, paths[i])\n"
        "end\n"
    )
    return script


def wrk_batch_script(folder: Path, load: Workload, raw_key: str, *, as_of: str | None = None) -> Path:
    """A wrk Lua script that POSTs the workload's batches in turn (the bodies are built once, here); with
    ``as_of``, each asks for that instant, which the event path answers (as every lookup did before the
    projection)."""
    bodies = [items_json(numbers, load.purpose).decode() for numbers in load.batches]
    if as_of is not None:
        bodies = [json.dumps({**json.loads(body), "as_of": as_of}) for body in bodies]
    script = folder / ("batches-as-of.lua" if as_of else "batches.lua")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Api-Key {raw_key}"\n'
        "local bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        '  return wrk.format("POST", "/api/v1/lookup", nil, bodies[i])\n'
        "end\n"
    )
    return script


def wrk_batches_check(url: str, load: Workload, raw_key: str) -> None:
    """The batches wrk sends answer right, every item (wrk counts status codes only)."""
    headers = {"Authorization": f"Api-Key {raw_key}", "Content-Type": "application/json"}
    for numbers in load.batches:
        body = items_json(numbers, load.purpose)
        answer = json.loads(raw_request("POST", f"{url}/api/v1/lookup", body=body, headers=headers))
        check_results(numbers, answer["results"], load.works, "HTTP batch under wrk")


def wrk_run(url: str, *, connections: int, seconds: int, script: Path | None = None) -> WrkFigures:
    """One wrk run (one thread: the load generator should take as little of the 2 cores as it can)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    p99 = _WRK_TIME.search(output)
    if rate is None or total is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    errors = [line.strip() for line in output.splitlines() if "Non-2xx" in line or "Socket errors" in line]
    return WrkFigures(
        rate=float(rate.group(1)),
        p99_ms=float(p99.group(1)) * _WRK_UNITS_MS[p99.group(2)],
        requests=int(total.group(1)),
        errors="; ".join(errors),
    )


def wrk_singles_check(url: str, load: Workload, raw_key: str) -> None:
    """The keyed single lookups wrk sends answer right (wrk counts status codes only)."""
    headers = {"Authorization": f"Api-Key {raw_key}"}
    for number in load.singles[:50]:
        params = urlencode({"scheme": "isbn", "value": isbn_for(number), "purpose": load.purpose})
        answer = json.loads(raw_request("GET", f"{url}/api/v1/lookup?{params}", headers=headers))
        if answer.get("caller") == "anonymous":
            raise Mismatch("wrk's single lookups: the API key was not recognised")
        check_results([number], answer["results"], load.works, "HTTP keyed single")
    if json.loads(raw_request("GET", f"{url}{WRK_PLAIN_PATH}")) != {"status": "ok"}:
        raise Mismatch(f"{WRK_PLAIN_PATH} did not answer as expected")


WrkPairs = list[tuple[WrkFigures, WrkFigures]]


def wrk_compare(
    args: argparse.Namespace, load: Workload, raw_key: str
) -> tuple[dict[str, WrkPairs], dict[str, list[WrkFigures]]]:
    """Per throttle, ``--wrk-repeat`` pairs of (plain view, keyed single lookups), each after a warm-up; then, on
    the server with the shipped throttle, batch lookups."""
    if shutil.which("wrk") is None:
        sys.exit("--wrk needs wrk on the PATH (Debian: apt-get install wrk).")
    results: dict[str, WrkPairs] = {}
    batches: dict[str, list[WrkFigures]] = {}
    with tempfile.TemporaryDirectory(prefix="registry-wrk-") as folder:
        script = wrk_script(Path(folder), load, raw_key)
        for throttle, label in WRK_THROTTLES.items():
            environment = {"DJANGO_SETTINGS_MODULE": "bench.server_settings", "BENCH_LOOKUP_THROTTLE": throttle}
            with server(None, args.workers, environment=environment) as url:
                wrk_singles_check(url, load, raw_key)
                print(f"wrk: {label}, settings bench.server_settings: {args.wrk_repeat} x "
                      f"({args.wrk_seconds} s plain view, {args.wrk_seconds} s "
                      f"keyed single lookups) at {args.wrk_connections} connections")  # fmt: skip
                for path, use in ((WRK_PLAIN_PATH, None), ("/", script)):
                    wrk_run(url + path, connections=args.wrk_connections, seconds=2, script=use)  # warm-up
                pairs = []
                for _ in range(args.wrk_repeat):
                    plain = wrk_run(url + WRK_PLAIN_PATH, connections=args.wrk_connections, seconds=args.wrk_seconds)
                    singles = wrk_run(
                        url + "/", connections=args.wrk_connections, seconds=args.wrk_seconds, script=script
                    )
                    for figures in (plain, singles):
                        if figures.errors:
                            raise Mismatch(f"wrk ({label}): {figures.errors}")
                    print(f"  plain {plain.rate:8,.0f}/s p99 {plain.p99_ms:6.2f} ms   "
                          f"lookups {singles.rate:8,.0f}/s p99 {singles.p99_ms:6.2f} ms   "
                          f"ratio {singles.rate / plain.rate:6.1%}")  # fmt: skip
                    pairs.append((plain, singles))
                results[throttle] = pairs
                if throttle == "window":
                    batches = wrk_batches(url, args, load, raw_key, Path(folder))
    return results, batches


def wrk_batches(
    url: str, args: argparse.Namespace, load: Workload, raw_key: str, folder: Path
) -> dict[str, list[WrkFigures]]:
    """Batch lookups of the workload's batches under wrk, ``--wrk-repeat`` runs after a warm-up: answered from
    the projection (the current instant), and with ``as_of`` a second ago, from the event path."""
    wrk_batches_check(url, load, raw_key)
    size = len(load.batches[0])
    as_of = (datetime.now().astimezone() - timedelta(seconds=1)).isoformat()
    runs: dict[str, list[WrkFigures]] = {}
    for label, script in (
        ("projection", wrk_batch_script(folder, load, raw_key)),
        ("event path (as_of)", wrk_batch_script(folder, load, raw_key, as_of=as_of)),
    ):
        print(f"wrk: batch lookups of {size:,} items, {label}, {args.wrk_repeat} x {args.wrk_seconds} s "
              f"at {args.wrk_batch_connections} connections")  # fmt: skip
        wrk_run(url + "/", connections=args.wrk_batch_connections, seconds=2, script=script)
        runs[label] = []
        for _ in range(args.wrk_repeat):
            figures = wrk_run(
                url + "/", connections=args.wrk_batch_connections, seconds=args.wrk_seconds, script=script
            )
            if figures.errors:
                raise Mismatch(f"wrk (batches, {label}): {figures.errors}")
            print(f"  batches {figures.rate:8,.1f}/s = {figures.rate * size:10,.0f} items/s, "
                  f"p99 {figures.p99_ms:7.2f} ms")  # fmt: skip
            runs[label].append(figures)
    return runs


def throttle_cost(key: ApiKey, *, calls: int = 2000) -> list[tuple[str, float]]:
    """Microseconds per ``allow_request`` of the keyed lookup throttle, in this process, on the bench's cache.

    DRF's list of times costs with the list's length: the requests of the last period (up to the rate; the
    list is filled to a length first). The fixed-window counter costs the same at any count.
    """
    from types import SimpleNamespace

    from django.core.cache import cache

    from core.actors import Actor
    from optout.api.throttles import LookupPrincipalThrottle

    # The throttle the servers run with BENCH_LOOKUP_THROTTLE=timestamps (imported by name: bench/ is no package).
    timestamps_throttle: Any = importlib.import_module("bench.server_urls").TimestampPrincipalThrottle
    request: Any = SimpleNamespace(auth=Actor(party=key.party, api_key=key))

    def per_call(throttle: Any) -> float:
        for _ in range(50):
            throttle.allow_request(request, None)
        started = time.perf_counter()
        for _ in range(calls):
            if not throttle.allow_request(request, None):
                raise Mismatch("throttle_cost: refused; LOOKUP_RATE must be raised for the bench")
        return (time.perf_counter() - started) / calls * 1_000_000

    rows = [("fixed-window counter", per_call(LookupPrincipalThrottle()))]
    for length in (1_200, 20_000):
        old = timestamps_throttle()
        ident = old.get_cache_key(request, None)
        cache.set(ident, [time.time()] * length, old.duration)
        rows.append((f"DRF list of times, {length:,} in the period", per_call(old)))
        cache.delete(ident)
    return rows


def cache_name() -> str:
    from django.conf import settings

    backend = str(settings.CACHES["default"]["BACKEND"]).rsplit(".", 1)[-1]
    return f"{backend} {settings.CACHES['default'].get('LOCATION', '')}".strip()


def wrk_report(
    results: dict[str, WrkPairs],
    batches: dict[str, list[WrkFigures]],
    costs: list[tuple[str, float]],
    args: argparse.Namespace,
) -> bool:
    """Ranges (min-max, median) over the repeats, per throttle; PASS/FAIL of the shipped one against the goal."""

    def spread(values: list[float], form: str) -> str:
        return f"{min(values):{form}}-{max(values):{form}} (median {statistics.median(values):{form}})"

    print()
    print(f"keyed single lookups (GET /api/v1/lookup, Api-Key) against GET {WRK_PLAIN_PATH} (a JSON view reading "
          f"nothing), gunicorn {args.workers} workers, wrk -t1 -c{args.wrk_connections} -d{args.wrk_seconds}s, "
          f"{args.wrk_repeat} repeats:")  # fmt: skip
    ok = True
    summary: dict[str, float] = {}
    for throttle, pairs in results.items():
        ratios = [singles.rate / plain.rate for plain, singles in pairs]
        p99s = [singles.p99_ms for _plain, singles in pairs]
        print(f"  {WRK_THROTTLES[throttle]}:")
        print(f"    plain view      req/s {spread([p.rate for p, _s in pairs], ',.0f')}, "
              f"p99 ms {spread([p.p99_ms for p, _s in pairs], '.2f')}")  # fmt: skip
        print(f"    keyed lookups   req/s {spread([s.rate for _p, s in pairs], ',.0f')}, p99 ms {spread(p99s, '.2f')}")
        print(f"    ratio           {spread([r * 100 for r in ratios], '.1f')} %")
        if throttle == "window":
            ratio_ok = statistics.median(ratios) >= GOAL_WRK_RATIO
            p99_ok = statistics.median(p99s) < GOAL_SINGLE_P99_MS
            print(f"    goal: ratio >= {GOAL_WRK_RATIO:.0%} {'PASS' if ratio_ok else 'FAIL'}, "
                  f"p99 < {GOAL_SINGLE_P99_MS:.0f} ms {'PASS' if p99_ok else 'FAIL'} (medians)")  # fmt: skip
            ok = ratio_ok and p99_ok
            summary["wrk_single_ratio"] = statistics.median(ratios)
            summary["wrk_single_per_s"] = statistics.median([s.rate for _p, s in pairs])
            summary["wrk_plain_per_s"] = statistics.median([p.rate for p, _s in pairs])
    size = args.batch
    if batches:
        print(f"  batch lookups of {size:,} items (POST /api/v1/lookup, Api-Key), wrk -t1 "
              f"-c{args.wrk_batch_connections}, same server as the fixed-window counter:")  # fmt: skip
        for label, runs in batches.items():
            rates = [figures.rate * size for figures in runs]
            print(f"    {label:<19} items/s {spread(rates, ',.0f')}, p99 ms {spread([f.p99_ms for f in runs], '.2f')}")
        rates = [figures.rate * size for figures in batches["projection"]]
        batch_ok = statistics.median(rates) >= GOAL_WRK_BATCH_ITEMS_PER_S
        print(f"    goal (projection): >= {GOAL_WRK_BATCH_ITEMS_PER_S:,} items/s "
              f"{'PASS' if batch_ok else 'FAIL'} (median)")  # fmt: skip
        ok = ok and batch_ok
        summary["wrk_batch_items_per_s"] = statistics.median(rates)
        summary["wrk_batch_event_path_items_per_s"] = statistics.median(
            [figures.rate * size for figures in batches["event path (as_of)"]]
        )
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(f"the keyed lookup throttle alone, in this process on the same cache ({cache_name()}), per request:")
    for label, micros in costs:
        print(f"  {label:<44}{micros:>9,.0f} us")
    print()
    print(f"RESULT: {'PASS' if ok else 'FAIL'}")
    return ok


# --- Main ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--works", type=int, default=1_000_000, help="works to load (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=20, help="measured batches (default 20)")
    parser.add_argument("--batch", type=int, default=1000, help="items per batch (default 1,000)")
    parser.add_argument("--singles", type=int, default=2000, help="measured single lookups (default 2,000)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured batches first; singles get 10x")
    parser.add_argument(
        "--clients", type=int, default=1, help="parallel callers for batches, HTTP and SQL alike (default 1)"
    )
    parser.add_argument("--purpose", default="train-ai", choices=["train-ai", "train-genai"])
    parser.add_argument("--base-url", help="measure a running service instead of starting gunicorn")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers when started here (default 2)")
    parser.add_argument("--redis-url", help="REDIS_URL for the rate-limit cache (default: the environment's)")
    parser.add_argument("--reload", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the workload (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats per in-process phase timing (default 5)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of in-process requests")
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process phase timing")
    parser.add_argument(
        "--wrk",
        action="store_true",
        help="instead of the above: keyed single lookups under wrk against a plain JSON view, old and new throttle",
    )
    parser.add_argument("--wrk-connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument(
        "--wrk-batch-connections", type=int, default=4, help="wrk connections for batch lookups (default 4)"
    )
    parser.add_argument("--wrk-seconds", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument(
        "--summary-json", type=Path, help="also write the headline figures here as JSON (bench/client_filter.py)"
    )
    parser.add_argument("--wrk-repeat", type=int, default=3, help="wrk runs per view and throttle (default 3)")
    args = parser.parse_args(argv)
    if args.works < 10 or min(args.rounds, args.batch, args.singles, args.clients) < 1:
        parser.error("--works must be >= 10; --rounds, --batch, --singles and --clients >= 1")
    if args.wrk and args.base_url:
        parser.error("--wrk starts its own servers (one per throttle); it cannot measure --base-url")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bench_environment(args)
    url = os.environ["DATABASE_URL"]
    database_prepare(url, reload=args.reload)
    django_setup()

    holder, lab = parties_ensure()
    works_load(holder=holder, works=args.works)
    load_check(args.works)
    load = workload_make(
        works=args.works, rounds=args.rounds, batch=args.batch, singles=args.singles, purpose=args.purpose,
        seed=args.seed,
    )  # fmt: skip
    key, raw_key = apikey_make(lab)
    database_memory_report()
    busy = cpu_busy()
    print(f"CPU busy before measuring: {busy:.0%} of {os.cpu_count()} CPUs")
    if busy > 0.2:
        print("  warning: the machine is busy with other work; the figures will be noisy (run again when idle)")
    if args.wrk:
        try:
            results, batches = wrk_compare(args, load, raw_key)
            return 0 if wrk_report(results, batches, throttle_cost(key), args) else 1
        except Mismatch as exc:
            print(f"WRONG ANSWER: {exc}", file=sys.stderr)
            return 2
        finally:
            apikey_drop(key)
    try:
        with (
            server(args.base_url, args.workers) as base_url,
            httpx.Client(timeout=60, limits=httpx.Limits(max_connections=args.clients + 1)) as client,
        ):
            print(f"measuring {base_url}: {args.rounds} batches of {args.batch:,}, {args.singles:,} singles")
            http_b = http_batches(client, base_url, raw_key, load, warmup=args.warmup, clients=args.clients)
            http_s = http_singles(client, base_url, load, warmup=args.warmup * 10)
            healthz = http_floor(client, base_url, 500)
        sql_b = sql_batches(url, load, warmup=args.warmup, clients=args.clients)
        sql_s = sql_singles(url, load, warmup=args.warmup * 10)
        phases = None
        if not args.no_phases:
            phases = phases_measure(load, key, raw_key, repeat=args.repeat, profile=args.profile)
    except Mismatch as exc:
        print(f"WRONG ANSWER: {exc}", file=sys.stderr)
        return 2
    finally:
        apikey_drop(key)
    return 0 if report(load, http_b, sql_b, http_s, sql_s, healthz, phases, args.clients) else 1


if __name__ == "__main__":
    sys.exit(main())
