"""Market-share distribution: escrow that nobody claimed within the hold period goes, once, to the holders
the same lab paid in the same month, pro rata to what it paid them (the way royalty societies distribute
unmatched royalties), keeping a reserve for late claimants.

A hold month is the month (registry time zone) of the accrual that held the money. Per lab, each open hold
of that month gives up its unreserved part, ``open * (1 - reserve)`` rounded down; the parts are split among
the holders by their matched accruals from that lab in that month (largest remainder). The hold stays
open for what is left, which a late claimant's escrow release still finds. Lines record the distribution
in their allocation as ``[None, None, part, entry]``, so each micro-won of a hold is released once
(ledger invariant 6), whichever way it goes.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.ledger.allocation import allocate_largest_remainder
from compensation.ledger.escrow import escrow_lock
from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import (
    DISTRIBUTION_JOB,
    AccountKind,
    DistributionShare,
    DistributionStatus,
    EntryKind,
    HoldEndAction,
    LedgerEntry,
    ManifestLine,
    MarketShareDistribution,
    UnclaimedNotice,
    UsageManifest,
)
from compensation.unclaimed.selectors import hold_end_actions
from core.actors import Actor, require_staff
from core.errors import InvalidInput
from core.jobs import job_publish_on_commit, job_retry, job_run
from registry.audit import audit_record


def hold_month_bounds(*, month: date) -> tuple[datetime, datetime]:
    zone = timezone.get_default_timezone()
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return (
        timezone.make_aware(datetime.combine(first, time.min), zone),
        timezone.make_aware(datetime.combine(following, time.min), zone),
    )


def distributable_before(*, at: datetime) -> datetime:
    """Holds accrued before this instant may be distributed at ``at``: a hold month becomes eligible once
    the hold period has passed after its end, i.e. every month before the one ``at`` minus the period is in.
    """
    local = timezone.localtime(at - timedelta(days=settings.ESCROW_HOLD_PERIOD_DAYS))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def distribution_start(*, actor: Actor, hold_month: date) -> tuple[MarketShareDistribution, bool]:
    """Start the distribution of ``hold_month``'s open holds (a task runs it); staff only.

    Returns the distribution and whether this call started it: a month is distributed once, and asking
    again answers with its distribution (queued again if it has not finished, retried if it failed).
    """
    require_staff(actor)
    month = hold_month.replace(day=1)
    month_start, _end = hold_month_bounds(month=month)
    notices = UnclaimedNotice.objects.filter(hold_month=month)
    if notices.exists():
        # The hold period counts from each hold's notice (its first day on the public list): the month is
        # distributed once, when every notice of it has run its period.
        not_over = notices.filter(hold_ends_on__gt=timezone.localdate()).exists()
    else:
        not_over = month_start >= distributable_before(at=timezone.now())
    if not_over:
        raise InvalidInput(
            _("This month's escrow is still within the hold period."), code="hold_period_not_over", field="hold_month"
        )
    with transaction.atomic():
        distribution, created = MarketShareDistribution.objects.get_or_create(
            hold_month=month,
            defaults={"reserve_bp": settings.MARKET_SHARE_RESERVE_BP, "created_by": actor.person},
        )
        if created:
            audit_record(
                code="compensation.distribution.started",
                actor=actor,
                target=distribution,
                data={"hold_month": f"{month:%Y-%m}", "reserve_bp": distribution.reserve_bp},
            )
        if distribution.status == DistributionStatus.FAILED:
            distribution = job_retry(actor=actor, kind=DISTRIBUTION_JOB, job_id=distribution.pk)
        elif distribution.status != DistributionStatus.DONE:
            # The outbox: published after commit; if the broker is down, the sweep publishes it later.
            job_publish_on_commit(kind=DISTRIBUTION_JOB, job_id=distribution.pk)
    return distribution, created


def distribution_execute(*, distribution_id: int) -> MarketShareDistribution:
    """Run a started distribution, in one transaction; safe to run again (then it does nothing). A failure
    leaves nothing of it behind and is recorded on it, with its code (the shared job lifecycle)."""
    job_run(kind=DISTRIBUTION_JOB, job_id=distribution_id, work=_distribution_run)
    return MarketShareDistribution.objects.get(pk=distribution_id)


def _distribution_run(claimed: MarketShareDistribution) -> None:
    with transaction.atomic():
        # Releases, chunks of manifests and any other run of a distribution wait; the holds read below cannot
        # change until commit. The distribution's row is not locked for the run, so that its heartbeat goes on.
        escrow_lock(exclusive=True)
        distribution = MarketShareDistribution.objects.get(pk=claimed.pk)
        if distribution.status != DistributionStatus.RUNNING:
            return
        _distribute(distribution)
        distribution.status = DistributionStatus.DONE
        distribution.finished_at = timezone.now()
        distribution.heartbeat_at = None
        distribution.save()
        audit_record(
            code="compensation.distribution.done",
            actor=Actor.system(),
            target=distribution,
            data={
                "hold_month": f"{distribution.hold_month:%Y-%m}",
                "lines": distribution.lines,
                "distributed_micro": distribution.distributed_micro,
                "reserved_micro": distribution.reserved_micro,
                "undistributable_micro": distribution.undistributable_micro,
            },
        )


def _distribute(distribution: MarketShareDistribution) -> None:
    start, end = hold_month_bounds(month=distribution.hold_month)
    month_entries = frozenset(
        LedgerEntry.objects.filter(kind=EntryKind.ACCRUAL, effective_at__gte=start, effective_at__lt=end).values_list(
            "pk", flat=True
        )
    )
    if not month_entries:
        return
    open_holds = list(
        ManifestLine.objects.select_for_update().filter(entry__id__any_of=month_entries, hold_open=True).order_by("pk")
    )
    # The month's accruals name their manifests; only those manifests' labs are needed.
    manifest_ids = frozenset(
        int(pk)
        for pk in LedgerEntry.objects.filter(pk__any_of=month_entries).values_list("source__manifest", flat=True)
        if pk is not None
    )
    labs = dict(UsageManifest.objects.filter(pk__any_of=manifest_ids).values_list("pk", "lab_id"))
    ends = _hold_ends(distribution, open_holds)
    today = timezone.localdate()
    policies = hold_end_actions(days=[end for end in ends.values() if end is not None])
    holds: dict[int, list[ManifestLine]] = defaultdict(list)
    transfers: dict[str, list[ManifestLine]] = defaultdict(list)
    for line in open_holds:
        hold_end = ends.get(line.held_account_id or 0)
        if hold_end is not None and hold_end > today:
            continue  # still within its hold period: it stays in escrow
        policy = policies.get(hold_end) if hold_end is not None else None
        if policy is not None and policy.end_action == HoldEndAction.PUBLIC_INTEREST:
            transfers[policy.public_interest_account].append(line)
        else:
            holds[labs[line.manifest_id]].append(line)
    # What each lab paid each holder at use in the month: the weights.
    basis: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for manifest, entry, allocation in (
        ManifestLine.objects.filter(entry__id__any_of=month_entries, paid_micro__gt=0)
        .order_by()
        .values_list("manifest_id", "entry_id", "allocation")
        .iterator(chunk_size=5_000)
    ):
        for holder, _claim, amount, paid_by in allocation:
            if holder is not None and paid_by == entry and amount > 0:
                basis[labs[manifest]][holder] += amount
    changed: list[ManifestLine] = []
    for lab in sorted(holds):
        changed += _distribute_lab(distribution, lab, holds[lab], basis.get(lab, {}))
    for name in sorted(transfers):
        changed += _transfer(distribution, name, transfers[name])
    ManifestLine.objects.bulk_update(changed, ["allocation", "released_micro", "hold_open"], batch_size=1_000)
    UsageManifest.objects.filter(pk__in={line.manifest_id for line in changed}).update(summary=None)


def _hold_ends(distribution: MarketShareDistribution, lines: list[ManifestLine]) -> dict[int, date | None]:
    """Per escrow account of the month's holds, the day its hold period ends: its notice's (held for a work's
    unclaimed share or an unregistered identifier), else None (disputed escrow is not on the public list; it goes
    when the month does)."""
    accounts = {line.held_account_id for line in lines if line.held_account_id is not None}
    ends: dict[int, date | None] = dict.fromkeys(accounts)
    ends.update(
        UnclaimedNotice.objects.filter(
            hold_month=distribution.hold_month, account__id__any_of=frozenset(accounts)
        ).values_list("account_id", "hold_ends_on")
    )
    return ends


def _transfer(distribution: MarketShareDistribution, name: str, holds: list[ManifestLine]) -> list[ManifestLine]:
    """Move the unreserved part of each hold to the public-interest account ``name`` (the hold policy in force at
    the end of the holds' period said so), in one entry; the reserve stays for a late claimant, as with
    market-share distribution."""
    keep_bp = distribution.reserve_bp
    parts = {line.pk: (line.held_micro - line.released_micro) * (10_000 - keep_bp) // 10_000 for line in holds}
    open_total = sum(line.held_micro - line.released_micro for line in holds)
    pool = sum(parts.values())
    if pool == 0:
        distribution.reserved_micro += open_total
        return []
    debits: dict[int, int] = defaultdict(int)
    for line in holds:
        if parts[line.pk] and line.held_account_id is not None:
            debits[line.held_account_id] += parts[line.pk]
    target = accounts_ensure(keys=[AccountKey(AccountKind.PUBLIC_INTEREST, escrow_key=name)])
    account = target[AccountKey(AccountKind.PUBLIC_INTEREST, escrow_key=name)]
    posting = Posting(
        idempotency_key=f"distribution:{distribution.pk}:public-interest:{hashlib.sha256(name.encode()).hexdigest()[:16]}",
        kind=EntryKind.TRANSFER,
        effective_at=timezone.now(),
        lines=[*sorted(debits.items()), (account.pk, -pool)],
        memo=f"unclaimed {distribution.hold_month:%Y-%m} escrow transferred to {name}",
        source={
            "distribution": distribution.pk,
            "hold_month": f"{distribution.hold_month:%Y-%m}",
            "public_interest": name,
        },
    )
    entry_id = ledger_post_entries(postings=[posting])[posting.idempotency_key]
    changed = []
    for line in holds:
        part = parts[line.pk]
        if not part:
            continue
        line.allocation = [*line.allocation, [None, None, part, entry_id]]
        line.released_micro += part
        line.hold_open = line.released_micro < line.held_micro
        changed.append(line)
    distribution.lines += len(changed)
    distribution.transferred_micro += pool
    distribution.reserved_micro += open_total - pool
    return changed


def _distribute_lab(
    distribution: MarketShareDistribution, lab: int, holds: list[ManifestLine], basis: dict[int, int]
) -> list[ManifestLine]:
    keep_bp = distribution.reserve_bp
    parts = {line.pk: (line.held_micro - line.released_micro) * (10_000 - keep_bp) // 10_000 for line in holds}
    pool = sum(parts.values())
    open_total = sum(line.held_micro - line.released_micro for line in holds)
    if not basis or pool == 0:
        distribution.undistributable_micro += open_total
        return []
    holders = sorted(basis)
    shares = dict(
        zip(holders, allocate_largest_remainder(total=pool, weights=[basis[h] for h in holders]), strict=True)
    )
    debits: dict[int, int] = defaultdict(int)
    for line in holds:
        if parts[line.pk] and line.held_account_id is not None:
            debits[line.held_account_id] += parts[line.pk]
    payables = accounts_ensure(keys=[AccountKey(AccountKind.HOLDER_PAYABLE, holder) for holder in holders])
    source: dict[str, Any] = {
        "distribution": distribution.pk,
        "hold_month": f"{distribution.hold_month:%Y-%m}",
        "lab": lab,
    }
    posting = Posting(
        idempotency_key=f"distribution:{distribution.pk}:lab:{lab}",
        kind=EntryKind.DISTRIBUTION,
        effective_at=timezone.now(),
        lines=[
            *sorted(debits.items()),
            *(
                (payables[AccountKey(AccountKind.HOLDER_PAYABLE, holder)].pk, -amount)
                for holder, amount in shares.items()
                if amount
            ),
        ],
        memo=f"market-share distribution of {distribution.hold_month:%Y-%m} escrow (lab {lab})",
        source=source,
    )
    entry_id = ledger_post_entries(postings=[posting])[posting.idempotency_key]
    DistributionShare.objects.bulk_create(
        [
            DistributionShare(
                distribution=distribution,
                lab_id=lab,
                holder_id=holder,
                basis_micro=basis[holder],
                amount_micro=amount,
                entry_id=entry_id,
            )
            for holder, amount in shares.items()
        ]
    )
    changed = []
    for line in holds:
        part = parts[line.pk]
        if not part:
            continue
        line.allocation = [*line.allocation, [None, None, part, entry_id]]
        line.released_micro += part
        line.hold_open = line.released_micro < line.held_micro
        changed.append(line)
    distribution.lines += len(changed)
    distribution.distributed_micro += pool
    distribution.reserved_micro += open_total - pool
    return changed
