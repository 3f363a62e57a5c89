"""The lookup's database seam (``optout.lookup_engines``): every engine answers one table of cases alike.

Each row of ``CASES`` names an identifier, a purpose and an instant, and what the lookup must answer. On SQLite the
table holds the ORM engine to it; on PostgreSQL the ORM engine and the raw-SQL engine both, so a rule changed in
one engine's reads alone (which claims count, when a claim or a domain was verified, the first withdrawal, the
purposes refused) fails a row here and names the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from optout.lookup_engines import LookupEngine, lookup_engine_for, lookup_engines
from optout.models import KindRegime, Purpose, Refusal, RefusalEvent, RefusalEventKind, RefusalScope, Regime
from optout.selectors import lookup_batch
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

GENAI = Purpose.TRAIN_GENAI.value
AI = Purpose.TRAIN_AI.value


def _isbn(n: int) -> str:
    body = f"97911{n:07d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class Case:
    name: str
    scheme: str
    value: str
    status: str
    compensation: str = "none"
    refusal: str | None = None  # the deciding refusal, by its name in the world
    pending: bool = False
    purpose: str = AI
    days_ago: int = 0  # as_of, in days before now


# Work n is ISBN _isbn(n); the world below says what each has. Days are before now.
CASES = [
    Case("own refusal, owner verified", "isbn", _isbn(1), "refused", refusal="work_refusal"),
    Case("as_of before the refusal took effect", "isbn", _isbn(1), "permitted", "owners", days_ago=40),
    Case("withdrawn: refused while in force", "isbn", _isbn(2), "refused", refusal="withdrawn_refusal", days_ago=20),
    Case("withdrawn: permitted after", "isbn", _isbn(2), "permitted", "owners"),
    Case("owner verified after as_of: pending", "isbn", _isbn(3), "permitted", "escrow", pending=True, days_ago=20),
    Case("owner verified by as_of: refused", "isbn", _isbn(3), "refused", refusal="late_owner_refusal"),
    Case("co-owner's catalogue refusal", "isbn", _isbn(4), "refused", refusal="catalogue_refusal"),
    Case(
        "catalogue refusal, co-owner verified after as_of",
        "isbn",
        _isbn(11),
        "permitted",
        "owners",
        pending=True,
        days_ago=20,
    ),
    Case("catalogue refusal of a rejected claimant", "isbn", _isbn(5), "permitted", "owners"),
    Case("train-genai refusal, train-ai asked", "isbn", _isbn(6), "permitted", "owners"),
    Case("train-genai refusal, train-genai asked", "isbn", _isbn(6), "refused", refusal="genai_refusal", purpose=GENAI),
    Case("train-ai refusal covers train-genai", "isbn", _isbn(1), "refused", refusal="work_refusal", purpose=GENAI),
    Case("the earliest effective refusal decides", "isbn", _isbn(7), "refused", refusal="earlier_refusal"),
    Case("licence-only kind", "isrc", "KRA401900001", "license_required"),
    Case("licence-only kind, before its regime", "isrc", "KRA401900001", "permitted", "owners", days_ago=20),
    Case("disputed work", "isbn", _isbn(8), "permitted", "escrow"),
    Case("no verified owner", "isbn", _isbn(9), "permitted", "escrow"),
    Case("unregistered", "isbn", _isbn(99), "unregistered", "escrow"),
    Case("longest URL prefix", "url", "https://news.example.kr/opinion/1", "refused", refusal="opinion_prefix"),
    Case(
        "URL prefix after its withdrawal", "url", "https://news.example.kr/sports/1", "refused", refusal="site_prefix"
    ),
    Case(
        "URL prefix, domain verified after as_of",
        "url",
        "https://news.example.kr/sports/1",
        "unregistered",
        "escrow",
        pending=True,
        days_ago=45,
    ),
    Case(
        "URL prefix on a pending domain", "url", "https://blog.example.kr/post", "unregistered", "escrow", pending=True
    ),
    Case("URL outside every prefix", "url", "https://other.example.kr/", "unregistered", "escrow"),
    Case("invalid identifier", "isbn", "978000000000", "invalid"),
]


def _work(number: int, by: Party, *, kind: str = WorkKind.TEXT, scheme: str = "isbn", value: str = "") -> Work:
    work = Work.objects.create(kind=kind, title=f"Work {number}", created_at=NOW - 90 * DAY, registered_by=by)
    Identifier.objects.create(work=work, scheme=scheme, value=value or _isbn(number))
    return work


def _claim(work: Work, holder: Party, *, verified_days_ago: int | None, share: int = 10_000, status: str = "") -> None:
    verified = verified_days_ago is not None
    OwnershipClaim.objects.create(
        work=work,
        holder=holder,
        share_bp=share,
        status=status or (ClaimStatus.VERIFIED if verified else ClaimStatus.PENDING),
        decided_at=NOW - verified_days_ago * DAY if verified_days_ago is not None else None,
    )


def _refusal(holder: Party, days_ago: int, withdrawn_days_ago: int | None = None, **target: Any) -> Refusal:
    starts = NOW - days_ago * DAY
    target.setdefault("purpose", AI)
    refusal = Refusal.objects.create(holder=holder, effective_from=starts, filed_at=starts, **target)
    RefusalEvent.objects.create(refusal=refusal, kind=RefusalEventKind.FILED, effective_at=starts)
    if withdrawn_days_ago is not None:
        RefusalEvent.objects.create(
            refusal=refusal, kind=RefusalEventKind.WITHDRAWN, effective_at=NOW - withdrawn_days_ago * DAY
        )
    return refusal


@pytest.fixture
def refusals() -> dict[str, int]:
    """The world ``CASES`` is written against; returns the refusals' ids by name."""
    a, b, c = (Party.objects.create(kind=PartyKind.HOLDER, name=f"Holder {n}") for n in "abc")
    named: dict[str, Refusal] = {}

    refused = _work(1, a)
    _claim(refused, a, verified_days_ago=60)
    named["work_refusal"] = _refusal(a, 30, scope=RefusalScope.WORK, work=refused)

    withdrawn = _work(2, a)
    _claim(withdrawn, a, verified_days_ago=60)
    named["withdrawn_refusal"] = _refusal(a, 30, 10, scope=RefusalScope.WORK, work=withdrawn)

    late_owner = _work(3, a)
    _claim(late_owner, a, verified_days_ago=10)  # filed before the owner was verified
    named["late_owner_refusal"] = _refusal(a, 30, scope=RefusalScope.WORK, work=late_owner)

    joint = _work(4, a)
    _claim(joint, a, verified_days_ago=60, share=5_000)
    _claim(joint, c, verified_days_ago=60, share=5_000)
    named["catalogue_refusal"] = _refusal(c, 30, scope=RefusalScope.CATALOGUE)

    late_co_owner = _work(11, a)
    _claim(late_co_owner, a, verified_days_ago=60, share=5_000)
    _claim(late_co_owner, c, verified_days_ago=10, share=5_000)

    rejected = _work(5, a)
    _claim(rejected, a, verified_days_ago=60, share=5_000)
    _claim(rejected, b, verified_days_ago=None, share=5_000, status=ClaimStatus.REJECTED)
    _refusal(b, 30, scope=RefusalScope.CATALOGUE)

    genai = _work(6, a)
    _claim(genai, a, verified_days_ago=60)
    named["genai_refusal"] = _refusal(a, 30, scope=RefusalScope.WORK, work=genai, purpose=GENAI)

    two_refusals = _work(7, a)
    _claim(two_refusals, a, verified_days_ago=60)
    _refusal(a, 20, scope=RefusalScope.WORK, work=two_refusals)
    named["earlier_refusal"] = _refusal(a, 25, scope=RefusalScope.WORK, work=two_refusals)

    disputed = _work(8, a)
    _claim(disputed, a, verified_days_ago=60)
    Work.objects.filter(pk=disputed.pk).update(status=WorkStatus.DISPUTED)

    _claim(_work(9, a), a, verified_days_ago=None)

    song = _work(10, a, kind=WorkKind.AUDIO, scheme="isrc", value="KRA401900001")
    _claim(song, a, verified_days_ago=60)
    KindRegime.objects.create(kind=WorkKind.AUDIO, regime=Regime.LICENSE_REQUIRED, effective_from=NOW - 15 * DAY)

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
    named["site_prefix"] = _refusal(b, 50, url_prefix="https://news.example.kr/", **prefix)
    named["opinion_prefix"] = _refusal(b, 30, url_prefix="https://news.example.kr/opinion/", **prefix)
    _refusal(b, 30, 5, url_prefix="https://news.example.kr/sports/", **prefix)
    blog = VerifiedDomain.objects.create(
        holder=b, origin="https://blog.example.kr", host="blog.example.kr", method="dns", token="u"
    )
    _refusal(
        b,
        30,
        scope=RefusalScope.URL_PREFIX,
        domain=blog,
        url_host="blog.example.kr",
        url_prefix="https://blog.example.kr/",
    )
    return {name: refusal.pk for name, refusal in named.items()}


def _answer(case: Case, engine: LookupEngine) -> dict[str, Any]:
    answer = lookup_batch(
        items=[{"scheme": case.scheme, "value": case.value}],
        purpose=case.purpose,
        as_of=NOW - case.days_ago * DAY,
        engine=engine,
    )
    (result,) = answer.results
    return result


def test_the_database_has_its_own_engine_on_postgresql() -> None:
    engines = [engine.name for engine in lookup_engines(connection)]
    own = lookup_engine_for(connection).name
    assert engines == (["orm", "postgresql"] if connection.vendor == "postgresql" else ["orm"])
    assert own == engines[-1]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_engine_answers_the_table_alike(case: Case, refusals: dict[str, int]) -> None:
    answers = {engine.name: _answer(case, engine) for engine in lookup_engines(connection)}

    expected = {
        "status": case.status,
        "compensation": case.compensation,
        "refusal": refusals[case.refusal] if case.refusal else None,
        "pending_refusal": case.pending,
    }
    for name, result in answers.items():
        got = {
            "status": result["status"],
            "compensation": result["compensation"],
            "refusal": result["refusal"]["id"] if result["refusal"] else None,
            "pending_refusal": result["pending_refusal"],
        }
        assert got == expected, f"engine {name}"
    first, *others = answers.values()
    for name, result in zip(list(answers)[1:], others, strict=True):
        assert result == first, f"engine {name} differs from orm"


def test_every_engine_reads_the_projection_alike_and_as_the_event_path_answers(refusals: dict[str, int]) -> None:
    from optout.status.services import status_rebuild

    status_rebuild()
    now_cases = [case for case in CASES if case.days_ago == 0]
    keys = [*sorted({f"{case.scheme}:{case.value}" for case in now_cases}), "isbn:9791100000000"]
    at = timezone.now()
    for purpose in (AI, GENAI):
        reads = {
            engine.name: engine.current_statuses(keys=keys, purpose=purpose, at=at)
            for engine in lookup_engines(connection)
        }
        first_rows, first_event_id = reads["orm"]
        assert first_event_id == RefusalEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
        for name, (rows, event_id) in reads.items():
            assert (sorted(rows), event_id) == (sorted(first_rows), first_event_id), f"engine {name}"
        by_key = {row[0]: row for row in first_rows}
        asked = (case for case in now_cases if case.purpose == purpose and case.status != "invalid")
        for case in (case for case in asked if case.scheme != "url"):
            row = by_key.get(f"{case.scheme}:{case.value}")
            status = row[1] if row is not None else "unregistered"
            assert status == case.status, case.name
    # No key asked: still the event id, and no rows.
    for engine in lookup_engines(connection):
        assert engine.current_statuses(keys=[], purpose=AI, at=at)[0] == []
