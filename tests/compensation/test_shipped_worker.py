"""A 250,000-line usage manifest through the worker exactly as the Procfile and docker-compose start it.

Celery's default pool (prefork) runs each task in a daemonic process; manifests of more than one chunk are
parsed in a process forked from there. This test is the one that fails when that fork is refused.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from django.utils import timezone

from compensation.models import LedgerLine, ManifestLine, ManifestStatus, Outcome, UsageManifest
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.tasks import QUEUE_LONG
from tests.compensation.helpers import eager
from tests.factories import WorkFactory, isbn
from tests.shipped import procfile_command, procfile_worker
from tests.workers import CeleryWorkers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LINES = 250_000


def manifest(*, matched: list[str], unmatched_from: int) -> bytes:
    """A gzip CSV of ``LINES`` uses: every fifth of an unregistered book, the rest of the registered ones."""
    base = timezone.now() - timedelta(days=1)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["scheme", "value", "units", "unit", "used_at"])
    for index in range(LINES):
        value = isbn(unmatched_from + index % 500) if index % 5 == 0 else matched[index % len(matched)]
        writer.writerow(["isbn", value, 1000, "token", (base - timedelta(seconds=index)).isoformat()])
    return gzip.compress(text.getvalue().encode(), compresslevel=1)


def test_the_shipped_worker_processes_a_quarter_million_line_manifest(
    lab_api: Any, holder: Any, staff: Any, tmp_path: Path
) -> None:
    shipped = procfile_command(procfile_worker(QUEUE_LONG))
    assert "--pool" not in " ".join(shipped), "this test is about Celery's default pool"
    with eager():
        tariff_set(
            actor=Actor(user=staff),
            kind="text",
            unit="token",
            rate_krw=Decimal("0.001"),
            effective_from=timezone.now() - timedelta(days=30),
        )
        matched = [isbn(n) for n in range(1, 11)]
        for number in matched:
            WorkFactory(holder=holder, identifiers=[("isbn", number)], verified_by=staff)
    content = manifest(matched=matched, unmatched_from=700_000)

    with CeleryWorkers(tmp_path) as workers:
        worker = workers.start(queue=QUEUE_LONG)
        file = io.BytesIO(content)
        file.name = "quarter-million.csv.gz"
        accepted = lab_api.post(
            "/api/v1/usage-manifests",
            {"file": file, "manifest_id": "quarter-million", "model": "hangul-7b", "model_version": "1"},
            format="multipart",
        )
        assert accepted.status_code == 202, accepted.content
        manifest_pk = accepted.json()["id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            current = UsageManifest.objects.get(pk=manifest_pk)
            if current.status in (ManifestStatus.PROCESSED, ManifestStatus.FAILED):
                break
            assert worker.poll() is None, workers.log()
            time.sleep(0.5)
        log = workers.log()

    answer = lab_api.get(f"/api/v1/usage-manifests/{manifest_pk}").json()
    assert answer["status"] == ManifestStatus.PROCESSED, (answer, log)
    assert "daemonic" not in log, log
    assert "Traceback" not in log, log
    assert (answer["lines_total"], answer["lines_done"]) == (LINES, LINES)
    outcomes = {
        row["outcome"]: row["n"]
        for row in ManifestLine.objects.filter(manifest_id=manifest_pk).values("outcome").annotate(n=Count("pk"))
    }
    assert outcomes == {Outcome.MATCHED: LINES * 4 // 5, Outcome.UNMATCHED_HELD: LINES // 5}, outcomes
    # 1,000 tokens at 0.001 won each: one won a line, all of it owed by the lab.
    owed = LedgerLine.objects.filter(entry__source__manifest=manifest_pk, amount_micro__gt=0).aggregate(
        total=Sum("amount_micro")
    )["total"]
    assert owed == LINES * 1_000_000
    call_command("ledger_check")
