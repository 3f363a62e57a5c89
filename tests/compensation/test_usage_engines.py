"""The set-based SQL engine decides every manifest line exactly as the Python reference does.

One world with every case the rules distinguish (owners verified before or after a use, partial and tied
shares, pending and disputed works, work, catalogue and URL-prefix refusals, withdrawals, licence-only
kinds, kinds without tariff, unknown identifiers, recordings split with their musical works or refused by
them), a few hundred random lines over time, processed once by each engine as two manifests of the same
content: outcomes, amounts, splits (the two sides of a recording's use too) and ledger movements must be
identical.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone

from compensation.models import LedgerLine, ManifestLine, RecordingSplit, Tariff, UsageManifest
from compensation.usage.services import usage_manifest_process, usage_manifest_submit_json
from core.actors import Actor
from optout.models import KindRegime, Refusal, RefusalEvent
from registry.models import Identifier, OwnershipClaim, Party, PartyKind, VerifiedDomain, Work

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

DAY = timedelta(days=1)


def _isbn(n: int) -> str:
    body = f"97911{n:07d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _work(kind: str, identifiers: list[tuple[str, str]], created: datetime, by: Party) -> Work:
    work = Work.objects.create(kind=kind, title=identifiers[0][1], created_at=created, registered_by=by)
    for scheme, value in identifiers:
        Identifier.objects.create(work=work, scheme=scheme, value=value)
    return work


def _claim(work: Work, holder: Party, share: int, verified_at: datetime | None) -> None:
    OwnershipClaim.objects.create(
        work=work,
        holder=holder,
        share_bp=share,
        status="verified" if verified_at else "pending",
        decided_at=verified_at,
    )


def _refusal(holder: Party, starts: datetime, withdrawn: datetime | None = None, **target: Any) -> Refusal:
    refusal = Refusal.objects.create(holder=holder, effective_from=starts, filed_at=starts, **target)
    RefusalEvent.objects.create(refusal=refusal, kind="filed", effective_at=starts)
    if withdrawn is not None:
        RefusalEvent.objects.create(refusal=refusal, kind="withdrawn", effective_at=withdrawn)
    return refusal


@pytest.fixture
def world(lab: Party) -> dict[str, Any]:
    now = timezone.now()
    t0 = now - 60 * DAY
    holders = [Party.objects.create(kind=PartyKind.HOLDER, name=f"Holder {n}") for n in range(3)]
    a, b, c = holders
    identifiers: list[tuple[str, str]] = []

    def work(kind: str, number: int, *extra: tuple[str, str]) -> Work:
        ids = [("isbn", _isbn(number)), *extra]
        identifiers.extend(ids)
        return _work(kind, ids, t0, a)

    solo = work("text", 1)
    _claim(solo, a, 10000, t0)
    late_owner = work("text", 2)
    _claim(late_owner, a, 10000, now - 20 * DAY)  # verified between uses
    thirds = work("text", 3)
    for holder, share in zip(holders, (3333, 3333, 3333), strict=True):
        _claim(thirds, holder, share, t0)
    partial = work("text", 4)
    _claim(partial, b, 6000, t0)
    _claim(partial, c, 4000, None)
    pending = work("text", 5)
    _claim(pending, c, 10000, None)
    disputed = work("text", 6)
    disputed.status = "disputed"
    disputed.save(update_fields=["status"])
    _claim(disputed, a, 10000, t0)
    refused = work("text", 7)
    _claim(refused, a, 10000, t0)
    _refusal(a, now - 30 * DAY, None, scope="work", purpose="train-genai", work=refused)
    withdrawn = work("text", 8)
    _claim(withdrawn, b, 5000, t0)
    _claim(withdrawn, c, 5000, t0)
    _refusal(b, now - 40 * DAY, now - 10 * DAY, scope="work", purpose="train-ai", work=withdrawn)
    catalogue = work("text", 9)
    _claim(catalogue, c, 5000, now - 25 * DAY)
    _claim(catalogue, a, 5000, t0)
    _refusal(c, now - 45 * DAY, None, scope="catalogue", purpose="train-ai")
    picture = work("image", 10, ("url", "https://img.example.kr/cat.png"))
    _claim(picture, b, 10000, t0)
    song = work("audio", 11)  # a licence-only kind
    _claim(song, b, 10000, t0)
    KindRegime.objects.create(kind="audio", regime="license_required", effective_from=now - 15 * DAY)
    clip = work("video", 12)  # no tariff for video
    _claim(clip, a, 10000, t0)
    # Musical works and their recordings: split with the musical work from t0 + 10 days (25%), then 40%; a refused
    # musical work refuses its recording; one musical work has a verified and a pending owner.
    composition = work("musical_work", 13)
    _claim(composition, a, 6000, t0)
    _claim(composition, c, 4000, None)
    recording = work("audio", 14)
    _claim(recording, b, 7000, t0)
    _claim(recording, c, 3000, t0)
    refused_composition = work("musical_work", 15)
    _claim(refused_composition, c, 10000, t0)
    _refusal(c, now - 30 * DAY, None, scope="work", purpose="train-ai", work=refused_composition)
    refused_recording = work("audio", 16)
    _claim(refused_recording, a, 10000, t0)
    Work.objects.filter(pk=recording.pk).update(musical_work=composition)
    Work.objects.filter(pk=refused_recording.pk).update(musical_work=refused_composition)
    RecordingSplit.objects.create(kind="audio", musical_work_bp=2500, effective_from=t0 + 10 * DAY)
    RecordingSplit.objects.create(kind="audio", musical_work_bp=4000, effective_from=now - 20 * DAY)
    domain = VerifiedDomain.objects.create(
        holder=b,
        origin="https://news.example.kr",
        host="news.example.kr",
        method="dns",
        token="t",
        status="verified",
        verified_at=now - 35 * DAY,
    )
    _refusal(
        b,
        now - 50 * DAY,
        None,
        scope="url_prefix",
        purpose="train-ai",
        domain=domain,
        url_prefix="https://news.example.kr/",
        url_host="news.example.kr",
    )
    _refusal(
        b,
        now - 30 * DAY,
        now - 5 * DAY,
        scope="url_prefix",
        purpose="train-ai",
        domain=domain,
        url_prefix="https://news.example.kr/opinion/",
        url_host="news.example.kr",
    )
    for kind, unit, rate, starts in (
        ("text", "token", "0.0005", t0 - DAY),
        ("text", "token", "0.00071", now - 12 * DAY),
        ("text", "item", "3.3333", t0 - DAY),
        ("image", "image", "2", t0 - DAY),
        ("audio", "second", "0.7", t0 - DAY),
        ("audio", "token", "0.00033", t0 - DAY),
        ("musical_work", "token", "0.0003", t0 - DAY),
        ("other", "token", "0.0004", t0 - DAY),
        ("other", "image", "1.5", t0 - DAY),
    ):
        Tariff.objects.create(kind=kind, unit=unit, rate_krw=Decimal(rate), effective_from=starts)
    identifiers += [("isbn", _isbn(n)) for n in range(100, 110)]  # never registered
    identifiers += [
        ("url", "https://news.example.kr/opinion/1"),
        ("url", "https://news.example.kr/sports/2"),
        ("url", "https://blog.example.kr/3"),
    ]
    return {"now": now, "start": t0, "identifiers": identifiers}


def _lines(world: dict[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    span = int((world["now"] - world["start"]).total_seconds())
    lines: list[dict[str, Any]] = []
    for _n in range(count):
        scheme, value = rnd.choice(world["identifiers"])
        used_at = world["start"] + timedelta(seconds=rnd.randint(0, span - 60))
        line = {
            "scheme": scheme,
            "value": value,
            "units": rnd.choice([1, 7, 999, 1000, 123457, "0.5", "2.25"]),
            "unit": rnd.choice(["token", "token", "token", "item", "image", "second"]),
            "used_at": used_at.isoformat(),
        }
        roll = rnd.random()
        if roll < 0.05:
            line["value"] = "978000000000"  # bad length
        elif roll < 0.08:
            line["units"] = -3
        elif roll < 0.12 and lines:
            line = dict(rnd.choice(lines))  # a repeated report
        lines.append(line)
    return lines


def _process(lab: Party, manifest_id: str, lines: list[dict[str, Any]], engine: str, purpose: str) -> UsageManifest:
    manifest, _created = usage_manifest_submit_json(
        actor=Actor(party=lab, is_system=True),
        data={"manifest_id": manifest_id, "model": "m", "purpose": purpose, "lines": lines},
    )
    usage_manifest_process(manifest_id=manifest.pk, engine=engine)
    manifest.refresh_from_db()
    assert manifest.status == "processed"
    return manifest


def _outcomes(manifest: UsageManifest) -> list[tuple[Any, ...]]:
    rows = []
    for line in ManifestLine.objects.filter(manifest=manifest).order_by("line_no", "side"):
        rows.append(
            (
                line.line_no,
                line.side,
                line.other_work_id,
                line.key,
                line.outcome,
                line.reason_code,
                line.work_id,
                line.kind,
                line.refusal_id,
                line.tariff_id,
                line.amount_micro,
                line.paid_micro,
                line.held_micro,
                line.violation_micro,
                line.held_account_id,
                line.open_bp,
                line.hold_open,
                str(line.dedupe) if line.dedupe else None,
                [entry[:3] for entry in line.allocation],
            )
        )
    return rows


def _movement(manifest: UsageManifest) -> dict[int, int]:
    sums = (
        LedgerLine.objects.filter(entry__source__manifest=manifest.pk)
        .values("account_id")
        .annotate(total=Sum("amount_micro"))
    )
    return {row["account_id"]: row["total"] for row in sums}


@pytest.mark.parametrize(("seed", "chunk", "purpose"), [(1, 10_000, "train-genai"), (2, 37, "train-ai")])
def test_sql_and_python_engines_decide_alike(world, lab, settings, seed, chunk, purpose):
    settings.USAGE_CHUNK_LINES = chunk
    lines = _lines(world, 500, seed)

    by_python = _process(lab, f"py-{seed}", lines, "python", purpose)
    by_sql = _process(lab, f"sql-{seed}", lines, "sql", purpose)

    python_rows, sql_rows = _outcomes(by_python), _outcomes(by_sql)
    assert len(python_rows) == len(sql_rows)
    assert len({row[0] for row in python_rows}) == 500
    for python_row, sql_row in zip(python_rows, sql_rows, strict=True):
        assert sql_row == python_row, f"{sql_row!r} != {python_row!r}"
    assert _movement(by_sql) == _movement(by_python)
    # The world exercises every outcome the rules can give.
    outcomes = Counter(row[4] for row in python_rows)
    assert {row[1] for row in python_rows} == {"", "recording", "musical_work"}
    assert set(outcomes) >= {
        "matched",
        "share_unclaimed",
        "unmatched_held",
        "disputed_held",
        "refused_at_use",
        "license_required",
        "unpriced",
        "invalid",
        "duplicate",
    }, outcomes
