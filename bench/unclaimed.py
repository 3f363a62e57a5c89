"""Unclaimed-money benchmark: the public list (GET /api/v1/unclaimed) over many holds, and what recording notices
costs a manifest.

Run from the project root with PostgreSQL (a database of the bench's own; it is migrated)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<a database of its own> REGISTRY_TESTING=1 \\
        .venv/bin/python bench/unclaimed.py [--lines 100000] [--months 3] [--rounds 20]

It registers ``--lines / 10`` works whose only claim is pending (their uses are held as unclaimed shares), then
processes in this process, through the usage services and the Python/SQL engine the database gets, one manifest per
month of ``--lines`` lines: half the lines use those works, half use ISBNs no work has (each held for its
identifier). Every held account and month becomes a notice, so the list has about ``--lines * --months / 2 + works``
rows. It prints the manifests' processing rate, then the median and p95 of ``--rounds`` requests through Django's
test client (anonymous, with the lookup throttle's limits raised): the first page, a page in the middle, a title
search and an identifier search; and the time of ledger_check's ``holds_noticed`` check. Every answer is checked:
50 rows a page, the count equal to the notices with money open.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The list is public at the anonymous lookup rate; the bench asks far more often than a person would.
os.environ.setdefault("LOOKUP_RATE_ANONYMOUS", "1000000/min")


def isbn13(n: int, prefix: str) -> str:
    body = f"{prefix}{n:0{12 - len(prefix)}d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database of the bench's own.")
    call_command("migrate", interactive=False, verbosity=0)

    from django.core.files import File
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from compensation.ledger.checks import check_offenders, ledger_checks
    from compensation.models import Tariff, UnclaimedNotice
    from compensation.unclaimed.selectors import unclaimed_notices
    from compensation.usage import services as usage
    from compensation.usage.tariffs import tariff_set
    from core.actors import Actor
    from registry.models import Party, PartyKind
    from registry.services import apikey_create, party_create, work_draft_build, works_register

    lab = Party.objects.filter(name="Bench Unclaimed Lab").first()
    if lab is not None:
        raise SystemExit("The bench data is there already: drop and recreate the database to run again.")
    lab = party_create(actor=Actor.system(), kind=PartyKind.LAB, name="Bench Unclaimed Lab")
    holder = party_create(actor=Actor.system(), kind=PartyKind.HOLDER, name="Bench Unclaimed Holder")
    key, _raw = apikey_create(actor=Actor.system(), party=lab, scopes=["usage:write"])
    now = timezone.now()
    start = now - timedelta(days=31 * args.months + 1)
    if not Tariff.objects.filter(kind="text", unit="token").exists():
        tariff_set(actor=Actor.system(), kind="text", unit="token", rate_krw="0.0005", effective_from=start)

    works = max(args.lines // 10, 1)
    began = time.monotonic()
    for first in range(0, works, 5_000):
        drafts = [
            work_draft_build(
                title=f"Bench unclaimed work {n}",
                kind="text",
                creators=[f"Author {n % 997}"],
                identifiers=[{"scheme": "isbn", "value": isbn13(n, "979110")}],
            )
            for n in range(first, min(first + 5_000, works))
        ]
        works_register(actor=Actor(party=holder, is_system=True), holder=holder, drafts=drafts)
    print(f"registered {works:,} works with pending claims in {time.monotonic() - began:.1f} s")

    rates = []
    for month in range(args.months):
        used = start + timedelta(days=31 * month + 2)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "run.csv.gz"
            with gzip.open(path, "wt", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(["scheme", "value", "units", "unit", "used_at"])
                for n in range(args.lines):
                    value = isbn13(n % works, "979110") if n % 2 else isbn13(n + month * args.lines, "979120")
                    writer.writerow(["isbn", value, "2000000", "token", used.isoformat()])
            began = time.monotonic()
            with path.open("rb") as handle, mock.patch.object(usage, "_enqueue"):
                manifest, _created = usage.usage_manifest_submit_file(
                    actor=Actor(party=lab, api_key=key),
                    fields={"manifest_id": f"bench-{month}", "model": "bench", "purpose": "train-genai"},
                    file=File(handle, name=path.name),
                    filename=path.name,
                )
            usage.usage_manifest_process(manifest_id=manifest.pk)
            seconds = time.monotonic() - began
            rates.append(args.lines / seconds)
            print(f"month {month + 1}: {args.lines:,} lines in {seconds:.1f} s ({args.lines / seconds:,.0f} lines/s)")

    notices = UnclaimedNotice.objects.count()
    listed = unclaimed_notices().count()
    print(f"{notices:,} notices, {listed:,} with money open")

    client = Client(SERVER_NAME="localhost")

    def timed(path: str, expect_rows: int | None = None) -> list[float]:
        times = []
        for _ in range(args.rounds):
            began = time.monotonic()
            response = client.get(path)
            times.append((time.monotonic() - began) * 1000)
            assert response.status_code == 200, response.content[:300]
            body = response.json()
            if expect_rows is not None:
                assert len(body["results"]) == expect_rows, (path, len(body["results"]))
        return times

    middle = max(listed // 50 // 2, 1)
    cases = {
        "first page": ("/api/v1/unclaimed", 50),
        f"page {middle}": (f"/api/v1/unclaimed?page={middle}", 50),
        "title search": ("/api/v1/unclaimed?q=Bench+unclaimed+work+4242", None),
        "identifier search": (f"/api/v1/unclaimed?q={isbn13(8, '979120')}", 1),
    }
    assert client.get("/api/v1/unclaimed").json()["count"] == listed
    print(f"{'request':<20} {'median ms':>10} {'p95 ms':>10}")
    for name, (url, rows) in cases.items():
        times = sorted(timed(url, rows))
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        print(f"{name:<20} {statistics.median(times):>10.1f} {p95:>10.1f}")
    check = next(c for c in ledger_checks() if c.name == "holds_noticed")
    began = time.monotonic()
    count, _ids = check_offenders(check, limit=10)
    print(f"ledger_check holds_noticed: {count} offenders in {(time.monotonic() - began) * 1000:.0f} ms")
    connection.close()


if __name__ == "__main__":
    main()
