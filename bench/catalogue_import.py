"""Catalogue import benchmark: a CWR file of ``--works`` musical works registered by the import task, timed.

Run from the project root with PostgreSQL (see bench/README.md)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/registry_bench_catalogue .venv/bin/python bench/catalogue_import.py

It migrates the database, makes a bench holder, writes a CWR 2.1 file of ``--works`` transactions (NWR with an
ISWC, one SPU publisher with 50%, two SWR writers with 25% each and their PWR links: six records a work), uploads it
with ``work_import_create`` and runs the import task's service (``work_import_process``) in this process, as the
worker would, timing the whole of it (first pass counting the rows, then registration chunk by chunk). It prints
works per second, checks that every work and its three contributors are registered, and prints PASS/FAIL against
issue 18's goal: 100,000 works in under 60 s, and next to it the ceiling the import works against: reading and
drafting the same file in this process without the database. A second run uses new ISWCs (``--seed``), so it
registers anew.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("REGISTRY_TESTING", "1")

GOAL_SECONDS = 60.0


def iswc(number: int) -> str:
    digits = f"{number:09d}"
    check = (10 - (1 + sum((i + 1) * int(d) for i, d in enumerate(digits))) % 10) % 10
    return f"T{digits}{check}"


def field(line: list[str], start: int, end: int, value: str) -> None:
    width = end - start + 1
    line[start - 1 : end] = list(value.ljust(width)[:width])


def record(kind: str, transaction: int, sequence: int, fields: list[tuple[int, int, str]]) -> str:
    line = [" "] * max(end for _s, end, _v in fields)
    line[:19] = list(f"{kind}{transaction:08d}{sequence:08d}")
    for start, end, value in fields:
        field(line, start, end, value)
    return "".join(line)


def cwr_file(works: int, first: int) -> bytes:
    out = io.StringIO()
    out.write("HDRPB000000199" + "BENCH MUSIC PUBLISHING".ljust(45) + "01.10" + "20260115120000" + "20260115\r\n")
    out.write("GRHNWR0000102.10\r\n")
    for t in range(works):
        n = first + t
        out.write(record("NWR", t, 0, [(20, 79, f"BENCH SONG {n}"), (80, 81, "KO"), (96, 106, iswc(n))]) + "\r\n")
        out.write(
            record(
                "SPU",
                t,
                1,
                [
                    (20, 21, "01"),
                    (22, 30, "P0001"),
                    (31, 75, "BENCH MUSIC"),
                    (77, 78, "E"),
                    (88, 98, "00000123456"),
                    (116, 120, "05000"),
                ],
            )
            + "\r\n"
        )
        for s, (ip, last) in enumerate((("W0001", "KIM"), ("W0002", "LEE"))):
            out.write(
                record(
                    "SWR",
                    t,
                    2 + 2 * s,
                    [
                        (20, 28, ip),
                        (29, 73, last),
                        (74, 103, "BENCH"),
                        (105, 106, "CA"),
                        (116, 126, "00014107338"),
                        (130, 134, "02500"),
                    ],
                )
                + "\r\n"
            )
            out.write(
                record("PWR", t, 3 + 2 * s, [(20, 28, "P0001"), (29, 73, "BENCH MUSIC"), (102, 110, ip)]) + "\r\n"
            )
    out.write("GRT000010000000100000000\r\nTRL000010000000100000000\r\n")
    return out.getvalue().encode("ascii")


def _backend_pid(connection: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU of a process on this host (Linux ``/proc``), or None where it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--works", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1, help="Which block of ISWCs to use (a run per seed).")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection

    from core.actors import Actor
    from registry.imports import work_import_create, work_import_process
    from registry.models import MusicalWorkContributor, Party, Work, WorkImport
    from registry.services import party_create

    settings.WORK_IMPORT_MAX_ROWS = max(settings.WORK_IMPORT_MAX_ROWS, args.works * 6 + 10)
    settings.WORK_IMPORT_MAX_UPLOAD_BYTES = max(settings.WORK_IMPORT_MAX_UPLOAD_BYTES, args.works * 1000)
    call_command("migrate", verbosity=0)
    # As autovacuum would on a live registry (the shared development server runs without it): without statistics
    # the planner reads the status projection and the works by sequential scans once earlier runs have grown them.
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) registry_work, registry_identifier, registry_ownershipclaim, "
            "registry_musicalworkcontributor, registry_auditevent, optout_statussegment, optout_statuschange"
        )
    holder = Party.objects.filter(name="Bench publisher (bench/catalogue_import.py)").first() or party_create(
        actor=Actor.system(), kind="holder", name="Bench publisher (bench/catalogue_import.py)"
    )
    first = args.seed * 10_000_000
    body = cwr_file(args.works, first)
    print(f"CWR file: {args.works:,} works, {len(body) / 1e6:.1f} MB")
    backend = _backend_pid(connection)
    backend_cpu = _cpu_seconds(backend)
    cpu = time.process_time()
    children = os.times()
    started = time.perf_counter()
    work_import = work_import_create(
        actor=Actor(party=holder, is_system=True),
        holder=holder,
        file=SimpleUploadedFile("bench.v21", body),
        filename="bench.v21",
    )
    work_import_process(import_id=work_import.pk)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    # The drafting process (forked for a file of more than a chunk, reaped before the import returns).
    children_after = os.times()
    drafting_cpu = (children_after.children_user + children_after.children_system) - (
        children.children_user + children.children_system
    )
    # The machine is shared: CPU seconds (this process's, and its PostgreSQL backend's when on this host) vary
    # less with the others' load than the wall clock does.
    backend_after = _cpu_seconds(backend) if _backend_pid(connection) == backend else None
    backend_text = (
        f"{backend_after - backend_cpu:.1f} s"
        if backend_cpu is not None and backend_after is not None
        else "not measured (not on this host, or reconnected)"
    )
    work_import = WorkImport.objects.get(pk=work_import.pk)
    registered = Work.objects.filter(title__startswith="BENCH SONG", registered_by=holder).count()
    contributors = MusicalWorkContributor.objects.filter(work__registered_by=holder).count()
    print(
        f"status {work_import.status}: {work_import.rows_registered:,} registered, {work_import.rows_failed:,} failed "
        f"in {elapsed:.1f} s ({work_import.rows_registered / elapsed:,.0f} works/s); "
        f"{registered:,} bench works and {contributors:,} contributors in the database"
    )
    print(
        f"CPU: {cpu:.1f} s in Python, {drafting_cpu:.1f} s in its drafting process, PostgreSQL backend {backend_text}"
    )
    # The ceiling the import works against: reading and drafting the same file in this process with no database
    # at all (the part the drafting process does, one chunk ahead of the worker's registration).
    from registry.imports import work_import_rows, work_import_rows_draft

    drafting_started = time.perf_counter()
    drafted = sum(
        len(chunk.drafts)
        for chunk in work_import_rows_draft(rows=work_import_rows(path_or_file=io.BytesIO(body), format="cwr"))
    )
    drafting_alone = time.perf_counter() - drafting_started
    print(
        f"Ceiling: reading and drafting the file alone, without the database: {drafting_alone:.1f} s "
        f"({drafted:,} drafts)"
    )
    ok = work_import.rows_registered == args.works and work_import.rows_failed == 0
    goal = elapsed * 100_000 / max(args.works, 1)
    verdict = "PASS" if ok and goal < GOAL_SECONDS else "FAIL"
    print(f"{verdict}: {goal:.1f} s per 100,000 works (goal under {GOAL_SECONDS:.0f} s)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
