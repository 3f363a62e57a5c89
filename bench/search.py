"""Search benchmark: finding works by title, creator and identifier among a million, against a plain view.

Run from the project root with PostgreSQL (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench_search .venv/bin/python bench/search.py

It creates the database if missing and migrates it, and loads ``--works`` works the way bench/lookup.py does
(one ISBN each, a verified claim of one bench holder, a refusal on every tenth, the status projection), then gives
them titles and creators from Korean and English word lists (two of three Korean) with set-based SQL, and builds
the search indexes of migration 0006 once the rows are in (timed). A second holder has a claim on every
hundredth work, for ``works?q=``. A second run finds the data and skips the load.

It then measures, per kind of query (two-syllable Hangul, longer Hangul, a spacing variant, Latin, a creator's
name, an identifier in another spelling, one syllable, a query that finds nothing):

- the search itself in this process (``work_search_ids``: the ranked ids, at most 1,000): p50/p99/max;
- ``GET /api/v1/search?q=`` over HTTP on gunicorn (1 sync worker, production settings; the answer's first page
  of 50 with each work's status now) against ``GET /bench/plain`` on the same server (a JSON view that reads
  nothing: the HTTP ceiling), sequentially: p50/p99/max;

and prints PASS/FAIL against issue 15's goal (p99 under 100 ms over HTTP). Each query kind's answers are checked
(the work the query was made from is on the first page, or nothing is found), so a fast wrong answer fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import lookup
import psycopg

HOLDER_NAME = "Bench holder (bench/search.py)"
SMALL_HOLDER_NAME = "Bench small holder (bench/search.py)"
GOAL_P99_MS = 100.0

KO_WORDS = [
    "봄",
    "여름",
    "가을",
    "겨울",
    "정원",
    "바다",
    "하늘",
    "바람",
    "노래",
    "시간",
    "기억",
    "마음",
    "숲",
    "달빛",
    "소년",
    "소녀",
    "편지",
    "여행",
    "그림자",
    "나무",
    "고양이",
    "서울",
    "우리",
    "푸른",
    "별",
    "밤",
    "사랑",
    "도시",
    "강",
    "꽃",
]
EN_WORDS = [
    "garden",
    "story",
    "sea",
    "night",
    "love",
    "city",
    "summer",
    "winter",
    "wind",
    "song",
    "time",
    "memory",
    "flower",
    "sky",
    "road",
    "heart",
    "forest",
    "moon",
    "boy",
    "girl",
    "letter",
    "journey",
    "shadow",
    "tree",
    "cat",
    "river",
    "light",
    "house",
    "dream",
    "stone",
]
KO_SURNAMES = [
    "김",
    "이",
    "박",
    "최",
    "정",
    "강",
    "조",
    "윤",
    "장",
    "임",
    "한",
    "오",
    "서",
    "신",
    "권",
    "황",
    "안",
    "송",
    "류",
    "홍",
]
EN_FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Henry",
    "Iris",
    "Jack",
    "Kate",
    "Leo",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
]
EN_LAST = [
    "Adams",
    "Brown",
    "Clark",
    "Davis",
    "Evans",
    "Fisher",
    "Green",
    "Hughes",
    "Irving",
    "Jones",
    "King",
    "Lewis",
    "Moore",
    "Nash",
    "Owen",
    "Price",
]


def _sql_array(words: Sequence[str]) -> str:
    return "(ARRAY[" + ", ".join("'" + word.replace("'", "''") + "'" for word in words) + "])"


def _syllable(expression: str) -> str:
    """One Hangul syllable (U+AC00..U+D7A3) picked by an integer SQL expression."""
    return f"chr(44032 + mod({expression}, 11172)::int)"


# Titles and creators of work number n. Korean: two common words, then a made-up two-syllable word (nearly
# unique); English: "Word word of word" with a made-up word. Hash-like picks spread the words evenly.
_KO, _EN = _sql_array(KO_WORDS), _sql_array(EN_WORDS)
_N_KO, _N_EN = len(KO_WORDS), len(EN_WORDS)
TITLE_SQL = (
    f"CASE WHEN mod(n, 3) <> 0 THEN {_KO}[1 + mod(n * 7, {_N_KO})] || '의 ' || {_KO}[1 + mod(n / 7, {_N_KO})]"
    f" || ' ' || {_syllable('n * 37')} || {_syllable('n * 101 + 7')}"
    f" ELSE initcap({_EN}[1 + mod(n * 7, {_N_EN})]) || ' ' || {_EN}[1 + mod(n / 7, {_N_EN})] || ' of '"
    f" || {_EN}[1 + mod(n / 11, {_N_EN})] || ' ' || lower(md5(n::text)::varchar(6)) END"
)
CREATORS_SQL = (
    f"CASE WHEN mod(n, 3) <> 0 THEN jsonb_build_array({_sql_array(KO_SURNAMES)}[1 + mod(n, {len(KO_SURNAMES)})]"
    f" || {_syllable('n * 13 + 3')} || {_syllable('n * 29 + 11')})"
    f" ELSE jsonb_build_array({_sql_array(EN_FIRST)}[1 + mod(n, {len(EN_FIRST)})] || ' '"
    f" || {_sql_array(EN_LAST)}[1 + mod(n / 3, {len(EN_LAST)})]) END"
)


def title_for(n: int) -> str:
    if n % 3:
        return (
            f"{KO_WORDS[n * 7 % _N_KO]}의 {KO_WORDS[n // 7 % _N_KO]} {_py_syllable(n * 37)}{_py_syllable(n * 101 + 7)}"
        )
    import hashlib

    made_up = hashlib.md5(str(n).encode(), usedforsecurity=False).hexdigest()[:6]
    words = (EN_WORDS[n * 7 % _N_EN].capitalize(), EN_WORDS[n // 7 % _N_EN], EN_WORDS[n // 11 % _N_EN])
    return f"{words[0]} {words[1]} of {words[2]} {made_up}"


def creator_for(n: int) -> str:
    if n % 3:
        return KO_SURNAMES[n % len(KO_SURNAMES)] + _py_syllable(n * 13 + 3) + _py_syllable(n * 29 + 11)
    return f"{EN_FIRST[n % len(EN_FIRST)]} {EN_LAST[n // 3 % len(EN_LAST)]}"


def _py_syllable(value: int) -> str:
    return chr(44032 + value % 11172)


# --- Loading ------------------------------------------------------------------------------------------


def search_index_sql() -> tuple[list[str], list[str]]:
    """The CREATE and DROP INDEX statements of migration 0006, so the load builds them once, after the rows."""
    import importlib

    migration = importlib.import_module("registry.migrations.0008_work_search")
    creates = [s.strip() for s in migration._FUNCTIONS.split(";") if s.strip().startswith("CREATE INDEX")]
    drops = [s.strip() for s in migration._DROP.split(";") if s.strip().startswith("DROP INDEX")]
    return creates, drops


def party_ensure(name: str) -> Any:
    from core.actors import Actor
    from registry.models import Party, PartyKind
    from registry.services import party_create

    party = Party.objects.filter(name=name).first()
    return party or party_create(actor=Actor.system(), kind=PartyKind.HOLDER, name=name)


def works_load(*, works: int) -> None:
    from django.db import connection, transaction

    from registry.models import Work

    holder = party_ensure(HOLDER_NAME)
    first = Work.objects.filter(registered_by=holder).order_by("id").first()
    if first is not None and first.title == title_for(1) and Work.objects.filter(registered_by=holder).count() == works:
        print(f"load: skipped, the bench holder already has {works:,} works with titles")
        return
    creates, drops = search_index_sql()
    with connection.cursor() as cursor:
        for statement in drops:
            cursor.execute(statement)
    lookup.works_load(holder=holder, works=works)
    started = time.perf_counter()
    small = party_ensure(SMALL_HOLDER_NAME)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_numbered ON COMMIT DROP AS SELECT id, row_number() OVER (ORDER BY id) AS n"
            " FROM registry_work WHERE registered_by_id = %s",
            [holder.pk],
        )
        cursor.execute(
            f"UPDATE registry_work w SET title = {TITLE_SQL}, creators = {CREATORS_SQL}"  # noqa: S608 (constant)
            " FROM bench_numbered b WHERE w.id = b.id",
        )
        print(f"  titles, creators  {cursor.rowcount:>10,} rows  {time.perf_counter() - started:7.1f} s")
        cursor.execute(
            "UPDATE optout_statussegment s SET work_title = w.title FROM registry_work w WHERE s.work_id = w.id"
        )
        cursor.execute(
            "INSERT INTO registry_ownershipclaim (work_id, holder_id, share_bp, valid_from, status,"
            " decision_reason, decided_by_id, decided_at, verified_by_domain_id, created_at)"
            " SELECT id, %s, 1, now()::date, 'pending', '', NULL, NULL, NULL, now()"
            " FROM bench_numbered WHERE mod(n, 100) = 0",
            [small.pk],
        )
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        raw.execute("VACUUM (ANALYZE) registry_work, registry_ownershipclaim, optout_statussegment")
        for statement in creates:
            step = time.perf_counter()
            raw.execute(statement)
            print(f"  {statement.split()[2]:<30} built in {time.perf_counter() - step:7.1f} s")
        raw.execute("ANALYZE registry_work")
        with contextlib.suppress(psycopg.Error):
            raw.execute("CHECKPOINT")
    print(f"load: search data in {time.perf_counter() - started:.1f} s")


# --- Workload -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    expect_first: int | None  # work number that must be on the first page; None: only that something is found
    expect_none: bool = False


def workload(*, works: int, per_kind: int, seed: int) -> list[Query]:
    rng = random.Random(seed)  # noqa: S311 (a reproducible sample)

    def korean() -> int:
        while True:
            n = rng.randint(1, works)
            if n % 3:
                return n

    def english() -> int:
        return rng.randint(1, works // 3) * 3

    queries: list[Query] = []
    for _ in range(per_kind):
        n = korean()
        title = title_for(n)
        queries.append(
            Query("hangul, 2 syllables (common word)", rng.choice([w for w in KO_WORDS if len(w) == 2]), None)
        )
        queries.append(Query("hangul, 2 syllables (rare word)", title[-2:], None))
        queries.append(Query("hangul, 3+ syllables (whole title)", title, n))
        queries.append(Query("hangul, spacing variant", title.replace(" ", ""), n))
        queries.append(Query("hangul, 1 syllable", rng.choice(["밤", "강", "꽃"]), None))  # words that start titles
        queries.append(Query("creator name (hangul)", creator_for(n), None))
        m = english()
        queries.append(Query("latin word", rng.choice(EN_WORDS), None))
        queries.append(Query("latin title, other case", title_for(m).upper(), m))
        queries.append(Query("creator name (latin)", creator_for(m).lower(), None))
        isbn = lookup.isbn_for(n)
        queries.append(Query("identifier (hyphenated ISBN)", f"{isbn[:3]}-{isbn[3:5]}-{isbn[5:12]}-{isbn[12]}", n))
        queries.append(Query("no hit", f"없는제목{rng.randint(0, 10**6)}qz", None, expect_none=True))
    return queries


# --- Measuring ----------------------------------------------------------------------------------------


def work_numbers() -> dict[int, int]:
    """Work id by work number (the order lookup.py loaded them in)."""
    from registry.models import Party, Work

    holder = Party.objects.get(name=HOLDER_NAME)
    ids = Work.objects.filter(registered_by=holder).order_by("id").values_list("id", flat=True)
    return {index + 1: work_id for index, work_id in enumerate(ids)}


def percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, math_ceil(len(ordered) * 0.99) - 1)]
    return statistics.median(ordered), p99, ordered[-1]


def math_ceil(value: float) -> int:
    return int(-(-value // 1))


def check(query: Query, ids: Sequence[int], numbers: dict[int, int], where: str) -> None:
    if query.expect_none and ids:
        sys.exit(f"{where}: {query.text!r} ({query.kind}) found {len(ids)} works, expected none")
    if not query.expect_none and not ids:
        sys.exit(f"{where}: {query.text!r} ({query.kind}) found nothing")
    # Generated titles repeat now and then: the work must be on the first page (exact matches rank first).
    if query.expect_first is not None and numbers[query.expect_first] not in ids[:50]:
        sys.exit(f"{where}: {query.text!r} ({query.kind}) did not find work {numbers[query.expect_first]} on page 1")


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def measure_in_process(queries: Sequence[Query], numbers: dict[int, int]) -> dict[str, list[float]]:
    from registry.search import work_search_ids

    samples: dict[str, list[float]] = {}
    for query in queries:
        ms, ids = timed(functools.partial(work_search_ids, query=query.text))
        check(query, ids, numbers, "in-process")
        samples.setdefault(query.kind, []).append(ms)
    return samples


def measure_http(
    url: str, queries: Sequence[Query], numbers: dict[int, int]
) -> tuple[dict[str, list[float]], list[float]]:
    samples: dict[str, list[float]] = {}
    plain: list[float] = []
    with httpx.Client(timeout=30) as client:
        for _ in range(20):  # warm-up: the connection, the worker's first requests
            client.get(f"{url}/bench/plain")
            client.get(f"{url}/api/v1/search", params={"q": "정원"})
        for query in queries:
            ms, response = timed(functools.partial(client.get, f"{url}/api/v1/search", params={"q": query.text}))
            if response.status_code != 200:
                sys.exit(f"HTTP {response.status_code} for {query.text!r}: {response.text[:300]}")
            check(query, [r["id"] for r in response.json()["results"]], numbers, "HTTP")
            samples.setdefault(query.kind, []).append(ms)
            ms, response = timed(functools.partial(client.get, f"{url}/bench/plain"))
            plain.append(ms)
    return samples, plain


def report(in_process: dict[str, list[float]], http: dict[str, list[float]], plain: list[float]) -> bool:
    print()
    print(f"{'query kind':<38} {'in-process p50/p99/max ms':>27} {'HTTP p50/p99/max ms':>24}")
    worst = 0.0
    for kind, values in in_process.items():
        a = percentiles(values)
        b = percentiles(http[kind])
        worst = max(worst, b[1])
        print(f"{kind:<38} {a[0]:8.1f} {a[1]:8.1f} {a[2]:8.1f}  {b[0]:7.1f} {b[1]:7.1f} {b[2]:7.1f}")
    c = percentiles(plain)
    print(f"{'ceiling: GET /bench/plain (HTTP)':<38} {'':>27}  {c[0]:7.1f} {c[1]:7.1f} {c[2]:7.1f}")
    ok = worst < GOAL_P99_MS
    print(f"\n{'PASS' if ok else 'FAIL'}: worst HTTP p99 {worst:.1f} ms (goal: under {GOAL_P99_MS:.0f} ms)")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--works", type=int, default=1_000_000)
    parser.add_argument("--per-kind", type=int, default=100, help="queries of each kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-url", help="measure this server instead of starting gunicorn")
    parser.add_argument("--redis-url", help="REDIS_URL for this script and the server")
    parser.add_argument("--load-only", action="store_true", help="load the data and stop")
    args = parser.parse_args()
    lookup.bench_environment(args)
    url = os.environ["DATABASE_URL"]
    lookup.database_prepare(url, reload=False)
    lookup.django_setup()
    works_load(works=args.works)
    if args.load_only:
        return
    numbers = work_numbers()
    queries = workload(works=args.works, per_kind=args.per_kind, seed=args.seed)
    random.Random(args.seed).shuffle(queries)  # noqa: S311 (kinds interleaved, as a public search sees them)
    print(f"queries: {len(queries):,} ({args.per_kind} of each of {len(queries) // args.per_kind} kinds)")
    measure_in_process(queries[: len(queries) // 5], numbers)  # warm the caches the same way for both
    in_process = measure_in_process(queries, numbers)
    with lookup.server(args.base_url, 1, environment={"DJANGO_SETTINGS_MODULE": "bench.server_settings"}) as base:
        http, plain = measure_http(base, queries, numbers)
    sys.exit(0 if report(in_process, http, plain) else 1)


if __name__ == "__main__":
    main()
