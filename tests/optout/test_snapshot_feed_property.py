"""Snapshot S1 plus the change feed from S1's cursor equals snapshot S2, on random histories.

The histories are the status projection's own stateful machine (``test_status_projection.ProjectionMachine``: works
registered, claims filed, verified, reviewed and rejected, refusals of every scope filed and withdrawn now or later,
domains verified, regimes set now or later, time moving on), driven through the services. Its invariants are the
projection's and run in its own test; here a rule takes a snapshot (built as ``manage.py snapshot_create`` builds
one) and, from the second on, requires that the previous snapshot, its ``scheduled`` file and the feed read from
``GET /api/v1/changes?after=<its cursor>`` up to the new cursor, applied at the new instant by the README's rule,
give exactly what the new snapshot lists: keys, URL prefixes and kinds, per purpose, with their status.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from core.actors import Actor
from core.dates import rfc3339
from optout.services import refusal_file, refusal_withdraw, regime_set
from optout.snapshots.services import snapshot_create_now
from registry.services import claim_verify, work_draft_build, work_register
from tests.factories import ApiKeyFactory, HolderFactory, LabFactory, StaffUserFactory, isbn
from tests.helpers import key_client, streamed
from tests.optout.test_status_projection import DELAYS, START, ProjectionMachine

pytestmark = pytest.mark.django_db

NOT_PERMITTED = {"refused", "license_required"}
DEFAULTS = {"key": "unregistered", "url_prefix": "permitted", "kind": "permitted"}

Subject = tuple[str, str, str]  # (subject_type, subject, purpose)


class Snapshot:
    """What a lab holds after downloading a snapshot through the API."""

    def __init__(self, client: Any, manifest: dict[str, Any]) -> None:
        self.as_of = instant(manifest["as_of"])
        self.cursor: int = manifest["cursor"]
        files = {}
        for entry in manifest["files"]:
            response = client.get(f"/api/v1/snapshots/{manifest['snapshot_id']}/files/{entry['name']}")
            assert response.status_code == 200, response.content
            files[entry["name"]] = streamed(response)
            assert hashlib.sha256(files[entry["name"]]).hexdigest() == entry["sha256"]
        self.listed: dict[Subject, str] = {}
        for row in _jsonl(files["keys.jsonl.gz"]):
            self.listed[("key", row["key"], row["purpose"])] = row["status"]
        for row in _jsonl(files["url-prefixes.jsonl.gz"]):
            self.listed[("url_prefix", row["prefix"], row["purpose"])] = "refused"
        for purpose, kinds in json.loads(files["kinds.json"]).items():
            for kind in kinds:
                self.listed[("kind", kind, purpose)] = "license_required"
        self.scheduled: list[dict[str, Any]] = _jsonl(files["scheduled.jsonl.gz"])
        for purpose in ("train-ai", "train-genai"):
            keys = [subject for (kind, subject, p) in self.listed if kind == "key" and p == purpose]
            hashes = sorted({int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") for k in keys})
            assert files[f"keys-{purpose}.bin"] == b"".join(h.to_bytes(8, "big") for h in hashes)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines()]


def feed(client: Any, *, after: int, to: int) -> list[dict[str, Any]]:
    """The changes ``(after, to]`` read page by page, as a lab reads the feed."""
    changes: list[dict[str, Any]] = []
    while True:
        page = client.get("/api/v1/changes", {"after": after, "limit": 7})
        assert page.status_code == 200, page.content
        body = page.json()
        changes += [c for c in body["changes"] if c["cursor"] <= to]
        if not body["has_more"] or body["next_cursor"] >= to:
            return changes
        after = body["next_cursor"]


def applied(snapshot: Snapshot, changes: list[dict[str, Any]], at: datetime) -> dict[Subject, str]:
    """The README's rule: per subject and purpose, the change with the greatest (effective_at, cursor) at or before
    ``at`` decides; without one, the snapshot's status (listed, or the default: may train)."""
    decided: dict[Subject, tuple[datetime, int, str]] = {}
    for change in [*snapshot.scheduled, *changes]:
        effective_at = instant(change["effective_at"])
        if effective_at > at:
            continue
        subject = (change["subject_type"], change["subject"], change["purpose"])
        order = (effective_at, change["cursor"])
        if subject not in decided or order > decided[subject][:2]:
            decided[subject] = (*order, change["new_status"])
    status = dict(snapshot.listed)
    for subject, (_at, _cursor, new_status) in decided.items():
        status[subject] = new_status
    return {subject: value for subject, value in status.items() if value in NOT_PERMITTED}


class SnapshotFeedMachine(ProjectionMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lab = key_client(ApiKeyFactory(party=LabFactory(), scopes=["lookup"]).raw)
        self.earlier: list[Snapshot] = []

    # The projection's invariants are its own test's; this machine checks snapshots only.
    def the_projection_equals_the_events(self) -> None:
        pass

    def lookups_now_answer_as_the_event_path(self) -> None:
        pass

    def the_feed_gives_every_status_now(self) -> None:
        pass

    @rule(regime=st.sampled_from(["use_first", "license_required"]), delay=DELAYS)
    def set_regime(self, regime: str, delay: timedelta | None) -> None:
        # A second regime at the same instant is refused (regime_instant_taken); a second later it is a regime
        # change like any other.
        self.clock.shift(timedelta(seconds=1))
        regime_set(actor=self.staff, kind="text", regime=regime, effective_from=self._at(delay))

    @rule()
    def take_snapshot(self) -> None:
        built = snapshot_create_now(actor=Actor.system())
        assert built.status == "ready", (built.failure_code, built.failure_detail)
        response = self.lab.get(f"/api/v1/snapshots/{built.snapshot_id}")
        assert response.status_code == 200
        current = Snapshot(self.lab, response.json())
        assert rfc3339(current.as_of) == response.json()["as_of"]
        # Every earlier snapshot, not only the last: the longer the span, the more scheduled changes fall due in it.
        expected = {s: v for s, v in current.listed.items() if v in NOT_PERMITTED}
        for earlier in self.earlier:
            changes = feed(self.lab, after=earlier.cursor, to=current.cursor)
            assert [c["cursor"] for c in changes] == sorted({c["cursor"] for c in changes})
            assert applied(earlier, changes, current.as_of) == expected
        self.earlier.append(current)


def test_a_snapshot_plus_the_feed_is_the_next_snapshot(db: Any) -> None:
    if connection.vendor == "postgresql":
        # The machine travels in time and rolls each history back in one transaction; on PostgreSQL instants are
        # the database's clock and a build's read point needs a transaction of its own (see the test below).
        pytest.skip("random histories run on SQLite; PostgreSQL runs the scenario below with its own clock")
    run_state_machine_as_test(
        SnapshotFeedMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=24,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def scenario(lab: Any, *, start: datetime, unit: timedelta, move_to: Any) -> list[Snapshot]:
    """A refusal filed for ``unit`` later is in S1's scheduled file only; its withdrawal, filed after S1 for three
    units later, only in the feed. S2 is taken after two units, S3 after four."""
    staff = Actor(user=StaffUserFactory())
    holder = HolderFactory()
    key = ("key", f"isbn:{isbn(7)}", "train-ai")
    draft = work_draft_build(title="Spring", kind="text", identifiers=[{"scheme": "isbn", "value": isbn(7)}])
    work, claim = work_register(actor=Actor(party=holder), holder=holder, draft=draft)
    claim_verify(actor=staff, claim=claim)
    refusal = refusal_file(
        actor=Actor(party=holder),
        holder=holder,
        scope="work",
        purposes=["train-ai"],
        work=work,
        effective_from=start + unit,
    )
    snapshots = [download(lab)]
    assert key not in snapshots[0].listed
    assert {(c["subject"], c["new_status"]) for c in snapshots[0].scheduled} == {(key[1], "refused")}
    refusal_withdraw(actor=Actor(party=holder), refusal=refusal, effective_at=start + 3 * unit)
    move_to(start + 2 * unit)
    snapshots.append(download(lab))
    assert snapshots[1].listed[key] == "refused"
    move_to(start + 4 * unit)
    snapshots.append(download(lab))
    assert key not in snapshots[2].listed
    for index, earlier in enumerate(snapshots):
        for later in snapshots[index + 1 :]:
            changes = feed(lab, after=earlier.cursor, to=later.cursor)
            expected = {s: v for s, v in later.listed.items() if v in NOT_PERMITTED}
            assert applied(earlier, changes, later.as_of) == expected
    return snapshots


def test_future_refusal_and_withdrawal_reach_later_snapshots_through_scheduled_and_feed(db: Any) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("travels in time: on PostgreSQL the next test runs this scenario with the database's clock")
    lab = key_client(ApiKeyFactory(party=LabFactory(), scopes=["lookup"]).raw)
    with time_machine.travel(START, tick=False) as clock:
        scenario(lab, start=START, unit=timedelta(hours=1), move_to=clock.move_to)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_on_postgresql_with_its_clock_and_the_writers_lock(db: Any) -> None:
    """On PostgreSQL instants are the database's clock and the read point takes the writers' lock: no time travel
    here, the units are seconds of real time."""
    lab = key_client(ApiKeyFactory(party=LabFactory(), scopes=["lookup"]).raw)

    def move_to(moment: datetime) -> None:
        time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)

    scenario(lab, start=timezone.now(), unit=timedelta(seconds=1), move_to=move_to)


def download(lab: Any) -> Snapshot:
    built = snapshot_create_now(actor=Actor.system())
    return Snapshot(lab, lab.get(f"/api/v1/snapshots/{built.snapshot_id}").json())
