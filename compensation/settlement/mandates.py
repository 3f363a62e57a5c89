"""Where a settled period's statements and payouts go under the members' mandates.

The rules, decided once per period when its statements are written and stored with them (so a re-run, or a mandate
ended later, never changes what a settled period said):

- **Statements.** An agent receives a member's statement when a mandate of that member with the power to receive
  statements and ``statements_to`` ``agent`` or ``both`` was in force at any instant of the period (it represented
  the member for that period, or part of it). The member is sent its statement unless the mandate in force at the
  period's last instant says ``agent`` only. Either way the member can always read its own statement in the portal
  and the API: a rights holder's own account is never hidden from it; "agent only" decides who is *sent* it.
- **Payouts.** The mandate with the power to receive payouts in force at the period's last instant sends the
  member's payout to its agent (the latest-starting one if, unusually, two are); otherwise the member is paid. The
  payee needs a verified payout profile; the withholding is the member's (the income is the member's), at the tax
  status of the member's own payout profile when it has one, else the agent's.
- **Scope.** A works- or kinds-scoped mandate sends the member's whole statement and payout, like a catalogue one:
  a statement is one account (opening balance, adjustments, withholding, one payout) that cannot be cut by work
  without inventing figures. A member who wants an agent to see only some works' earnings does not give that agent
  the power to receive statements.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q

from registry.models import Mandate, MandateStatus, StatementsTo


@dataclass
class MemberMandates:
    """What the mandates say for one member in one period."""

    # (agent id, mandate id) of each agent the statement is sent to.
    agents: list[tuple[int, int]] = field(default_factory=list)
    member_receives: bool = True
    # (agent id, mandate id) the payout goes to, if any.
    payee: tuple[int, int] | None = None


def _in_force_between(mandate: Mandate) -> tuple[datetime, datetime | None]:
    """The instants the mandate was in force: from its start (or its acceptance, if later) to its end (the
    agreed ``ends_at`` or the moment either side ended it, whichever came first)."""
    start = max(mandate.starts_at, mandate.accepted_at) if mandate.accepted_at else mandate.starts_at
    ends = [moment for moment in (mandate.ends_at, mandate.ended_at) if moment is not None]
    return start, min(ends) if ends else None


def period_mandates(
    *, period_start: datetime, period_end: datetime, member_ids: list[int]
) -> dict[int, MemberMandates]:
    """Per member among ``member_ids`` with a mandate to receive statements or payouts that touches the period,
    what it says (members without one are not in the answer: their statements and payouts go to them). One query."""
    last_instant = period_end - timedelta(microseconds=1)
    found: dict[int, MemberMandates] = defaultdict(MemberMandates)
    payees: dict[int, tuple[datetime, int, int]] = {}
    mandates = (
        Mandate.objects.filter(
            Q(receives_statements=True) | Q(receives_payouts=True),
            member_id__in=member_ids,
            accepted_at__isnull=False,
            status__in=[MandateStatus.ACTIVE, MandateStatus.ENDED],
            starts_at__lt=period_end,
        )
        .order_by("member_id", "starts_at", "pk")
        .only(
            "pk",
            "agent_id",
            "member_id",
            "starts_at",
            "ends_at",
            "accepted_at",
            "ended_at",
            "statements_to",
            "receives_statements",
            "receives_payouts",
        )
    )
    for mandate in mandates:
        assert mandate.member_id is not None  # accepted: it names its member
        start, end = _in_force_between(mandate)
        if end is not None and end <= start:
            # Ended (or agreed to end) before it started: it was never in force.
            continue
        touches_period = start < period_end and (end is None or end > period_start)
        at_end = start <= last_instant and (end is None or end > last_instant)
        if not touches_period:
            continue
        member = found[mandate.member_id]
        to_agent = mandate.statements_to in (StatementsTo.AGENT, StatementsTo.BOTH)
        if mandate.receives_statements and to_agent and all(a != mandate.agent_id for a, _m in member.agents):
            member.agents.append((mandate.agent_id, mandate.pk))
        if at_end and mandate.receives_statements and mandate.statements_to == StatementsTo.AGENT:
            member.member_receives = False
        if at_end and mandate.receives_payouts:
            best = payees.get(mandate.member_id)
            if best is None or (start, mandate.pk) > (best[0], best[2]):
                payees[mandate.member_id] = (start, mandate.agent_id, mandate.pk)
    for member_id, (_start, agent_id, mandate_id) in payees.items():
        found[member_id].payee = (agent_id, mandate_id)
    return dict(found)
