"""Reads of the unclaimed list: the hold policy in force, and the public notice's rows, banded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import AccountKind, HoldEndAction, HoldPolicy, ManifestLine, UnclaimedNotice
from registry.models import Identifier, Work
from registry.search import SEARCH_MAX_RESULTS, identifier_keys_guess, work_search_ids

# Escrow the public list shows: held for a registered work's unclaimed share, or for an identifier no work has.
# Disputed escrow has known claimants and is not "unclaimed".
LISTED_ACCOUNT_KINDS = (AccountKind.ESCROW_UNCLAIMED, AccountKind.ESCROW_UNMATCHED)

MICRO = 1_000_000
# The bands the list shows instead of exact amounts, in won: [lower, upper).
AMOUNT_BANDS_KRW: tuple[tuple[int, int | None], ...] = (
    (0, 1_000),
    (1_000, 10_000),
    (10_000, 100_000),
    (100_000, 1_000_000),
    (1_000_000, 10_000_000),
    (10_000_000, None),
)


@dataclass(frozen=True)
class PolicyInForce:
    period_days: int
    end_action: str
    public_interest_account: str
    policy_id: int | None


def hold_policy_at(*, day: date) -> PolicyInForce:
    """The hold policy in force on ``day``: the latest staff policy from that day or before, else the settings'
    (``ESCROW_HOLD_PERIOD_DAYS``, market-share distribution)."""
    policy = HoldPolicy.objects.filter(effective_from__lte=day).order_by("-effective_from").first()
    if policy is None:
        return PolicyInForce(settings.ESCROW_HOLD_PERIOD_DAYS, HoldEndAction.MARKET_SHARE, "", None)
    return PolicyInForce(policy.period_days, policy.end_action, policy.public_interest_account, policy.pk)


def hold_end_actions(*, days: Sequence[date]) -> dict[date, PolicyInForce]:
    """The policy in force on each of ``days`` (one query)."""
    policies = list(HoldPolicy.objects.order_by("effective_from"))
    default = PolicyInForce(settings.ESCROW_HOLD_PERIOD_DAYS, HoldEndAction.MARKET_SHARE, "", None)
    answer: dict[date, PolicyInForce] = {}
    for day in set(days):
        chosen = default
        for policy in policies:
            if policy.effective_from <= day:
                chosen = PolicyInForce(policy.period_days, policy.end_action, policy.public_interest_account, policy.pk)
        answer[day] = chosen
    return answer


def amount_band(*, amount_micro: int) -> dict[str, Any]:
    won = amount_micro // MICRO
    for lower, upper in AMOUNT_BANDS_KRW:
        if upper is None or won < upper:
            return {"min_krw": lower, "max_krw": upper}
    raise AssertionError("the last band has no upper bound")


def band_label(band: dict[str, Any]) -> str:
    if band["max_krw"] is None:
        return str(_("%(min)s KRW or more") % {"min": f"{band['min_krw']:,}"})
    if band["min_krw"] == 0:
        return str(_("under %(max)s KRW") % {"max": f"{band['max_krw']:,}"})
    return f"{band['min_krw']:,}–{band['max_krw']:,} KRW"  # noqa: RUF001 (the en dash of a range)


def _open_holds() -> QuerySet[ManifestLine]:
    # Read through the partial index manifest_line_open_by_account (held_account, entry) where hold_open.
    return ManifestLine.objects.filter(
        held_account_id=OuterRef("account_id"),
        hold_open=True,
        entry__effective_at__gte=OuterRef("month_start"),
        entry__effective_at__lt=OuterRef("month_end"),
    )


def _open_amount() -> Subquery:
    return Subquery(
        _open_holds()
        .order_by()
        .values("held_account_id")
        .annotate(open=Sum(F("held_micro") - F("released_micro")))
        .values("open")[:1],
        output_field=BigIntegerField(),
    )


def unclaimed_notices(*, query: str = "") -> QuerySet[UnclaimedNotice]:
    """The public list: every notice whose holds still have money open, newest notice first, each with
    ``open_micro``; ``query`` (cleaned) keeps the rows of the works a title, creator or identifier finds and of
    the unregistered identifiers it names."""
    rows = (
        UnclaimedNotice.objects.filter(account__kind__in=LISTED_ACCOUNT_KINDS)
        .select_related("account")
        # Listed while anything of it is held (an open hold always has money open: held > released). The amount
        # is only summed for the rows of the page: PostgreSQL computes it after the sort and the limit.
        .filter(Exists(_open_holds()))
        .annotate(open_micro=Coalesce(_open_amount(), Value(0), output_field=BigIntegerField()))
        .order_by("-noticed_at", "-pk")
    )
    if query:
        work_ids = work_search_ids(query=query, limit=SEARCH_MAX_RESULTS)
        keys = [f"{key.scheme}:{key.value}" for key in identifier_keys_guess(query)]
        rows = rows.filter(
            Q(account__escrow_key__in=[f"work:{pk}" for pk in work_ids])
            | Q(account__escrow_key__in=keys)
            | Q(account__kind=AccountKind.ESCROW_UNMATCHED, account__escrow_key__icontains=query.lower())
        )
    return rows


def unclaimed_rows(*, notices: Sequence[UnclaimedNotice]) -> list[dict[str, Any]]:
    """The page's rows as the page and the API show them: what is held for, banded, the hold month and end (two
    queries for the works and identifiers of the page)."""
    work_ids = [
        int(n.account.escrow_key.removeprefix("work:"))
        for n in notices
        if n.account.kind == AccountKind.ESCROW_UNCLAIMED and n.account.escrow_key.startswith("work:")
    ]
    works = Work.objects.in_bulk(work_ids)
    identifiers: dict[int, list[str]] = {}
    for work_id, scheme, value in Identifier.objects.filter(work_id__in=work_ids).values_list(
        "work_id", "scheme", "value"
    ):
        identifiers.setdefault(work_id, []).append(f"{scheme}:{value}")
    unmatched_kinds = dict(
        ManifestLine.objects.filter(
            held_account_id__in=[n.account_id for n in notices if n.account.kind == AccountKind.ESCROW_UNMATCHED]
        )
        .exclude(kind="")
        .order_by()
        .values_list("held_account_id", "kind")
        .distinct()
    )
    rows = []
    for notice in notices:
        key = notice.account.escrow_key
        work = None
        if notice.account.kind == AccountKind.ESCROW_UNCLAIMED and key.startswith("work:"):
            work = works.get(int(key.removeprefix("work:")))
        band = amount_band(amount_micro=int(getattr(notice, "open_micro", 0)))
        rows.append(
            {
                "id": notice.pk,
                "held_for": "work" if work is not None else "identifier",
                "work": (
                    {
                        "id": work.pk,
                        "title": work.title,
                        "creators": work.creators,
                        "identifiers": sorted(identifiers.get(work.pk, [])),
                    }
                    if work is not None
                    else None
                ),
                "identifier": None if work is not None else key,
                "title": work.title if work is not None else key,
                "kind": work.kind if work is not None else unmatched_kinds.get(notice.account_id, ""),
                "amount_band": band,
                "amount_band_label": band_label(band),
                "hold_month": f"{notice.hold_month:%Y-%m}",
                "noticed_on": timezone.localtime(notice.noticed_at).date(),
                "hold_ends_on": notice.hold_ends_on,
            }
        )
    return rows


def month_bounds(*, month: date) -> tuple[datetime, datetime]:
    """A month's first instant and the next month's, in the registry's time zone."""
    zone = timezone.get_default_timezone()
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        timezone.make_aware(datetime.combine(first, time.min), zone),
        timezone.make_aware(datetime.combine(following, time.min), zone),
    )


def hold_ends_on(*, noticed_at: datetime, period_days: int) -> date:
    return timezone.localtime(noticed_at).date() + timedelta(days=period_days)
