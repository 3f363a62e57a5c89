"""The status projection against the events it is derived from.

A stateful property test drives random histories through the services (works registered with ISBNs and URLs,
claims filed, verified, accepted for review and rejected, refusals of every scope filed and withdrawn now or
later, domains verified, regimes set now or later, time moving on) and after every step requires:
- ``status_check``'s comparison to find no difference (projection and change feed against the events);
- lookups at the current instant, which read the projection, to answer exactly as the event path;
- the change feed, applied by the rule in the README, to give every subject's status now.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone, translation
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from core.actors import Actor
from core.errors import RegistryError
from optout.models import Refusal, StatusChange, StatusSegment
from optout.models.status import SubjectType
from optout.selectors import lookup_batch
from optout.services import refusal_file, refusal_withdraw, regime_set
from optout.status.selectors import lookup_batch_current, status_differences
from registry.models import ClaimStatus, OwnershipClaim, Party, VerifiedDomain, Work
from registry.services import (
    claim_accept_for_review,
    claim_file,
    claim_reject,
    claim_verify,
    domain_add,
    domain_verify,
    work_draft_build,
    work_identifier_add,
    work_register,
)
from tests.factories import HolderFactory, StaffUserFactory, isbn

pytestmark = pytest.mark.django_db

START = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
PURPOSES = ("train-ai", "train-genai")
DELAYS = st.sampled_from([None, timedelta(minutes=30), timedelta(hours=2)])


def site(holder_index: int) -> str:
    return f"https://site{holder_index}.example.kr"


def feed_status_now(now: datetime) -> dict[tuple[str, str, str], str]:
    """Every subject's status now by the README's rule: the change with the greatest (effective_at, cursor)
    at or before the instant decides."""
    best: dict[tuple[str, str, str], tuple[datetime, int, str]] = {}
    for change in StatusChange.objects.order_by("id"):
        if change.effective_at > now:
            continue
        subject = (change.subject_type, change.subject, change.purpose)
        if subject not in best or (change.effective_at, change.pk) > best[subject][:2]:
            best[subject] = (change.effective_at, change.pk, change.new_status)
    return {subject: status for subject, (_at, _id, status) in best.items()}


class ProjectionMachine(RuleBasedStateMachine):
    works = Bundle("works")
    refusals = Bundle("refusals")

    def __init__(self) -> None:
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.traveller = time_machine.travel(START, tick=False)
        self.clock = self.traveller.start()
        self.staff = Actor(user=StaffUserFactory())
        self.holders: list[Party] = [HolderFactory() for _ in range(3)]
        self.domains: list[VerifiedDomain] = [
            domain_add(actor=Actor(party=holder), holder=holder, origin=site(index), method="dns")
            for index, holder in enumerate(self.holders)
        ]
        self.serial = 0

    def teardown(self) -> None:
        self.traveller.stop()
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    def _at(self, delay: timedelta | None) -> datetime | None:
        return timezone.now() + delay if delay is not None else None

    @initialize(target=works)
    def first_work(self) -> Work:
        return self._register(0, with_url=True)

    def _register(self, holder_index: int, *, with_url: bool) -> Work:
        self.serial += 1
        identifiers = [{"scheme": "isbn", "value": isbn(self.serial)}]
        if with_url:
            identifiers.append({"scheme": "url", "value": f"{site(holder_index)}/p/{self.serial}"})
        draft = work_draft_build(title=f"Work {self.serial}", kind="text", identifiers=identifiers)
        holder = self.holders[holder_index]
        work, _claim = work_register(actor=Actor(party=holder), holder=holder, draft=draft)
        return work

    @rule(target=works, holder_index=st.integers(0, 2), with_url=st.booleans())
    def register(self, holder_index: int, with_url: bool) -> Work:
        return self._register(holder_index, with_url=with_url)

    @rule(work=works, holder_index=st.integers(0, 2), share=st.sampled_from([2000, 10000]))
    def claim(self, work: Work, holder_index: int, share: int) -> None:
        holder = self.holders[holder_index]
        with contextlib.suppress(RegistryError):
            claim_file(actor=Actor(party=holder), holder=holder, work=work, share_bp=share)

    @rule(work=works, action=st.sampled_from(["verify", "review", "reject"]))
    def decide_claim(self, work: Work, action: str) -> None:
        claim = OwnershipClaim.objects.filter(work=work).exclude(status=ClaimStatus.REJECTED).order_by("?").first()
        if claim is None:
            return
        with contextlib.suppress(RegistryError):
            if action == "verify":
                claim_verify(actor=self.staff, claim=claim)
            elif action == "review":
                claim_accept_for_review(actor=self.staff, claim=claim)
            else:
                claim_reject(actor=self.staff, claim=claim, reason="not theirs")

    @rule(work=works, holder_index=st.integers(0, 2))
    def add_url(self, work: Work, holder_index: int) -> None:
        holder = self.holders[holder_index]
        self.serial += 1
        with contextlib.suppress(RegistryError):
            work_identifier_add(
                actor=Actor(party=holder),
                holder=holder,
                work=work,
                scheme="url",
                value=f"{site(holder_index)}/q/{self.serial}",
            )

    @rule(holder_index=st.integers(0, 2))
    def verify_domain(self, holder_index: int) -> None:
        domain_verify(actor=self.staff, domain=self.domains[holder_index])

    @rule(
        target=refusals,
        work=works,
        holder_index=st.integers(0, 2),
        scope=st.sampled_from(["work", "catalogue", "url_prefix"]),
        purpose=st.sampled_from(PURPOSES),
        delay=DELAYS,
        prefix=st.sampled_from(["/", "/p/", "/q/"]),
    )
    def refuse(
        self, work: Work, holder_index: int, scope: str, purpose: str, delay: timedelta | None, prefix: str
    ) -> Refusal | None:
        holder = self.holders[holder_index]
        try:
            return refusal_file(
                actor=Actor(party=holder),
                holder=holder,
                scope=scope,
                purposes=[purpose],
                work=work if scope == "work" else None,
                url_prefix=site(holder_index) + prefix if scope == "url_prefix" else "",
                effective_from=self._at(delay),
            )
        except RegistryError:
            return None

    @rule(refusal=refusals, delay=DELAYS)
    def withdraw(self, refusal: Refusal | None, delay: timedelta | None) -> None:
        if refusal is None:
            return
        with contextlib.suppress(RegistryError):
            refusal_withdraw(actor=Actor(party=refusal.holder), refusal=refusal, effective_at=self._at(delay))

    @rule(regime=st.sampled_from(["use_first", "license_required"]), delay=DELAYS)
    def set_regime(self, regime: str, delay: timedelta | None) -> None:
        # One regime per kind and instant: the frozen clock moves on a second first.
        self.clock.shift(timedelta(seconds=1))
        regime_set(actor=self.staff, kind="text", regime=regime, effective_from=self._at(delay))

    @rule(minutes=st.sampled_from([1, 31, 61, 130]))
    def time_passes(self, minutes: int) -> None:
        self.clock.shift(timedelta(minutes=minutes))

    @invariant()
    def the_projection_equals_the_events(self) -> None:
        assert [d.describe() for d in status_differences()] == []

    @invariant()
    def lookups_now_answer_as_the_event_path(self) -> None:
        items: list[dict[str, str]] = [
            {"scheme": scheme, "value": value}
            for scheme, value in Work.objects.values_list("identifiers__scheme", "identifiers__value")
            if scheme
        ]
        # Unregistered URLs under every site's prefixes, and an unregistered ISBN.
        items += [{"scheme": "url", "value": f"{site(n)}/p/unregistered"} for n in range(3)]
        items += [{"scheme": "isbn", "value": isbn(999_999)}]
        now = timezone.now()
        for purpose in PURPOSES:
            projected = lookup_batch_current(items=items, purpose=purpose, at=now).results
            events = lookup_batch(items=items, purpose=purpose, as_of=now).results
            assert projected == events

    @invariant()
    def the_feed_gives_every_status_now(self) -> None:
        now = timezone.now()
        from_feed = feed_status_now(now)
        in_force = {
            (row.subject_type, row.subject, row.purpose): row.status
            for row in StatusSegment.objects.filter(valid_from__lte=now).exclude(valid_to__lte=now)
        }
        defaults = {SubjectType.KEY: "unregistered", SubjectType.URL_PREFIX: "permitted", SubjectType.KIND: "permitted"}
        for subject in from_feed.keys() | in_force.keys():
            expected = in_force.get(subject, defaults[SubjectType(subject[0])])
            assert from_feed.get(subject, defaults[SubjectType(subject[0])]) == expected, subject


def test_random_histories_keep_the_projection_equal_to_the_events(db: Any) -> None:
    run_state_machine_as_test(
        ProjectionMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=18,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# --- status_check --------------------------------------------------------------------------------------


@pytest.fixture
def refused_work(db: Any) -> Work:
    holder = HolderFactory()
    draft = work_draft_build(title="Spring", kind="text", identifiers=[{"scheme": "isbn", "value": isbn(1)}])
    work, claim = work_register(actor=Actor(party=holder), holder=holder, draft=draft)
    claim_verify(actor=Actor(user=StaffUserFactory()), claim=claim)
    refusal_file(actor=Actor(party=holder), holder=holder, scope="work", purposes=["train-ai"], work=work)
    return work


# The commands speak the active language (Korean by default); these assertions read the English.
in_english = pytest.mark.usefixtures("english")


@pytest.fixture
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


@in_english
def test_status_check_passes_on_a_maintained_projection(refused_work: Work) -> None:
    out = StringIO()

    call_command("status_check", stdout=out)

    assert "Status projection OK." in out.getvalue()


@in_english
def test_status_check_names_a_tampered_segment_and_repair_fixes_it(refused_work: Work) -> None:
    key = f"isbn:{isbn(1)}"
    StatusSegment.objects.filter(subject=key, purpose="train-ai").update(status="permitted")
    out = StringIO()

    with pytest.raises(CommandError, match="1 subjects differ"):
        call_command("status_check", stdout=out)
    assert f"key {key} train-ai: events say refused" in out.getvalue()
    assert "projection has permitted" in out.getvalue()

    call_command("status_check", "--repair", stdout=StringIO())
    call_command("status_check", stdout=out)
    assert "Status projection OK." in out.getvalue()


def test_a_refusal_dated_ahead_is_in_force_at_its_instant_without_any_task(db: Any) -> None:
    holder = HolderFactory()
    staff = Actor(user=StaffUserFactory())
    with time_machine.travel(START, tick=False) as clock:
        draft = work_draft_build(title="Later", kind="text", identifiers=[{"scheme": "isbn", "value": isbn(2)}])
        work, claim = work_register(actor=Actor(party=holder), holder=holder, draft=draft)
        claim_verify(actor=staff, claim=claim)
        refusal_file(
            actor=Actor(party=holder),
            holder=holder,
            scope="work",
            purposes=["train-genai"],
            work=work,
            effective_from=START + timedelta(days=1),
        )
        item = [{"scheme": "isbn", "value": isbn(2)}]

        before = lookup_batch_current(items=item, purpose="train-genai", at=timezone.now()).results[0]
        clock.move_to(START + timedelta(days=1))
        after = lookup_batch_current(items=item, purpose="train-genai", at=timezone.now()).results[0]

    assert (before["status"], after["status"]) == ("permitted", "refused")
    change = StatusChange.objects.get(subject=f"isbn:{isbn(2)}", purpose="train-genai", new_status="refused")
    assert change.effective_at == START + timedelta(days=1)
    assert change.old_status == "permitted"
    assert change.cause_code == "optout.refusal.filed"


@in_english
def test_repair_finds_a_key_that_no_work_holds_and_makes_it_unregistered(refused_work: Work) -> None:
    stray = f"isbn:{isbn(99)}"
    StatusSegment.objects.create(
        subject_type=SubjectType.KEY,
        subject=stray,
        purpose="train-ai",
        valid_from=timezone.now() - timedelta(days=1),
        status="refused",
        compensation="none",
        regime="use_first",
        pending_refusal=False,
    )
    with pytest.raises(CommandError, match="1 subjects differ"):
        call_command("status_check", stdout=StringIO())

    call_command("status_check", "--repair", stdout=StringIO())

    out = StringIO()
    call_command("status_check", stdout=out)
    assert "Status projection OK." in out.getvalue()
    (result,) = lookup_batch_current(
        items=[{"scheme": "isbn", "value": isbn(99)}], purpose="train-ai", at=timezone.now()
    ).results
    assert result["status"] == "unregistered"


@in_english
def test_status_check_names_a_segment_showing_an_old_title_and_repair_copies_the_works(refused_work: Work) -> None:
    StatusSegment.objects.filter(work=refused_work).update(work_title="Old title")
    out = StringIO()

    with pytest.raises(CommandError, match="1 works are shown with an old title or kind"):
        call_command("status_check", stdout=out)
    assert f"work {refused_work.pk}" in out.getvalue()

    call_command("status_check", "--repair", stdout=StringIO())
    call_command("status_check", stdout=StringIO())
    (result,) = lookup_batch_current(
        items=[{"scheme": "isbn", "value": isbn(1)}], purpose="train-ai", at=timezone.now()
    ).results
    assert result["work"]["title"] == refused_work.title
