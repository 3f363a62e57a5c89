"""A stateful property test of usage manifests (ledger invariants 1 and 3-6 of PRODUCT.md): random
manifests, claims, verifications, rejections, refusals, withdrawals, tariffs and re-pricing, with tasks
that run twice, crash between or inside chunks and resume later, on either processing engine.

The world is small: one lab, three holders, six ISBNs (two registered at the start, the others perhaps
later). ``django.utils.timezone.now`` is a fake clock that moves only when a rule lets a little time pass
before an event, so manifest lines can be used exactly at, a microsecond before or after, the instants
refusals, withdrawals, verifications and tariffs took effect (they cannot be dated in the past).

A model of the world (claims, refusals, tariffs) predicts each line's outcome, tariff and amount, and how
much of it went to owners, escrow and violations, at the moment the line is processed or re-priced. After
every step the invariants compare the database with the model and with itself.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from compensation.errors import ManifestConflict
from compensation.ledger import services as ledger
from compensation.ledger.allocation import allocate_largest_remainder
from compensation.ledger.escrow import escrow_release_for_work
from compensation.models import (
    ESCROW_ACCOUNT_KINDS,
    MANIFEST_JOB,
    AccountKind,
    EntryKind,
    LedgerEntry,
    ManifestLine,
    ManifestStatus,
    Outcome,
    UsageManifest,
)
from compensation.usage import services as usage
from compensation.usage.manifests import Record, line_parse
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from core.errors import InvalidInput, InvalidState, NotPermitted
from core.jobs import job_chunk_commit
from core.money import price_micro
from optout.models import Refusal
from optout.services import refusal_file, refusal_withdraw
from registry.errors import Overclaim
from registry.models import OwnershipClaim, Party, PartyKind, Work
from registry.services import claim_accept_for_review, claim_file, claim_reject, claim_verify
from tests.compensation.helpers import deferred_guards_check
from tests.factories import WorkFactory

pytestmark = pytest.mark.django_db

FULL = 10_000
# Where the fake clock starts: far enough in the past that it never passes the real clock, which stamps
# each manifest's ``created_at`` (``used_at`` after it is "in the future", an invalid line).
START = (datetime.now(tz=UTC) - timedelta(days=120)).replace(microsecond=0)
STAFF = Actor.system()
PURPOSES = ("train-ai", "train-genai")
SHARES = st.sampled_from([FULL, FULL, 5000, 2500, 3333, 7000, 1])
TICK = timedelta(microseconds=1)
# Processing may run set-based in SQL or line by line in Python; a manifest may even be resumed by the
# other. None is the default for the database.
ENGINES: list[str | None] = [None]
if "engine" in inspect.signature(usage.usage_manifest_process).parameters:
    ENGINES += ["python", "sql"] if connection.vendor == "postgresql" else ["python"]


def _isbn(n: int) -> str:
    body = f"97889{n:07d}"
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return body + str(check)


ISBNS = [_isbn(n) for n in range(1, 7)]
BAD_ISBN = ISBNS[0][:-1] + str((int(ISBNS[0][-1]) + 1) % 10)  # wrong check digit


class Crash(BaseException):
    """A worker killed mid-task: no ``except Exception`` gets to record it (an exception is a failure)."""


# --- The model ------------------------------------------------------------------------------------


@dataclass
class ClaimM:
    pk: int
    work: int
    holder: int
    share: int
    status: str = "pending"
    verified_at: datetime | None = None
    ever_verified: bool = False


@dataclass
class WorkM:
    pk: int
    kind: str
    keys: tuple[str, ...]


@dataclass
class RefusalM:
    pk: int
    holder: int
    scope: str
    purpose: str
    work: int | None
    starts: datetime
    withdrawn: datetime | None = None

    def refuses(self, purpose: str) -> bool:
        return self.purpose == "train-ai" or purpose == "train-genai"

    def in_force(self, at: datetime) -> bool:
        return self.starts <= at and (self.withdrawn is None or self.withdrawn > at)


@dataclass
class TariffM:
    pk: int
    kind: str
    unit: str
    rate: Decimal
    starts: datetime


@dataclass(frozen=True)
class LineM:
    line_no: int
    key: str | None  # "isbn:978…" when the line is valid
    units: Decimal | None
    unit: str
    used_at: datetime | None
    duplicate: bool = False

    @property
    def valid(self) -> bool:
        return self.key is not None


@dataclass
class Expected:
    outcome: str
    kind: str = ""
    work: int | None = None
    refusal: int | None = None
    tariff: int | None = None
    amount: int | None = None
    paid: int = 0
    held: int = 0
    violation: int = 0


@dataclass
class ManifestM:
    pk: int
    purpose: str
    body: dict[str, Any]
    lines: list[LineM]
    expected: dict[int, Expected] = field(default_factory=dict)
    finished: bool = False


@dataclass(frozen=True)
class Row:
    """A ``ManifestLine`` as the invariants read it."""

    manifest: int
    line_no: int
    key: str
    unit: str
    used_at: datetime | None
    outcome: str
    kind: str
    work: int | None
    refusal: int | None
    tariff: int | None
    amount: int | None
    paid: int
    held: int
    violation: int
    released: int
    held_account: int | None
    open_bp: int
    hold_open: bool
    allocation: list[list[Any]]
    entry: int | None


_ROWS = """
SELECT manifest_id, line_no, key, unit, used_at, outcome, kind, work_id, refusal_id, tariff_id, amount_micro,
       paid_micro, held_micro, violation_micro, released_micro, held_account_id, open_bp, hold_open, allocation,
       entry_id
  FROM compensation_manifestline ORDER BY manifest_id, line_no
"""


def _coin(data: Any) -> bool:
    """A drawn coin toss (as ``data.draw(st.booleans())``, typed for use inside a condition)."""
    return bool(data.draw(st.booleans()))


def _rows() -> list[Row]:
    """Every outcome row, in the order of ``Row``'s fields. Raw SQL: the invariants read them after every
    step, and building the query with the ORM costs more than running it."""
    rows = []
    for values in _query(_ROWS):
        allocation = values[18]
        if isinstance(allocation, str):  # jsonb comes back as text, for the ORM to decode
            allocation = json.loads(allocation)
        fields = [*values[:4], _aware(values[4]), *values[5:18], allocation, values[19]]
        rows.append(Row(*fields))
    return rows


def _aware(value: datetime | None) -> datetime | None:
    """A datetime read by a raw cursor, made aware as the ORM would: PostgreSQL's driver answers aware
    datetimes, SQLite's naive ones in the connection's time zone (UTC unless DATABASES sets another)."""
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value, connection.timezone)


def _query(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _balances() -> dict[tuple[str, int | None, str, int], int]:
    """(kind, party, escrow key, account id) -> balance, for every account with lines."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.kind, a.party_id, a.escrow_key, a.id, SUM(l.amount_micro)"
            " FROM compensation_ledgerline l JOIN compensation_account a ON a.id = l.account_id"
            " GROUP BY a.id, a.kind, a.party_id, a.escrow_key"
        )
        return {(kind, party, key, pk): int(total) for kind, party, key, pk, total in cursor.fetchall()}


# --- The machine ----------------------------------------------------------------------------------


class UsageMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in its own savepoint, rolled back in teardown(); the clock is ours meanwhile.
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.now = START
        self.clock = mock.patch("django.utils.timezone.now", new=self._clock_now)
        self.clock.start()
        try:
            self._world()
        except BaseException:
            self.teardown()
            raise

    def _world(self) -> None:
        self.lab = Party.objects.create(kind=PartyKind.LAB, name="Lab")
        self.lab_actor = Actor(party=self.lab)
        self.holders = [Party.objects.create(kind=PartyKind.HOLDER, name=f"Holder {n}") for n in range(3)]
        self.works: dict[int, WorkM] = {}
        self.work_by_key: dict[str, WorkM] = {}
        self.claims: dict[int, ClaimM] = {}
        self.refusals: dict[int, RefusalM] = {}
        self.tariffs: list[TariffM] = []
        self.manifests: list[ManifestM] = []
        self.counter = itertools.count(1)
        # Uses before START - 30 days are unpriced until a tariff is backdated before this one.
        self._tariff_add("text", "token", "0.0005", START - timedelta(days=30))
        first = self._register(self.holders[0], [ISBNS[0]], FULL, "text")
        self._verify(self.claims[first])
        self._register(self.holders[1], [ISBNS[1]], 5000, "text")
        # Two refusals from START + 30 min: the verified owner's (for generative training only) decides at
        # once; the unverified owner's catalogue refusal decides only from when (if) they are verified.
        self.now += timedelta(minutes=30)
        self._refuse(self.holders[0], "work", ["train-genai"], next(iter(self.works)))
        self._refuse(self.holders[1], "catalogue", ["train-ai"], None)
        # Something held in every example: for an owner verified, one unverified, four not registered,
        # and a use from before any tariff.
        self.now += timedelta(hours=2)
        used_at = START + timedelta(hours=1)
        first_lines = [
            (
                {"scheme": "isbn", "value": isbn, "units": 1000 * n, "unit": "token", "used_at": used_at.isoformat()},
                LineM(n, f"isbn:{isbn}", Decimal(1000 * n), "token", used_at),
            )
            for n, isbn in enumerate(ISBNS, start=1)
        ]
        early = START - timedelta(days=40)
        first_lines.append(
            (
                {"scheme": "isbn", "value": ISBNS[2], "units": 7, "unit": "token", "used_at": early.isoformat()},
                LineM(len(first_lines) + 1, f"isbn:{ISBNS[2]}", Decimal(7), "token", early),
            )
        )
        self._process(self._submit(first_lines, "train-genai"), chunk=3, crash=None)

    def _clock_now(self) -> datetime:
        return self.now

    def teardown(self) -> None:
        self.clock.stop()
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    # --- what the model predicts --------------------------------------------------------------

    def _claims_of(self, work_pk: int) -> list[ClaimM]:
        return [c for c in self.claims.values() if c.work == work_pk]

    def _disputed(self, work_pk: int) -> bool:
        # Only verified claims and claims staff accepted for review count: a filed claim changes nothing.
        return sum(c.share for c in self._claims_of(work_pk) if c.status in ("verified", "in_review")) > FULL

    def _refusal_at(self, work: WorkM | None, at: datetime, purpose: str) -> int | None:
        """The refusal deciding a use of ``work`` at ``at``: in force then, filed by a holder whose claim
        (still standing) had been verified by then; the earliest effective, then the oldest."""
        if work is None:
            return None
        claims = self._claims_of(work.pk)
        live = {c.holder for c in claims if c.status != "rejected"}
        verified_then = {
            c.holder for c in claims if c.status == "verified" and c.verified_at is not None and c.verified_at <= at
        }
        deciding = [
            (r.starts, r.pk)
            for r in self.refusals.values()
            if r.refuses(purpose)
            and r.in_force(at)
            and r.holder in verified_then
            and ((r.scope == "work" and r.work == work.pk) or (r.scope == "catalogue" and r.holder in live))
        ]
        return min(deciding)[1] if deciding else None

    def _tariff_at(self, kind: str, unit: str, at: datetime) -> TariffM | None:
        in_force = [t for t in self.tariffs if t.kind == kind and t.unit == unit and t.starts <= at]
        return max(in_force, key=lambda t: t.starts) if in_force else None

    def _decide(self, line: LineM, purpose: str) -> Expected:
        if not line.valid:
            return Expected(Outcome.INVALID)
        if line.duplicate:
            return Expected(Outcome.DUPLICATE)
        assert line.key is not None
        assert line.used_at is not None
        assert line.units is not None
        work = self.work_by_key.get(line.key)
        refusal = self._refusal_at(work, line.used_at, purpose)
        expected = Expected(
            Outcome.REFUSED_AT_USE if refusal else Outcome.UNPRICED,
            kind=work.kind if work else "text",
            work=work.pk if work else None,
            refusal=refusal,
        )
        tariff = self._tariff_at(expected.kind, line.unit, line.used_at)
        if tariff is None:
            return expected
        amount = price_micro(units=line.units, rate=tariff.rate)
        expected.tariff, expected.amount = tariff.pk, amount
        if refusal:
            expected.violation = amount
            return expected
        verified = [c.share for c in self._claims_of(work.pk) if c.status == "verified"] if work else []
        if work is None:
            expected.outcome, expected.held = Outcome.UNMATCHED_HELD, amount
        elif self._disputed(work.pk):
            expected.outcome, expected.held = Outcome.DISPUTED_HELD, amount
        elif not verified:
            expected.outcome, expected.held = Outcome.SHARE_UNCLAIMED, amount
        else:
            expected.outcome = Outcome.MATCHED
            covered = sum(verified)
            if covered < FULL:
                # The uncovered part's remainder loses every tie (it comes last), so it does not depend on
                # the order the claims are loaded in; who of the owners gets a tied unit may.
                expected.held = allocate_largest_remainder(total=amount, weights=[*verified, FULL - covered])[-1]
            expected.paid = amount - expected.held
        return expected

    # --- doing things, and telling the model ------------------------------------------------

    def _tariff_add(self, kind: str, unit: str, rate: str, starts: datetime | None) -> TariffM:
        tariff = tariff_set(actor=STAFF, kind=kind, unit=unit, rate_krw=Decimal(rate), effective_from=starts)
        model = TariffM(tariff.pk, kind, unit, tariff.rate_krw, tariff.effective_from)
        self.tariffs.append(model)
        return model

    def _register(self, holder: Party, isbns: list[str], share: int, kind: str) -> int:
        work = WorkFactory(holder=holder, identifiers=[*(("isbn", isbn) for isbn in isbns)], kind=kind, share_bp=share)
        model = WorkM(work.pk, kind, tuple(f"isbn:{isbn}" for isbn in isbns))
        self.works[work.pk] = model
        for key in model.keys:
            self.work_by_key[key] = model
        (claim,) = work.claims.all()
        self.claims[claim.pk] = ClaimM(claim.pk, work.pk, holder.pk, share)
        # The registration's task: lines recorded unpriced for these identifiers are decided again now, as
        # the work's kind; those a tariff covers now are priced, the others wait for one of that kind.
        priced = 0
        for manifest in self.manifests:
            for line in manifest.lines:
                old = manifest.expected.get(line.line_no)
                if (
                    old is None
                    or line.key not in model.keys
                    or old.tariff is not None
                    or old.outcome not in (Outcome.UNPRICED, Outcome.REFUSED_AT_USE)
                ):
                    continue
                new = self._decide(line, manifest.purpose)
                manifest.expected[line.line_no] = new
                priced += new.amount is not None
        assert usage.usage_reprice_keys(keys=model.keys) == priced
        return int(claim.pk)

    def _refuse(self, holder: Party, scope: str, purposes: list[str], work_pk: int | None) -> None:
        work = Work.objects.get(pk=work_pk) if work_pk is not None else None
        refusal = refusal_file(actor=Actor(party=holder), holder=holder, scope=scope, purposes=purposes, work=work)
        assert refusal.effective_from == self.now
        purpose = "train-ai" if "train-ai" in purposes else "train-genai"
        self.refusals[refusal.pk] = RefusalM(refusal.pk, holder.pk, scope, purpose, work_pk, self.now)

    def _verify(self, claim: ClaimM) -> None:
        claim_verify(actor=STAFF, claim=_claim(claim.pk))
        claim.status, claim.verified_at, claim.ever_verified = "verified", self.now, True

    def _release(self, work_pk: int, data: st.DataObject) -> None:
        """The release task for a work, maybe delivered twice, maybe in small batches."""
        batch = data.draw(st.sampled_from([1, 2, 5000]))
        released = [escrow_release_for_work(work_id=work_pk, batch=batch) for _ in range(data.draw(st.integers(1, 2)))]
        assert all(amount == 0 for amount in released[1:]), "a duplicated release task moved money again"

    def _tick(self, data: st.DataObject) -> None:
        """Let a little time pass before an event, mostly: events at distinct instants leave gaps between
        them for uses to fall into."""
        self.now += data.draw(st.sampled_from([TICK, timedelta(minutes=10), timedelta(0), timedelta(hours=1)]))

    def _draw_claim(self, data: st.DataObject, *statuses: str) -> ClaimM:
        """Mostly a claim in one of ``statuses``, sometimes any (to see the others refused)."""
        fitting = sorted(pk for pk, c in self.claims.items() if c.status in statuses)
        if not fitting or data.draw(st.integers(min_value=0, max_value=5)) == 0:
            fitting = sorted(self.claims)
        return self.claims[data.draw(st.sampled_from(fitting))]

    def _instants(self) -> list[datetime]:
        """Instants worth using things at: every event the model knows of, and a few fixed ones."""
        moments = {START - timedelta(days=40), START - timedelta(days=1), START, self.now}
        moments.update(t.starts for t in self.tariffs)
        moments.update(c.verified_at for c in self.claims.values() if c.verified_at is not None)
        for refusal in self.refusals.values():
            moments.add(refusal.starts)
            if refusal.withdrawn is not None:
                moments.add(refusal.withdrawn)
        # Latest first: Hypothesis favours the first elements, and the early ones are the unpriced past.
        return sorted((m for m in moments if m <= self.now), reverse=True)

    def _draw_line(
        self, data: st.DataObject, line_no: int, earlier: list[tuple[dict[str, Any], LineM]], *, recent: bool
    ) -> Any:
        """A line: valid, a repeat of an earlier one, or invalid. ``recent``: a valid use of a registered
        work at an instant eligibility turns on."""
        what = "valid" if recent else data.draw(st.sampled_from(["valid"] * 6 + ["duplicate"] * 2 + ["invalid"] * 2))
        if what == "duplicate" and earlier:
            fields, line = data.draw(st.sampled_from(earlier))
            fields = dict(fields)
            if isinstance(fields["units"], int):
                fields["units"] = f"{fields['units']}.000"  # the same number, spelt differently
            if data.draw(st.booleans()):
                fields["value"] = fields["value"].replace("-", "")
            return fields, LineM(line_no, line.key, line.units, line.unit, line.used_at)
        instants = self._instants()
        registered = [key.removeprefix("isbn:") for key in self.work_by_key]
        if recent:
            # Exactly at, or a microsecond around, an instant eligibility turns on (a refusal filed or
            # withdrawn, an owner verified); of a work a refusal names, or one a refusing holder claims.
            turning = sorted(
                {self.now}
                | {r.starts for r in self.refusals.values()}
                | {r.withdrawn for r in self.refusals.values() if r.withdrawn is not None}
                | {c.verified_at for c in self.claims.values() if c.verified_at is not None},
                reverse=True,
            )
            used_at = data.draw(st.sampled_from(turning)) + data.draw(st.sampled_from([timedelta(0), -TICK, TICK]))
            refusing = {r.holder for r in self.refusals.values()}
            touched = {r.work for r in self.refusals.values()} | {
                c.work for c in self.claims.values() if c.holder in refusing
            }
            isbn = data.draw(
                st.sampled_from(
                    [key.removeprefix("isbn:") for key, work in self.work_by_key.items() if work.pk in touched]
                    or registered
                )
            )
        else:
            used_at = data.draw(st.sampled_from(instants)) + data.draw(
                st.sampled_from([timedelta(0), timedelta(0), -TICK, TICK, -timedelta(hours=1), timedelta(hours=1)])
            )
            # Registered works twice as often: their lines are the ones refusals, claims and disputes decide.
            isbn = data.draw(st.sampled_from(registered + ISBNS))
        used_at = min(used_at, self.now)
        units: int | str = data.draw(
            st.one_of(
                st.integers(min_value=1, max_value=10**6),
                st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**5), places=6).map(str),
            )
        )
        unit = data.draw(st.sampled_from(["token", "token", "second", "image"]))
        value = isbn if data.draw(st.booleans()) else f"{isbn[:3]}-{isbn[3:5]}-{isbn[5:]}"
        fields = {"scheme": "isbn", "value": value, "units": units, "unit": unit, "used_at": used_at.isoformat()}
        if what == "invalid":
            broken = data.draw(st.sampled_from(["isbn", "negative", "zero", "unit", "future", "date", "places"]))
            breakage: dict[str, dict[str, Any]] = {
                "isbn": {"value": BAD_ISBN},
                "negative": {"units": -5},
                "zero": {"units": "0"},
                "unit": {"unit": "page"},
                # After the manifest was received (on the real clock, ahead of ours).
                "future": {"used_at": (datetime.now(tz=UTC) + timedelta(days=2)).isoformat()},
                "date": {"used_at": "yesterday"},
                "places": {"units": "0.0000001"},
            }
            fields.update(breakage[broken])
            return fields, LineM(line_no, None, None, "", None)
        return fields, LineM(line_no, f"isbn:{isbn}", Decimal(str(units)), unit, used_at)

    def _submit(self, drawn: list[tuple[dict[str, Any], LineM]], purpose: str) -> ManifestM:
        """Submit the lines; the model marks the repeats of an earlier line of the manifest."""
        seen: set[tuple[Any, ...]] = set()
        lines: list[LineM] = []
        for _fields, line in drawn:
            if line.valid:
                assert line.units is not None
                dedupe = (line.key, line.units.normalize(), line.unit, line.used_at)
                if dedupe in seen:
                    line = LineM(line.line_no, line.key, line.units, line.unit, line.used_at, duplicate=True)
                seen.add(dedupe)
            lines.append(line)
        body = {
            "manifest_id": f"run-{next(self.counter)}",
            "model": "hangul-7b",
            "purpose": purpose,
            "lines": [fields for fields, _line in drawn],
        }
        created, is_new = usage.usage_manifest_submit_json(actor=self.lab_actor, data=body)
        assert is_new
        assert created.status == ManifestStatus.RECEIVED
        assert created.lines_total == len(drawn)
        manifest = ManifestM(created.pk, purpose, body, lines)
        self.manifests.append(manifest)
        return manifest

    def _process(
        self, manifest: ManifestM, *, chunk: int | None, crash: tuple[str, int] | None, engine: str | None = None
    ) -> None:
        """Run the processing task (resuming, or as a duplicate); check the cursor; decide what it did."""
        before = UsageManifest.objects.get(pk=manifest.pk)
        size = chunk or django_settings.USAGE_CHUNK_LINES
        running = before.status in (ManifestStatus.RECEIVED, ManifestStatus.PROCESSING)
        chunks = math.ceil((before.lines_total - before.lines_done) / size) if running else 0
        crashed = False
        with contextlib.ExitStack() as stack:
            if chunk is not None:
                stack.enter_context(override_settings(USAGE_CHUNK_LINES=chunk))
            if crash is not None:
                stack.enter_context(_crashing(*crash))
            try:
                usage.usage_manifest_process(manifest_id=manifest.pk, **({"engine": engine} if engine else {}))
            except Crash:
                crashed = True
        after = UsageManifest.objects.get(pk=manifest.pk)
        if crash is None or crash[0] == "before_chunk":
            assert crashed == (crash is not None and crash[1] <= chunks)
        if crashed:
            assert crash is not None
            assert after.status == ManifestStatus.PROCESSING
            # What committed before the crash stays; the chunk that crashed left nothing.
            assert (after.lines_done - before.lines_done) % size == 0
            assert after.lines_done < after.lines_total
            if crash[0] == "before_chunk":
                assert after.lines_done == before.lines_done + (crash[1] - 1) * size
        else:
            assert after.status == ManifestStatus.PROCESSED
            assert after.lines_done == after.lines_total
            manifest.finished = True
        # The lines committed by this run were decided now, in the world as it is.
        for line in manifest.lines[before.lines_done : after.lines_done]:
            manifest.expected[line.line_no] = self._decide(line, manifest.purpose)

    # --- rules --------------------------------------------------------------------------------
    # Rules draw most of what they need from ``data``: Hypothesis tries rules with fewer arguments first,
    # so the ones whose order matters most (manifests, refusals, verifications) take one argument and the
    # others two.

    @rule(data=st.data())
    def submit_manifest(self, data: st.DataObject) -> None:
        """A manifest of random lines, processed cleanly, in small chunks, twice, or crashing midway (and
        resumed at once, or by a later step in a world that may have changed meanwhile)."""
        mode = data.draw(st.sampled_from(["clean", "chunked", "twice", "crash", "crash_inside", "later"]))
        self._submit_and_process(data, mode, recent=False)

    @rule(data=st.data())
    def report_recent_uses(self, data: st.DataObject) -> None:
        """A manifest of uses of registered works at, or a microsecond around, the instants refusals were
        filed or withdrawn and owners verified: the lines whose eligibility turns on an instant."""
        self._submit_and_process(data, data.draw(st.sampled_from(["clean", "chunked", "crash_inside"])), recent=True)

    def _submit_and_process(self, data: st.DataObject, mode: str, *, recent: bool) -> None:
        self._tick(data)
        purpose = data.draw(st.sampled_from(PURPOSES))
        chunk = data.draw(st.sampled_from([2, 3, 1]))
        engine = data.draw(st.sampled_from(ENGINES))
        count = data.draw(st.integers(min_value=1, max_value=10))
        drawn: list[tuple[dict[str, Any], LineM]] = []
        for line_no in range(1, count + 1):
            drawn.append(self._draw_line(data, line_no, [d for d in drawn if d[1].valid], recent=recent))
        manifest = self._submit(drawn, purpose)
        if mode == "later":
            return
        if mode in ("crash", "crash_inside"):
            where = "before_chunk" if mode == "crash" else "inside_chunk"
            self._process(manifest, chunk=chunk, crash=(where, data.draw(st.integers(1, 3))), engine=engine)
            if not data.draw(st.booleans()):
                return  # a later step resumes it, in a world that may have changed
        self._process(manifest, chunk=chunk if mode != "clean" else None, crash=None, engine=engine)
        if mode == "twice":
            self._process(manifest, chunk=None, crash=None, engine=data.draw(st.sampled_from(ENGINES)))

    @rule(data=st.data(), what=st.sampled_from(["task", "task", "stale_worker", "resubmitted", "conflict"]))
    def run_manifest_task_again(self, data: st.DataObject, what: str) -> None:
        """A redelivered or resumed task, or a stale worker committing a chunk another already committed; or
        the lab sending the manifest again (the same: the first one; other content: a conflict)."""
        if not self.manifests:
            return
        manifest = data.draw(st.sampled_from(self.manifests))
        if what == "resubmitted":
            again, is_new = usage.usage_manifest_submit_json(actor=self.lab_actor, data=dict(manifest.body))
            assert not is_new
            assert again.pk == manifest.pk
            return
        if what == "conflict":
            with pytest.raises(ManifestConflict):
                usage.usage_manifest_submit_json(actor=self.lab_actor, data={**manifest.body, "model": "another"})
            return
        current = UsageManifest.objects.get(pk=manifest.pk)
        if what == "stale_worker" and current.lines_done:
            before = ManifestLine.objects.count(), LedgerEntry.objects.count()
            assert not _stale_chunk_commit(current, manifest.body["lines"][0])
            assert (ManifestLine.objects.count(), LedgerEntry.objects.count()) == before
        chunk = data.draw(st.sampled_from([None, 1, 2]))
        self._process(manifest, chunk=chunk, crash=None, engine=data.draw(st.sampled_from(ENGINES)))

    @rule(data=st.data(), kind=st.sampled_from(["text", "text", "text", "image"]))
    def register_work(self, data: st.DataObject, kind: str) -> None:
        """A holder registers a work (with a pending claim) for one or two ISBNs nobody registered yet."""
        free = [isbn for isbn in ISBNS if f"isbn:{isbn}" not in self.work_by_key]
        if not free:
            return
        isbns = [data.draw(st.sampled_from(free))]
        if len(free) > 1 and data.draw(st.booleans()):
            isbns.append(data.draw(st.sampled_from([i for i in free if i != isbns[0]])))
        holder = data.draw(st.sampled_from(self.holders))
        self._register(holder, isbns, data.draw(SHARES), kind)

    @rule(data=st.data(), share=SHARES)
    def file_claim(self, data: st.DataObject, share: int) -> None:
        """A holder claims a share of a work (pending, it changes nothing until staff accept it for review)."""
        work = data.draw(st.sampled_from(sorted(self.works)))
        party = data.draw(st.sampled_from(self.holders))
        actor = Actor(party=party)
        if any(c.holder == party.pk and c.status != "rejected" for c in self._claims_of(work)):
            with pytest.raises(InvalidState):
                claim_file(actor=actor, holder=party, work=Work.objects.get(pk=work), share_bp=share)
            return
        claim = claim_file(actor=actor, holder=party, work=Work.objects.get(pk=work), share_bp=share)
        self.claims[claim.pk] = ClaimM(claim.pk, work, party.pk, share)

    @rule(data=st.data())
    def verify_claim(self, data: st.DataObject) -> None:
        """Staff verify a claim; the release task runs (maybe delivered twice)."""
        self._tick(data)
        claim = self._draw_claim(data, "pending", "in_review")
        refusing = {r.holder for r in self.refusals.values()}
        late = sorted(
            pk for pk, c in self.claims.items() if c.status in ("pending", "in_review") and c.holder in refusing
        )
        if late and _coin(data):
            # The owner of a refusal filed before they were verified: it decides from now, not before.
            claim = self.claims[data.draw(st.sampled_from(late))]
        if claim.status not in ("pending", "in_review"):
            with pytest.raises(InvalidState):
                claim_verify(actor=STAFF, claim=_claim(claim.pk))
            return
        if sum(c.share for c in self._claims_of(claim.work) if c.status == "verified") + claim.share > FULL:
            with pytest.raises(Overclaim):
                claim_verify(actor=STAFF, claim=_claim(claim.pk))
            return
        self._verify(claim)
        self._release(claim.work, data)

    @rule(data=st.data())
    def accept_claim_for_review(self, data: st.DataObject) -> None:
        """Staff accept a pending claim for review: beyond 100% with the verified ones, the work is disputed."""
        self._tick(data)
        claim = self._draw_claim(data, "pending")
        if claim.status != "pending":
            with pytest.raises(InvalidState):
                claim_accept_for_review(actor=STAFF, claim=_claim(claim.pk))
            return
        claim_accept_for_review(actor=STAFF, claim=_claim(claim.pk))
        claim.status = "in_review"

    @rule(data=st.data(), reason=st.sampled_from(["not the owner", "dispute resolved"]))
    def reject_claim(self, data: st.DataObject, reason: str) -> None:
        """Staff reject a pending claim or withdraw a verified one (which may resolve a dispute); the release
        task runs."""
        self._tick(data)
        claim = self._draw_claim(data, "pending", "in_review", "verified")
        if claim.status == "rejected":
            with pytest.raises(InvalidState):
                claim_reject(actor=STAFF, claim=_claim(claim.pk), reason="again")
            return
        claim_reject(actor=STAFF, claim=_claim(claim.pk), reason=reason)
        claim.status = "rejected"
        self._release(claim.work, data)

    @rule(data=st.data(), scope=st.sampled_from(["work", "work", "catalogue"]))
    def file_refusal(self, data: st.DataObject, scope: str) -> None:
        """A holder refuses a work or their whole catalogue, from now."""
        purposes = data.draw(st.sampled_from([["train-ai"], ["train-genai"], ["train-ai", "train-genai"]]))
        # Mostly by a verified owner of the work (whose refusal decides), or by one verified later (it
        # decides from then on), sometimes by anyone.
        self._tick(data)
        claim = self._draw_claim(data, data.draw(st.sampled_from(["verified", "pending"])))
        party = next(h for h in self.holders if h.pk == claim.holder)
        if claim.status == "rejected":
            party = data.draw(st.sampled_from(self.holders))
        work_pk = claim.work if scope == "work" else None
        work = Work.objects.get(pk=work_pk) if work_pk is not None else None
        actor = Actor(party=party)
        if work_pk is not None and not any(
            c.holder == party.pk and c.status != "rejected" for c in self._claims_of(work_pk)
        ):
            with pytest.raises(NotPermitted):
                refusal_file(actor=actor, holder=party, scope=scope, purposes=purposes, work=work)
            return
        self._refuse(party, scope, purposes, work_pk)

    @rule(data=st.data())
    def withdraw_refusal(self, data: st.DataObject) -> None:
        """The holder opts back in, from now."""
        if not self.refusals:
            return
        self._tick(data)
        # Mostly one that decides now (in force, by a verified owner): uses before this instant stay refused.
        deciding = sorted(
            r.pk
            for r in self.refusals.values()
            if r.withdrawn is None
            and any(c.holder == r.holder and c.status == "verified" for c in self.claims.values())
        )
        if not deciding or data.draw(st.integers(min_value=0, max_value=3)) == 0:
            deciding = sorted(self.refusals)
        model = self.refusals[data.draw(st.sampled_from(deciding))]
        refusal = Refusal.objects.get(pk=model.pk)
        actor = Actor(party=next(h for h in self.holders if h.pk == model.holder))
        if model.withdrawn is not None:
            with pytest.raises(InvalidState):
                refusal_withdraw(actor=actor, refusal=refusal)
            return
        event = refusal_withdraw(actor=actor, refusal=refusal)
        assert event.effective_at == self.now
        model.withdrawn = self.now

    @rule(data=st.data(), when=st.sampled_from(["now", "before_first", "before_first", "rewrite"]))
    def set_tariff_and_reprice(self, data: st.DataObject, when: str) -> None:
        """Staff add a tariff from now, or backdated before the first of its kind and unit (and fail to
        backdate one into a time a tariff was in force); re-pricing runs, maybe twice, in small batches.
        Mostly for a kind and unit some use was recorded unpriced with, or whose work is of now."""
        wanted = sorted(
            {
                (kind, line.unit)
                for manifest in self.manifests
                for line in manifest.lines
                if line.key is not None
                and (expected := manifest.expected.get(line.line_no)) is not None
                and expected.tariff is None
                and expected.outcome in (Outcome.UNPRICED, Outcome.REFUSED_AT_USE)
                for kind in {expected.kind, self.work_by_key[line.key].kind if line.key in self.work_by_key else ""}
                if kind
            }
        )
        if wanted and _coin(data):
            kind, unit = data.draw(st.sampled_from(wanted))
        else:
            kind = data.draw(st.sampled_from(["text", "text", "image"]))
            unit = data.draw(st.sampled_from(["token", "second", "image"]))
        rate = data.draw(st.sampled_from(["0.0005", "0.001", "1", "0", "0.333333", "7"]))
        same = [t for t in self.tariffs if t.kind == kind and t.unit == unit]
        first = min((t.starts for t in same), default=None)
        if when == "rewrite":
            # History cannot be rewritten.
            if first is None or first + TICK >= self.now - timedelta(minutes=2):
                return
            with pytest.raises(InvalidInput) as refused:
                tariff_set(actor=STAFF, kind=kind, unit=unit, rate_krw=Decimal(rate), effective_from=first + TICK)
            assert refused.value.code == "in_the_past"
            return
        starts: datetime | None = None
        if when == "before_first":
            before = data.draw(st.sampled_from([timedelta(days=1), timedelta(days=20), timedelta(days=60)]))
            starts = min(first or self.now, self.now) - before
        elif any(t.starts == self.now for t in same):
            with pytest.raises(InvalidState):
                tariff_set(actor=STAFF, kind=kind, unit=unit, rate_krw=Decimal(rate))
            return
        tariff = self._tariff_add(kind, unit, rate, starts)
        assert tariff.starts == (starts or self.now)
        # What re-pricing takes: lines recorded without a tariff, of this kind and unit, used since it starts;
        # each is decided again now, as at its used_at.
        repriced = 0
        for manifest in self.manifests:
            for line in manifest.lines:
                old = manifest.expected.get(line.line_no)
                if (
                    old is None
                    or old.tariff is not None
                    or old.outcome not in (Outcome.UNPRICED, Outcome.REFUSED_AT_USE)
                    or (old.kind, line.unit) != (kind, unit)
                    or line.used_at is None
                    or line.used_at < tariff.starts
                ):
                    continue
                new = self._decide(line, manifest.purpose)
                if new.amount is not None:
                    manifest.expected[line.line_no] = new
                    repriced += 1
        batch = data.draw(st.sampled_from([1, 2, 5000]))
        assert usage.usage_reprice(tariff_id=tariff.pk, batch=batch) == repriced
        if data.draw(st.booleans()):
            assert usage.usage_reprice(tariff_id=tariff.pk, batch=batch) == 0

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def every_entry_balances(self) -> None:
        """Invariant 1: every entry's lines sum to zero (and PostgreSQL's deferred triggers agree)."""
        unbalanced = _query(
            "SELECT e.idempotency_key FROM compensation_ledgerentry e"
            " LEFT JOIN compensation_ledgerline l ON l.entry_id = e.id"
            " GROUP BY e.id HAVING count(l.id) < 2 OR COALESCE(sum(l.amount_micro), 0) <> 0"
        )
        assert unbalanced == []
        deferred_guards_check()

    @invariant()
    def each_line_is_accrued_once(self) -> None:
        """Invariant 3: one outcome row per line up to the cursor, and each line's money is in exactly one
        accrual entry: its chunk's (chunks cover disjoint lines), or the re-pricing that priced it."""
        rows = _rows()
        by_manifest: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            by_manifest[row.manifest].append(row.line_no)
        for pk, status, total, done in _query(
            "SELECT id, status, lines_total, lines_done FROM compensation_usagemanifest"
        ):
            assert by_manifest.get(pk, []) == list(range(1, done + 1)), pk
            assert (status == ManifestStatus.PROCESSED) == (done == total), (pk, status, done, total)
        accruals = _query(
            "SELECT e.id, e.idempotency_key, l.amount_micro FROM compensation_ledgerentry e"
            " LEFT JOIN compensation_ledgerline l ON l.entry_id = e.id AND l.account_id IN"
            " (SELECT id FROM compensation_account WHERE kind = %s) WHERE e.kind = %s",
            [AccountKind.LAB_RECEIVABLE, EntryKind.ACCRUAL],
        )
        keys = {pk: key for pk, key, _debit in accruals}
        lab_debits = {pk: debit for pk, _key, debit in accruals}
        assert len(keys) == len(accruals), "an accrual debits the lab twice"
        assert None not in lab_debits.values(), "an accrual that does not debit the lab"
        costs: dict[int, int] = defaultdict(int)
        for row in rows:
            if row.entry is None:
                assert not row.amount, row
                continue
            costs[row.entry] += row.amount or 0
            key = keys[row.entry]
            assert key.startswith(f"usage:{row.manifest}:"), (key, row)
            first, last = map(int, key.rsplit(":", 1)[1].split("-"))
            assert first <= row.line_no <= last, (key, row)
        assert dict(costs) == lab_debits
        spans: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for key in keys.values():
            _usage, manifest, what, span = key.split(":", 3)
            if what == "lines":
                first, last = map(int, span.split("-"))
                spans[int(manifest)].append((first, last))
        for manifest, ranges in spans.items():
            ranges.sort()
            assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), (manifest, ranges)

    @invariant()
    def money_is_conserved(self) -> None:
        """Invariant 4: what the lines cost the lab went to owners, escrow and violations, exactly; per line
        and per account."""
        rows = _rows()
        balances = _balances()
        by_kind: dict[str, int] = defaultdict(int)
        for (kind, _party, _key, _pk), total in balances.items():
            by_kind[kind] += total
        assert set(by_kind) <= {
            AccountKind.LAB_RECEIVABLE,
            AccountKind.HOLDER_PAYABLE,
            AccountKind.VIOLATIONS,
            *ESCROW_ACCOUNT_KINDS,
        }, by_kind
        cost = sum(row.amount or 0 for row in rows)
        escrow = sum(by_kind[kind] for kind in ESCROW_ACCOUNT_KINDS)
        assert by_kind[AccountKind.LAB_RECEIVABLE] == cost
        assert by_kind[AccountKind.HOLDER_PAYABLE] + escrow + by_kind[AccountKind.VIOLATIONS] == -cost
        assert by_kind[AccountKind.VIOLATIONS] == -sum(row.violation for row in rows)
        owed: dict[int, int] = defaultdict(int)
        for row in rows:
            if row.amount is None:
                assert (row.paid, row.held, row.violation, row.allocation) == (0, 0, 0, []), row
            else:
                assert row.amount == row.paid + row.held + row.violation, row
            assert sum(part for _h, _c, part, _e in row.allocation) == row.paid + row.released, row
            for holder, _claim, part, _entry in row.allocation:
                owed[holder] += part
        payables = {
            party: -total for (kind, party, _key, _pk), total in balances.items() if kind == AccountKind.HOLDER_PAYABLE
        }
        assert payables == {holder: amount for holder, amount in owed.items() if amount or holder in payables}

    @invariant()
    def lines_are_decided_by_the_status_at_use(self) -> None:
        """Invariant 5: a line is a violation exactly when the model says a refusal by a verified owner was
        in force at ``used_at`` (when it was processed or re-priced); and its outcome, tariff and amount,
        and how much went to owners, escrow and violations, are what the model predicts. No use a tariff
        covers is left unpriced."""
        expected = {(m.pk, n): e for m in self.manifests for n, e in m.expected.items()}
        for row in _rows():
            want = expected[(row.manifest, row.line_no)]
            assert (row.outcome == Outcome.REFUSED_AT_USE) == (want.refusal is not None), (row, want)
            assert row.refusal == want.refusal, (row, want)
            got = Expected(
                row.outcome, row.kind, row.work, row.refusal, row.tariff, row.amount, row.paid, row.held, row.violation
            )
            assert got == want, (row, want)
            if row.tariff is None and row.outcome in (Outcome.UNPRICED, Outcome.REFUSED_AT_USE):
                # Recorded unpriced, re-priced when a tariff covers it, never dropped: re-pricing ran after
                # every tariff, so none is in force for the use (for the kind of the work it names now).
                work = self.work_by_key.get(row.key)
                assert row.used_at is not None, row  # a line without a date is invalid, not unpriced
                tariff = self._tariff_at(work.kind if work else row.kind, row.unit, row.used_at)
                assert tariff is None, (row, tariff)

    @invariant()
    def holds_are_released_at_most_once(self) -> None:
        """Invariant 6: releases never exceed holds, escrow accounts hold exactly the open holds (never a
        debit), release entries move what the lines record, every owner verified now has had their share
        of every open hold of an undisputed work (release runs after every change of owners), and nobody
        is paid more of a line than their shares entitle them to."""
        rows = _rows()
        open_by_account: dict[int, int] = defaultdict(int)
        released: dict[int, int] = defaultdict(int)
        for row in rows:
            assert 0 <= row.released <= row.held, row
            assert row.hold_open == (row.released < row.held), row
            for _holder, _claim, part, entry in row.allocation:
                if entry is not None and entry != row.entry:
                    released[entry] += part
            if not row.held:
                continue
            assert row.held_account is not None, row
            open_by_account[row.held_account] += row.held - row.released
            # The open share is what the claims paid from this line have not covered yet.
            shares = sum(self.claims[claim].share for claim in {c for _h, c, _p, _e in row.allocation})
            assert row.open_bp == max(FULL - shares, 0), (row, shares)
            if row.hold_open:
                assert row.open_bp > 0, row
                work = self.works.get(row.work) if row.work is not None else self.work_by_key.get(row.key)
                if work is not None and not self._disputed(work.pk):
                    paid = {claim for _h, claim, _p, _e in row.allocation}
                    owners = {c.pk for c in self._claims_of(work.pk) if c.status == "verified"}
                    assert owners <= paid, (row, owners)
        escrow = {pk: total for (kind, _party, _key, pk), total in _balances().items() if kind in ESCROW_ACCOUNT_KINDS}
        assert all(total <= 0 for total in escrow.values()), escrow
        assert {pk: -total for pk, total in escrow.items() if total} == {
            pk: amount for pk, amount in open_by_account.items() if amount
        }
        moved = {
            entry: int(total)
            for entry, total in _query(
                "SELECT l.entry_id, sum(l.amount_micro) FROM compensation_ledgerline l"
                " JOIN compensation_ledgerentry e ON e.id = l.entry_id"
                " WHERE e.kind = %s AND l.amount_micro > 0 GROUP BY l.entry_id",
                [EntryKind.RELEASE],
            )
        }
        assert moved == dict(released)
        for row in rows:
            if not row.allocation:
                continue
            work_pk = row.work if row.work is not None else self.work_by_key[row.key].pk
            got: dict[int, int] = defaultdict(int)
            for holder, _claim, part, _entry in row.allocation:
                got[holder] += part
            for holder, amount in got.items():
                shares = sum(c.share for c in self._claims_of(work_pk) if c.holder == holder and c.ever_verified)
                # Each split rounds by at most one unit, and a release splits what an earlier split left.
                slack = 2 + len(row.allocation)
                assert amount * FULL <= (row.amount or 0) * shares + slack * FULL, (row, holder, shares)


def _claim(pk: int) -> OwnershipClaim:
    return OwnershipClaim.objects.get(pk=pk)


@contextlib.contextmanager
def _crashing(where: str, k: int) -> Iterator[None]:
    """The worker dies at the k-th chunk before it starts, or at the k-th chunk that posts to the ledger,
    right after posting and before the chunk commits (so its transaction rolls back)."""
    calls = itertools.count(1)
    if where == "before_chunk":
        chunk_settle = usage._chunk_settle

        def before(*args: Any, **kwargs: Any) -> Any:
            if next(calls) == k:
                raise Crash
            return chunk_settle(*args, **kwargs)

        with mock.patch("compensation.usage.services._chunk_settle", new=before):
            yield
        return
    post = ledger.ledger_post_entries

    def posted(*args: Any, **kwargs: Any) -> Any:
        result = post(*args, **kwargs)
        if next(calls) == k:
            raise Crash
        return result

    with contextlib.ExitStack() as stack:
        # Every module that posts a chunk imported the function by name.
        for module in ("compensation.usage.services", "compensation.usage.sql"):
            with contextlib.suppress(ImportError):
                if hasattr(importlib.import_module(module), "ledger_post_entries"):
                    stack.enter_context(mock.patch(f"{module}.ledger_post_entries", new=posted))
        yield


def _stale_chunk_commit(manifest: UsageManifest, fields: dict[str, Any]) -> bool:
    """A worker that read the cursor at 0 tries to commit the first chunk again: it must commit nothing."""
    parsed = line_parse(
        Record(1, fields),
        period_start=manifest.period_start,
        period_end=manifest.period_end,
        received_at=manifest.created_at,
    )
    return job_chunk_commit(
        kind=MANIFEST_JOB,
        job_id=manifest.pk,
        cursor=0,
        advance_to=1,
        apply=partial(usage._chunk_settle, manifest, 0, usage._ParsedChunk([parsed])),
    )


def test_usage_manifests_keep_the_ledger_invariants(db: Any) -> None:
    run_state_machine_as_test(
        UsageMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
                HealthCheck.function_scoped_fixture,
            ],
        ),
    )
