"""Writes of the unclaimed list: notices recorded as money is first held, and the staff's hold policy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import Account, HoldEndAction, HoldPolicy, UnclaimedNotice
from compensation.unclaimed.selectors import LISTED_ACCOUNT_KINDS, hold_end_actions, hold_ends_on, month_bounds
from core.actors import Actor, require_staff
from core.errors import InvalidInput, InvalidState
from registry.audit import audit_record


def unclaimed_notices_record(*, holds: Iterable[tuple[int, datetime]]) -> int:
    """Record the notice of each (escrow account, hold month) that money is held in for the first time; called by
    the ledger in the transaction that posts the holds, so a hold is listed as soon as it is posted. ``holds`` are
    (account id, the entry's effective instant). Returns how many notices are new."""
    pairs = {(account_id, timezone.localtime(at).date().replace(day=1)) for account_id, at in holds}
    if not pairs:
        return 0
    listed = set(
        Account.objects.filter(pk__any_of=frozenset(a for a, _m in pairs), kind__in=LISTED_ACCOUNT_KINDS).values_list(
            "pk", flat=True
        )
    )
    pairs = {(a, m) for a, m in pairs if a in listed}
    if not pairs:
        return 0
    existing = set(
        UnclaimedNotice.objects.filter(
            account__id__any_of=frozenset(a for a, _m in pairs), hold_month__in={m for _a, m in pairs}
        ).values_list("account_id", "hold_month")
    )
    now = timezone.now()
    policy = hold_end_actions(days=[timezone.localdate(now)])[timezone.localdate(now)]
    rows = []
    for account_id, month in sorted(pairs - existing):
        start, end = month_bounds(month=month)
        rows.append(
            UnclaimedNotice(
                account_id=account_id,
                hold_month=month,
                month_start=start,
                month_end=end,
                noticed_at=now,
                hold_ends_on=hold_ends_on(noticed_at=now, period_days=policy.period_days),
                policy_id=policy.policy_id,
            )
        )
    # Two chunks holding money in one account at once: the unique (account, month) keeps the first notice.
    UnclaimedNotice.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def hold_policy_set(
    *,
    actor: Actor,
    effective_from: date,
    period_days: int,
    end_action: str,
    public_interest_account: str = "",
    reason: str = "",
) -> HoldPolicy:
    """Set the hold policy from a day on (today or later: the period of a hold already noticed never changes, and
    what happens at a past end is not rewritten)."""
    require_staff(actor)
    if end_action not in HoldEndAction.values:
        raise InvalidInput(_("At the end, money is distributed by market share or transferred."), field="end_action")
    account = (public_interest_account or "").strip()
    if end_action == HoldEndAction.PUBLIC_INTEREST and not account:
        raise InvalidInput(
            _("Name the public-interest account the money is transferred to."),
            code="required",
            field="public_interest_account",
        )
    if end_action == HoldEndAction.MARKET_SHARE:
        account = ""
    if not 0 <= period_days <= 36_500:
        raise InvalidInput(_("The hold period is 0 to 36,500 days."), code="out_of_range", field="period_days")
    if effective_from < timezone.localdate():
        raise InvalidInput(
            _("A hold policy starts today or later; history cannot be rewritten."),
            code="in_the_past",
            field="effective_from",
        )
    with transaction.atomic():
        if HoldPolicy.objects.filter(effective_from=effective_from).exists():
            raise InvalidState(_("A hold policy already starts on that day."), code="policy_day_taken")
        policy = HoldPolicy.objects.create(
            effective_from=effective_from,
            period_days=period_days,
            end_action=end_action,
            public_interest_account=account,
            reason=reason.strip(),
            created_by=actor.person,
        )
        audit_record(
            code="compensation.hold_policy.set",
            actor=actor,
            target=policy,
            data={
                "effective_from": effective_from.isoformat(),
                "period_days": period_days,
                "end_action": end_action,
                "public_interest_account": account,
            },
        )
    return policy
