"""A real Celery worker killed in the middle of a large usage manifest, and another that finishes it.

Ledger acceptance test: "a worker killed at any point and restarted (or a task delivered twice) ends with
exactly the same ledger as one clean run". A manifest is uploaded through the API and Redis to a worker
process that is sent SIGKILL half-way through a chunk. Its message stays unacknowledged, so the task is
delivered again, twice, to a second worker whose two pool processes take both deliveries at once: one finishes
the manifest, the other finds it held by a live worker (its heartbeat fresh) and leaves it. Meanwhile the same
lines, under another ``manifest_id``, are processed cleanly in the test process. Both manifests must end with the
same outcome for every line and the same ledger entries, chunk by chunk and account by account.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
import subprocess
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from compensation.models import (
    Account,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    ManifestStatus,
    Outcome,
    UsageManifest,
)
from compensation.tasks import usage_manifest_run
from compensation.usage.services import usage_manifests_resume_stalled
from core.tasks import QUEUE_LONG
from tests.compensation.helpers import eager
from tests.factories import TariffFactory, WorkFactory, isbn, verify_claims
from tests.workers import CeleryWorkers

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHUNK = 800
LINES = 16_000  # 20 chunks: the worker needs several seconds, so it can be caught in the middle
TASK_SUCCEEDED = re.compile(r"compensation\.tasks\.usage_manifest_run\[[-0-9a-f]+\] succeeded")
# A manifest line's outcome, as compared between runs (ledger_of names the account and entry).
LINE_FIELDS = (
    "line_no",
    "key",
    "units",
    "unit",
    "used_at",
    "dedupe",
    "outcome",
    "reason_code",
    "work_id",
    "kind",
    "refusal_id",
    "tariff_id",
    "amount_micro",
    "paid_micro",
    "held_micro",
    "violation_micro",
    "open_bp",
    "hold_open",
    "held_account_id",
    "allocation",
    "entry_id",
)


def manifest_content(
    *, matched: list[str], partial: str, image: str, unverified: str, refused: str, refused_from: datetime
) -> bytes:
    """A gzip CSV of ``LINES`` lines mixing every outcome this setup can give, deterministically.

    Each use is unique by construction (its own instant), so only the copies made on purpose are
    duplicates; they copy lines a few chunks back, so deduplication must see lines committed before a crash.
    """
    rng = random.Random(4)
    base = timezone.now() - timedelta(days=1)
    rows: list[list[str]] = []
    for index in range(LINES):
        used_at = (base - timedelta(seconds=37 * index)).isoformat()
        tokens = str(rng.randrange(1, 200_000))
        pick = rng.random()
        if index >= 4 * CHUNK and pick < 0.05:
            row = list(rows[rng.randrange(index - 4 * CHUNK, index - CHUNK)])  # duplicate
        elif pick < 0.35:
            row = ["isbn", rng.choice(matched), tokens, "token", used_at]  # matched, one owner
        elif pick < 0.45:
            row = ["isbn", partial, tokens, "token", used_at]  # matched 60 %, 40 % held unclaimed
        elif pick < 0.53:
            row = ["doi", image, str(rng.randrange(1, 9)), "image", used_at]  # matched, another tariff
        elif pick < 0.60:
            row = ["isbn", unverified, tokens, "token", used_at]  # share_unclaimed
        elif pick < 0.66:
            row = ["isbn", refused, str(index + 1), "token", refused_from.isoformat()]  # refused_at_use
        elif pick < 0.69:
            row = ["isbn", refused, tokens, "token", used_at]  # before the refusal: matched
        elif pick < 0.85:
            row = ["isbn", isbn(500_000 + rng.randrange(400)), tokens, "token", used_at]  # unmatched_held
        elif pick < 0.88:
            row = ["isbn", rng.choice(matched), str(rng.randrange(1, 900)), "second", used_at]  # unpriced
        else:
            row = [
                ["isbn", "978890000000", tokens, "token", used_at],
                ["isbn", rng.choice(matched), "-5", "token", used_at],
                ["isbn", rng.choice(matched), tokens, "page", used_at],
                ["isbn", rng.choice(matched), tokens, "token", "last tuesday"],
                ["isbn", rng.choice(matched), tokens, "token", (timezone.now() + timedelta(days=3)).isoformat()],
                ["isbn", rng.choice(matched), tokens],
            ][index % 6]  # invalid: checksum, negative, unit, instant, future, columns
        rows.append(row)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["scheme", "value", "units", "unit", "used_at"])
    writer.writerows(rows)
    return gzip.compress(text.getvalue().encode())


def upload(client: Any, content: bytes, manifest_id: str) -> dict[str, Any]:
    file = io.BytesIO(content)
    file.name = f"{manifest_id}.csv.gz"
    response = client.post(
        "/api/v1/usage-manifests",
        {"file": file, "manifest_id": manifest_id, "model": "hangul-7b", "model_version": "3"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return dict(response.json())


# --- What "the same ledger" means ---------------------------------------------------------------


def account_names() -> dict[int, tuple[str, int | None, str]]:
    return {
        pk: (kind, party, key)
        for pk, kind, party, key in Account.objects.values_list("pk", "kind", "party_id", "escrow_key")
    }


def ledger_of(manifest: UsageManifest) -> dict[str, Any]:
    """Everything the manifest did, free of its own ids: each line's outcome (``LINE_FIELDS``, with its
    account and entry named), each chunk's entry, and what it moved on each account.
    """
    names = account_names()
    prefix = f"usage:{manifest.pk}:"
    chunk_of: dict[int, str] = {}
    postings: dict[str, tuple[str, list[Any]]] = {}
    for pk, key, kind, effective_at in LedgerEntry.objects.filter(source__manifest=manifest.pk).values_list(
        "pk", "idempotency_key", "kind", "effective_at"
    ):
        assert key.startswith(prefix + "lines:"), key
        assert effective_at == manifest.created_at, key
        chunk_of[pk] = key.removeprefix(prefix)
        postings[chunk_of[pk]] = (kind, [])
    movement: dict[tuple[str, int | None, str], int] = defaultdict(int)
    for entry, account, amount in LedgerLine.objects.filter(entry__in=list(chunk_of)).values_list(
        "entry_id", "account_id", "amount_micro"
    ):
        postings[chunk_of[entry]][1].append((names[account], amount))
        movement[names[account]] += amount
    lines = []
    for values in ManifestLine.objects.filter(manifest=manifest).order_by("line_no").values(*LINE_FIELDS):
        entry = values.pop("entry_id")
        assert all(part[3] == entry for part in values["allocation"]), values
        values["allocation"] = [part[:3] for part in values["allocation"]]
        values["held_account"] = names.get(values.pop("held_account_id") or 0)
        values["chunk"] = chunk_of.get(entry or 0)
        lines.append(values)
    return {
        "lines": lines,
        "postings": {chunk: (kind, sorted(moves)) for chunk, (kind, moves) in postings.items()},
        "movement": dict(movement),
    }


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Compare two ``ledger_of`` results, naming the first differences (a full diff would be huge)."""
    assert len(got["lines"]) == len(expected["lines"])
    lines = [
        (mine["line_no"], {name: (value, theirs[name]) for name, value in mine.items() if value != theirs[name]})
        for mine, theirs in zip(got["lines"], expected["lines"], strict=True)
        if mine != theirs
    ]
    assert not lines, f"{len(lines)} lines differ from the clean run's (got, expected): {lines[:3]}"
    for part in ("postings", "movement"):
        mine, theirs = got[part], expected[part]
        keys = sorted(mine.keys() | theirs.keys(), key=str)
        differ = [(key, mine.get(key), theirs.get(key)) for key in keys if mine.get(key) != theirs.get(key)]
        assert not differ, f"{part}: {len(differ)} differ from the clean run's (got, expected): {differ[:3]}"


def chunks_of(total: int) -> set[str]:
    return {f"lines:{first}-{min(first + CHUNK - 1, total)}" for first in range(1, total + 1, CHUNK)}


def assert_every_line_once(manifest: UsageManifest) -> None:
    line_nos = list(ManifestLine.objects.filter(manifest=manifest).values_list("line_no", flat=True))
    assert len(line_nos) == len(set(line_nos)) == manifest.lines_total == manifest.lines_done == LINES
    assert set(line_nos) == set(range(1, LINES + 1))


# --- Driving the workers ----------------------------------------------------------------------


def kill_in_a_chunk(worker: subprocess.Popen[bytes], manifest_pk: int, workers: CeleryWorkers) -> int:
    """SIGKILL ``worker`` once a quarter of the manifest is done, half-way through a chunk; return the
    cursor it had committed. Fails (rather than skips) if the worker finishes first.
    """
    deadline = time.monotonic() + 120
    seen, seen_at, per_chunk = 0, 0.0, None
    while time.monotonic() < deadline:
        done, status = UsageManifest.objects.filter(pk=manifest_pk).values_list("lines_done", "status").get()
        assert worker.poll() is None, workers.log()
        assert status != ManifestStatus.FAILED, workers.log()
        assert done < LINES, "the worker finished before it could be killed: make the manifest bigger"
        if done != seen:
            now = time.monotonic()
            if seen:
                per_chunk = (now - seen_at) * CHUNK / (done - seen)
            seen, seen_at = done, now
            if per_chunk is not None and done >= LINES // 4:
                time.sleep(per_chunk / 2)
                workers.kill(worker)
                return UsageManifest.objects.get(pk=manifest_pk).lines_done
        time.sleep(0.01)
    raise AssertionError("the worker made no progress:\n" + workers.log())


def wait_processed(manifest_pk: int, workers: CeleryWorkers, name: str, deliveries: int) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = UsageManifest.objects.get(pk=manifest_pk).status
        log = workers.log(name)
        assert status != ManifestStatus.FAILED, workers.log()
        assert "Traceback" not in log, log
        assert "Retry in" not in log, log  # a transient error: a duplicate must not cause one either
        # Processed, and every delivery of the task has ended (the late ones find nothing to do).
        if status == ManifestStatus.PROCESSED and len(TASK_SUCCEEDED.findall(log)) >= deliveries:
            return
        time.sleep(0.2)
    raise AssertionError("the manifest was not finished:\n" + workers.log())


def works_and_manifest(holder: Any, holder_api: Any, other_holder: Any, staff: Any) -> bytes:
    """Tariffs, works with every kind of ownership and a refusal; a manifest that uses them all."""
    TariffFactory(kind="text", unit="token", rate_krw=Decimal("0.0005"), set_by=staff)
    TariffFactory(kind="image", unit="image", rate_krw=Decimal("2.5"), set_by=staff)
    matched = [isbn(n) for n in range(1, 6)]
    for number in matched:
        WorkFactory(holder=holder, identifiers=[("isbn", number)], verified_by=staff)
    WorkFactory(holder=holder, identifiers=[("isbn", partial := isbn(10))], share_bp=6000, verified_by=staff)
    WorkFactory(holder=other_holder, identifiers=[("doi", image := "10.5555/plate.1")], kind="image", verified_by=staff)
    WorkFactory(holder=holder, identifiers=[("isbn", unverified := isbn(20))])
    refused_work = WorkFactory(holder=holder, identifiers=[("isbn", refused := isbn(30))])
    verify_claims(refused_work, staff)
    refusal = holder_api.post(
        "/api/v1/refusals", {"scope": "work", "work": refused_work.pk, "purposes": ["train-ai"]}, format="json"
    )
    assert refusal.status_code == 201, refusal.content
    return manifest_content(
        matched=matched,
        partial=partial,
        image=image,
        unverified=unverified,
        refused=refused,
        refused_from=timezone.now(),
    )


# --- The test -------------------------------------------------------------------------------------


def test_worker_killed_mid_manifest_and_task_delivered_twice_leaves_the_ledger_of_a_clean_run(
    lab_api, holder, holder_api, other_holder, staff, settings, tmp_path: Path
):
    settings.USAGE_CHUNK_LINES = CHUNK
    with CeleryWorkers(tmp_path, USAGE_CHUNK_LINES=str(CHUNK)) as workers:
        # Both start up while the works are registered; the second waits on a queue nothing is sent to.
        first = workers.start("first", queue=QUEUE_LONG)
        workers.start("second", queue=QUEUE_LONG, queues="standby")
        with eager():
            content = works_and_manifest(holder, holder_api, other_holder, staff)

        # Through the API and Redis to the first worker, which is killed in the middle of a chunk.
        crashed_pk = upload(lab_api, content, "crashed-run")["id"]
        cursor = kill_in_a_chunk(first, crashed_pk, workers)
        crashed = UsageManifest.objects.get(pk=crashed_pk)
        assert crashed.status == ManifestStatus.PROCESSING
        assert 0 < cursor < LINES
        assert cursor % CHUNK == 0
        # The chunk it was in left nothing behind: no outcome rows and no entry beyond the cursor.
        assert ManifestLine.objects.filter(manifest=crashed).count() == cursor
        assert set(ledger_of(crashed)["postings"]) == chunks_of(cursor)

        # Its message stays unacknowledged (the visibility timeout is an hour): deliver the task again,
        # twice, to the second worker, which now takes the first one's place and receives both at once.
        workers.consume("second", QUEUE_LONG)
        assert usage_manifests_resume_stalled(older_than_minutes=0) == 1
        usage_manifest_run.delay(crashed_pk)

        # Meanwhile the clean run: the same lines under another id, processed in this process in one go.
        with eager():
            clean = UsageManifest.objects.get(pk=upload(lab_api, content, "clean-run")["id"])
        assert clean.status == ManifestStatus.PROCESSED
        assert_every_line_once(clean)
        expected = ledger_of(clean)
        outcomes = Counter(line["outcome"] for line in expected["lines"])
        assert set(outcomes) == set(Outcome.values) - {Outcome.DISPUTED_HELD, Outcome.LICENSE_REQUIRED}, outcomes
        assert set(expected["postings"]) == chunks_of(LINES)

        wait_processed(crashed_pk, workers, "second", deliveries=2)

    crashed.refresh_from_db()
    assert_every_line_once(crashed)
    got = ledger_of(crashed)
    assert set(got["postings"]) == chunks_of(LINES)  # each chunk posted once
    assert_same(got, expected)
    summaries = [lab_api.get(f"/api/v1/usage-manifests/{pk}").json()["summary"] for pk in (crashed_pk, clean.pk)]
    assert summaries[0] == summaries[1]
    # Nothing else reached the ledger: its balances are exactly two clean runs.
    assert LedgerEntry.objects.count() == 2 * len(expected["postings"])
    names = account_names()
    balances = {
        names[row["account"]]: row["total"]
        for row in LedgerLine.objects.values("account").annotate(total=Sum("amount_micro"))
        if row["total"]
    }
    assert balances == {account: 2 * amount for account, amount in expected["movement"].items() if amount}
    call_command("ledger_check")
