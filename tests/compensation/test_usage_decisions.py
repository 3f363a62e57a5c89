"""The usage decision table (``compensation.usage.decisions``): every engine decides one table of cases alike.

Each row of ``CASES`` is a manifest line (what was used, how much, when) and what must become of it: its outcome,
its price, what owners are paid, what escrow holds and where, what counts as a violation and which refusal decided.
The lines go through ``usage_manifest_process`` once per engine that runs on the database (the Python engine on
SQLite; on PostgreSQL also the set-based SQL engine), as manifests of the same content; every engine must give the
table's answer, and the same outcome rows and ledger movements as the others. A rule changed in one engine alone
fails a row here and names the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from compensation.models import AccountKind, LedgerLine, ManifestLine, Outcome, Tariff, UsageManifest
from compensation.usage.services import (
    usage_engine_for,
    usage_engines,
    usage_manifest_process,
    usage_manifest_submit_json,
)
from core.actors import Actor
from optout.models import KindRegime, Purpose, Refusal, RefusalEvent, RefusalEventKind, RefusalScope, Regime
from registry.models import (
    ClaimStatus,
    DomainStatus,
    Identifier,
    OwnershipClaim,
    Party,
    PartyKind,
    VerifiedDomain,
    Work,
    WorkKind,
    WorkStatus,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
NOW = timezone.now().replace(microsecond=0)
# Rates in KRW per unit; prices are micro-won (µ₩): 1,000 tokens at 0.0005 are 500,000 µ₩.
TEXT_TOKEN_EARLY, TEXT_TOKEN_LATE = Decimal("0.0005"), Decimal("0.0007")  # the later from 12 days ago
ESCROW_UNMATCHED, ESCROW_DISPUTED, ESCROW_UNCLAIMED = (
    AccountKind.ESCROW_UNMATCHED.value,
    AccountKind.ESCROW_DISPUTED.value,
    AccountKind.ESCROW_UNCLAIMED.value,
)


def _isbn(n: int) -> str:
    body = f"97911{n:07d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class Case:
    name: str
    value: str  # an ISBN, or a URL
    outcome: str
    amount: int | None = None
    paid: int = 0
    held: int = 0
    held_in: str = ""
    violation: int = 0
    refusal: str | None = None
    units: str = "1000"
    unit: str = "token"
    days_ago: int = 20  # used_at, in days before now
    kind: str = ""  # the line's optional kind

    @property
    def scheme(self) -> str:
        return "url" if self.value.startswith("http") else "isbn"


# Work n has ISBN _isbn(n); the world below says what each has. Uses are 20 days ago unless a case says.
CASES = [
    Case("one verified owner", _isbn(1), Outcome.MATCHED, 500_000, paid=500_000),
    Case("the tariff in force at use", _isbn(1), Outcome.MATCHED, 700_000, paid=700_000, days_ago=5),
    Case("another unit's tariff", _isbn(1), Outcome.MATCHED, 6_666_600, paid=6_666_600, units="2", unit="item"),
    Case(
        "verified 60%, the rest held",
        _isbn(2),
        Outcome.MATCHED,
        500_000,
        paid=300_000,
        held=200_000,
        held_in=ESCROW_UNCLAIMED,
    ),
    # 3,500 µ₩ over 3,333 + 3,333 + 3,333 + 1 bp: 1,166.55 each and 0.35; the two µ₩ left go to the two
    # largest remainders, the lower claims first, and the unverified basis point holds nothing.
    Case("thirds, largest remainder", _isbn(3), Outcome.MATCHED, 3_500, paid=3_500, units="7"),
    Case("only a pending claim", _isbn(4), Outcome.SHARE_UNCLAIMED, 500_000, held=500_000, held_in=ESCROW_UNCLAIMED),
    Case("disputed work", _isbn(5), Outcome.DISPUTED_HELD, 500_000, held=500_000, held_in=ESCROW_DISPUTED),
    Case("no work has it", _isbn(99), Outcome.UNMATCHED_HELD, 500_000, held=500_000, held_in=ESCROW_UNMATCHED),
    Case("refused at use", _isbn(6), Outcome.REFUSED_AT_USE, 500_000, violation=500_000, refusal="work_refusal"),
    Case("refused, no tariff for the unit", _isbn(6), Outcome.REFUSED_AT_USE, refusal="work_refusal", unit="second"),
    Case("used before the refusal", _isbn(6), Outcome.MATCHED, 500_000, paid=500_000, days_ago=40),
    Case("used after the withdrawal", _isbn(7), Outcome.MATCHED, 700_000, paid=700_000, days_ago=5),
    Case(
        "used while the withdrawn refusal was in force",
        _isbn(7),
        Outcome.REFUSED_AT_USE,
        500_000,
        violation=500_000,
        refusal="withdrawn_refusal",
    ),
    Case(
        "a co-owner's catalogue refusal",
        _isbn(8),
        Outcome.REFUSED_AT_USE,
        500_000,
        violation=500_000,
        refusal="catalogue_refusal",
    ),
    Case(
        "a catalogue refusal of a co-owner verified after the use",
        _isbn(12),
        Outcome.MATCHED,
        500_000,
        paid=500_000,
    ),
    # Refused only once the owner is verified; the money follows the shares verified now.
    Case("refusal awaiting the owner's verification", _isbn(9), Outcome.MATCHED, 500_000, paid=500_000, days_ago=20),
    Case(
        "refusal once the owner is verified",
        _isbn(9),
        Outcome.REFUSED_AT_USE,
        700_000,
        violation=700_000,
        refusal="late_owner_refusal",
        days_ago=5,
    ),
    Case("licence-only kind", _isbn(10), Outcome.LICENSE_REQUIRED, units="10", unit="second", days_ago=5),
    Case(
        "before the kind became licence-only",
        _isbn(10),
        Outcome.MATCHED,
        7_000_000,
        paid=7_000_000,
        units="10",
        unit="second",
    ),
    Case("no tariff for the kind", _isbn(11), Outcome.UNPRICED),
    # A URL line without a kind is priced as text (web pages), with one as its kind.
    Case(
        "longest URL prefix",
        "https://news.example.kr/opinion/1",
        Outcome.REFUSED_AT_USE,
        500_000,
        violation=500_000,
        refusal="opinion_prefix",
    ),
    Case(
        "a URL under the prefix, spelled otherwise",
        "http://www.news.example.kr/opinion/1/?utm_source=feed#top",
        Outcome.REFUSED_AT_USE,
        1_000_000,
        violation=1_000_000,
        refusal="opinion_prefix",
        units="2000",  # the same units as the line above would make it that use reported again
    ),
    Case(
        "URL prefix before its domain was verified",
        "https://news.example.kr/sports/1",
        Outcome.UNMATCHED_HELD,
        500_000,
        held=500_000,
        held_in=ESCROW_UNMATCHED,
        days_ago=45,
    ),
    Case(
        "an unregistered URL of the kind the line names",
        "https://blog.example.kr/spring-garden/1",
        Outcome.UNMATCHED_HELD,
        400_000,
        held=400_000,
        held_in=ESCROW_UNMATCHED,
        kind="other",
    ),
    Case(
        "an unregistered URL of a kind without a tariff",
        "https://blog.example.kr/spring-garden/2",
        Outcome.UNPRICED,
        kind="image",
    ),
    Case("invalid identifier", "978000000000", Outcome.INVALID),
    Case("invalid units", _isbn(1), Outcome.INVALID, units="-3"),
]
# A repeat of the first line, reported again at the end: the same use, counted once.
DUPLICATE = Case("the same use reported again", _isbn(1), Outcome.DUPLICATE)


def _work(number: int, by: Party, *, kind: str = WorkKind.TEXT) -> Work:
    work = Work.objects.create(kind=kind, title=f"Work {number}", created_at=NOW - 90 * DAY, registered_by=by)
    Identifier.objects.create(work=work, scheme="isbn", value=_isbn(number))
    return work


def _claim(work: Work, holder: Party, *, verified_days_ago: int | None, share: int = 10_000) -> None:
    OwnershipClaim.objects.create(
        work=work,
        holder=holder,
        share_bp=share,
        status=ClaimStatus.VERIFIED if verified_days_ago is not None else ClaimStatus.PENDING,
        decided_at=NOW - verified_days_ago * DAY if verified_days_ago is not None else None,
    )


def _refusal(holder: Party, days_ago: int, withdrawn_days_ago: int | None = None, **target: Any) -> Refusal:
    starts = NOW - days_ago * DAY
    refusal = Refusal.objects.create(
        holder=holder, effective_from=starts, filed_at=starts, purpose=Purpose.TRAIN_AI, **target
    )
    RefusalEvent.objects.create(refusal=refusal, kind=RefusalEventKind.FILED, effective_at=starts)
    if withdrawn_days_ago is not None:
        RefusalEvent.objects.create(
            refusal=refusal, kind=RefusalEventKind.WITHDRAWN, effective_at=NOW - withdrawn_days_ago * DAY
        )
    return refusal


@pytest.fixture
def refusals() -> dict[str, int]:
    """The world ``CASES`` is written against; returns the refusals' ids by name."""
    a, b, c, d = (Party.objects.create(kind=PartyKind.HOLDER, name=f"Holder {n}") for n in "abcd")
    named: dict[str, Refusal] = {}
    _claim(_work(1, a), a, verified_days_ago=60)
    partial = _work(2, a)
    _claim(partial, a, verified_days_ago=60, share=6_000)
    _claim(partial, b, verified_days_ago=None, share=4_000)
    thirds = _work(3, a)
    for holder in (a, b, d):  # not c, whose catalogue refusal would decide
        _claim(thirds, holder, verified_days_ago=60, share=3_333)
    _claim(_work(4, a), a, verified_days_ago=None)
    disputed = _work(5, a)
    _claim(disputed, a, verified_days_ago=60)
    Work.objects.filter(pk=disputed.pk).update(status=WorkStatus.DISPUTED)
    refused = _work(6, a)
    _claim(refused, a, verified_days_ago=60)
    named["work_refusal"] = _refusal(a, 30, scope=RefusalScope.WORK, work=refused)
    withdrawn = _work(7, b)
    _claim(withdrawn, b, verified_days_ago=60)
    named["withdrawn_refusal"] = _refusal(b, 30, 10, scope=RefusalScope.WORK, work=withdrawn)
    joint = _work(8, a)
    _claim(joint, a, verified_days_ago=60, share=5_000)
    _claim(joint, c, verified_days_ago=60, share=5_000)
    named["catalogue_refusal"] = _refusal(c, 30, scope=RefusalScope.CATALOGUE)
    late_co_owner = _work(12, a)
    _claim(late_co_owner, a, verified_days_ago=60, share=5_000)
    _claim(late_co_owner, c, verified_days_ago=10, share=5_000)
    late_owner = _work(9, b)
    _claim(late_owner, b, verified_days_ago=10)
    named["late_owner_refusal"] = _refusal(b, 30, scope=RefusalScope.WORK, work=late_owner)
    _claim(_work(10, a, kind=WorkKind.AUDIO), a, verified_days_ago=60)
    KindRegime.objects.create(kind=WorkKind.AUDIO, regime=Regime.LICENSE_REQUIRED, effective_from=NOW - 15 * DAY)
    _claim(_work(11, a, kind=WorkKind.VIDEO), a, verified_days_ago=60)
    news = VerifiedDomain.objects.create(
        holder=b,
        origin="https://news.example.kr",
        host="news.example.kr",
        method="dns",
        token="t",
        status=DomainStatus.VERIFIED,
        verified_at=NOW - 35 * DAY,
    )
    prefix: dict[str, Any] = {"scope": RefusalScope.URL_PREFIX, "domain": news, "url_host": "news.example.kr"}
    _refusal(b, 50, url_prefix="https://news.example.kr/", **prefix)
    named["opinion_prefix"] = _refusal(b, 30, url_prefix="https://news.example.kr/opinion/", **prefix)
    for kind, unit, rate, days_ago in (
        (WorkKind.TEXT, "token", TEXT_TOKEN_EARLY, 100),
        (WorkKind.TEXT, "token", TEXT_TOKEN_LATE, 12),
        (WorkKind.TEXT, "item", Decimal("3.3333"), 100),
        (WorkKind.AUDIO, "second", Decimal("0.7"), 100),
        (WorkKind.OTHER, "token", Decimal("0.0004"), 100),
    ):
        Tariff.objects.create(kind=kind, unit=unit, rate_krw=rate, effective_from=NOW - days_ago * DAY)
    return {name: refusal.pk for name, refusal in named.items()}


def _line(case: Case) -> dict[str, Any]:
    return {
        "scheme": case.scheme,
        "value": case.value,
        "units": case.units,
        "unit": case.unit,
        "used_at": (NOW - case.days_ago * DAY).isoformat(),
        **({"kind": case.kind} if case.kind else {}),
    }


def _process(lab: Party, engine: str) -> UsageManifest:
    lines = [_line(case) for case in CASES] + [_line(CASES[0])]
    manifest, _created = usage_manifest_submit_json(
        actor=Actor(party=lab, is_system=True),
        data={"manifest_id": f"table-{engine}", "model": "m", "purpose": Purpose.TRAIN_AI, "lines": lines},
    )
    usage_manifest_process(manifest_id=manifest.pk, engine=engine)
    manifest.refresh_from_db()
    assert manifest.status == "processed"
    return manifest


def _rows(manifest: UsageManifest) -> list[dict[str, Any]]:
    rows = []
    for line in ManifestLine.objects.filter(manifest=manifest).select_related("held_account").order_by("line_no"):
        rows.append(
            {
                "key": line.key,
                "outcome": line.outcome,
                "reason_code": line.reason_code,
                "work_id": line.work_id,
                "kind": line.kind,
                "refusal_id": line.refusal_id,
                "tariff_id": line.tariff_id,
                "amount": line.amount_micro,
                "paid": line.paid_micro,
                "held": line.held_micro,
                "held_in": line.held_account.kind if line.held_account else "",
                "held_account_id": line.held_account_id,
                "violation": line.violation_micro,
                "open_bp": line.open_bp,
                "hold_open": line.hold_open,
                "dedupe": str(line.dedupe) if line.dedupe else None,
                "allocation": [entry[:3] for entry in line.allocation],
            }
        )
    return rows


def _movement(manifest: UsageManifest) -> dict[tuple[str, int | None, str], int]:
    sums = (
        LedgerLine.objects.filter(entry__source__manifest=manifest.pk)
        .values("account__kind", "account__party_id", "account__escrow_key")
        .annotate(total=Sum("amount_micro"))
    )
    return {(row["account__kind"], row["account__party_id"], row["account__escrow_key"]): row["total"] for row in sums}


def test_the_database_has_its_own_engine_on_postgresql() -> None:
    names = [engine.name for engine in usage_engines(connection)]
    assert names == (["python", "sql"] if connection.vendor == "postgresql" else ["python"])
    assert usage_engine_for(connection).name == names[-1]


def test_every_engine_decides_the_table_alike(lab: Party, refusals: dict[str, int]) -> None:
    engines = [engine.name for engine in usage_engines(connection)]
    decided = {name: _process(lab, name) for name in engines}
    rows = {name: _rows(manifest) for name, manifest in decided.items()}

    for name, engine_rows in rows.items():
        assert len(engine_rows) == len(CASES) + 1, name
        for case, row in zip([*CASES, DUPLICATE], engine_rows, strict=True):
            got = {field: row[field] for field in ("outcome", "amount", "paid", "held", "held_in", "violation")}
            got["refusal"] = row["refusal_id"]
            expected = {
                "outcome": case.outcome,
                "amount": case.amount,
                "paid": case.paid,
                "held": case.held,
                "held_in": case.held_in,
                "violation": case.violation,
                "refusal": refusals[case.refusal] if case.refusal else None,
            }
            assert got == expected, f"engine {name}, case {case.name!r}"
    reference, *others = engines
    for name in others:
        for case, mine, theirs in zip([*CASES, DUPLICATE], rows[name], rows[reference], strict=True):
            assert mine == theirs, f"engine {name} differs from {reference}, case {case.name!r}"
        assert _movement(decided[name]) == _movement(decided[reference]), f"engine {name}'s ledger movements"
