"""A stateful property test: random postings, retries, crashes and reversals never break the ledger.

After every step: each entry's lines sum to zero (two lines at least), all balances together are zero,
no entry is reversed twice, and each account's balance equals the sum a model of the ledger predicts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Count, Q, Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from compensation.errors import LedgerError
from compensation.ledger.selectors import account_balance
from compensation.ledger.services import (
    AccountKey,
    Posting,
    accounts_ensure,
    ledger_post,
    ledger_post_many,
    ledger_reverse,
)
from compensation.models import Account, AccountKind, EntryKind, LedgerEntry, LedgerLine
from core.actors import Actor
from registry.models import Party, PartyKind
from tests.compensation.helpers import deferred_guards_check
from tests.helpers import at

pytestmark = pytest.mark.django_db

WHEN = at("2026-03-15T12:00:00+09:00")
KEYS = [f"line:{n}" for n in range(12)]  # few keys, so retries and collisions happen often
ACCOUNT_COUNT = 5

amounts = st.integers(min_value=-(10**12), max_value=10**12).filter(bool)
line_sets = st.lists(
    st.tuples(st.integers(min_value=0, max_value=ACCOUNT_COUNT - 1), amounts), min_size=1, max_size=4
).filter(lambda lines: sum(a for _i, a in lines) != 0)


class Crash(Exception):
    pass


def _crash_after(work: Callable[[], object]) -> None:
    with transaction.atomic():
        work()
        raise Crash


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example runs in its own savepoint, rolled back in teardown().
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        lab = Party.objects.create(kind=PartyKind.LAB, name="Lab")
        holders = [Party.objects.create(kind=PartyKind.HOLDER, name=f"Holder {n}") for n in range(2)]
        keys = [
            AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk),
            *(AccountKey(AccountKind.HOLDER_PAYABLE, h.pk) for h in holders),
            AccountKey(AccountKind.VIOLATIONS),  # escrow may not go into debit, so not drawn at random
            AccountKey(AccountKind.ROUNDING),
        ]
        found = accounts_ensure(keys=keys)
        self.account_ids = [found[k].pk for k in keys]
        self.posted: dict[str, tuple[tuple[int, int], ...]] = {}  # key → sorted (account id, amount)
        self.reversed: set[str] = set()
        self.expected: Counter[int] = Counter()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    def _lines(self, drawn: list[tuple[int, int]]) -> list[tuple[int, int]]:
        # Close the drawn lines with one that balances them.
        lines = [(self.account_ids[i], amount) for i, amount in drawn]
        return [*lines, (self.account_ids[-1], -sum(amount for _a, amount in lines))]

    def _record(self, key: str, lines: list[tuple[int, int]]) -> None:
        self.posted[key] = tuple(sorted(lines))
        for account_id, amount in lines:
            self.expected[account_id] += amount

    @rule(key=st.sampled_from(KEYS), drawn=line_sets)
    def post(self, key: str, drawn: list[tuple[int, int]]) -> None:
        lines = self._lines(drawn)
        if key in self.posted and self.posted[key] != tuple(sorted(lines)):
            with pytest.raises(LedgerError) as conflict:
                ledger_post(idempotency_key=key, kind=EntryKind.ACCRUAL, effective_at=WHEN, lines=lines)
            assert conflict.value.code == "idempotency_conflict"
            return
        _entry, created = ledger_post(idempotency_key=key, kind=EntryKind.ACCRUAL, effective_at=WHEN, lines=lines)
        assert created == (key not in self.posted)
        if created:
            self._record(key, lines)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """A task delivered twice posts what it posted before: nothing changes."""
        if not self.posted:
            return
        key = data.draw(st.sampled_from(sorted(k for k in self.posted if not k.startswith("reversal:"))))
        lines_before = LedgerLine.objects.count()
        _entry, created = ledger_post(
            idempotency_key=key, kind=EntryKind.ACCRUAL, effective_at=WHEN, lines=list(self.posted[key])
        )
        assert not created
        assert LedgerLine.objects.count() == lines_before

    @rule(chunk=st.lists(st.tuples(st.sampled_from(KEYS), line_sets), min_size=1, max_size=6), crash=st.booleans())
    def post_chunk(self, chunk: list[tuple[str, list[tuple[int, int]]]], crash: bool) -> None:
        """A chunk of postings, some new, some repeated; a crash midway leaves nothing behind."""
        postings: list[Posting] = []
        new: dict[str, list[tuple[int, int]]] = {}
        for key, drawn in chunk:
            # Repeats carry exactly what was posted before, as a retried task would.
            lines = list(self.posted[key]) if key in self.posted else new.get(key) or self._lines(drawn)
            if key not in self.posted:
                new[key] = lines
            postings.append(Posting(idempotency_key=key, kind=EntryKind.ACCRUAL, effective_at=WHEN, lines=lines))
        if crash:
            with pytest.raises(Crash):
                _crash_after(lambda: ledger_post_many(postings=postings))
            return
        assert ledger_post_many(postings=postings) == len(new)
        for key, lines in new.items():
            self._record(key, lines)

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        if not self.posted:
            return
        key = data.draw(st.sampled_from(sorted(self.posted)))
        entry = LedgerEntry.objects.get(idempotency_key=key)
        if key in self.reversed:
            with pytest.raises(LedgerError) as again:
                ledger_reverse(entry=entry, actor=Actor.system(), reason="again")
            assert again.value.code == "already_reversed"
            return
        reversal = ledger_reverse(entry=entry, actor=Actor.system(), reason="correction")
        self.reversed.add(key)
        self._record(reversal.idempotency_key, [(a, -amount) for a, amount in self.posted[key]])

    @invariant()
    def every_entry_balances(self) -> None:
        unbalanced = (
            LedgerEntry.objects.annotate(n=Count("lines"), total=Sum("lines__amount_micro"))
            .filter(Q(n__lt=2) | ~Q(total=0))
            .values_list("idempotency_key", flat=True)
        )
        assert list(unbalanced) == []
        deferred_guards_check()  # and PostgreSQL's own trigger agrees

    @invariant()
    def all_balances_sum_to_zero(self) -> None:
        assert (LedgerLine.objects.aggregate(total=Sum("amount_micro"))["total"] or 0) == 0

    @invariant()
    def no_entry_is_reversed_twice(self) -> None:
        twice = LedgerEntry.objects.filter(reverses__isnull=False).values("reverses").annotate(n=Count("id"))
        assert all(row["n"] == 1 for row in twice)
        assert LedgerEntry.objects.filter(kind=EntryKind.REVERSAL).count() == len(self.reversed)

    @invariant()
    def balances_are_the_sums_of_lines(self) -> None:
        assert LedgerEntry.objects.count() == len(self.posted)
        for account in Account.objects.filter(pk__in=self.account_ids):
            assert account_balance(account=account) == self.expected[account.pk], account


def test_the_ledger_survives_random_postings_retries_crashes_and_reversals(db: Any) -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
