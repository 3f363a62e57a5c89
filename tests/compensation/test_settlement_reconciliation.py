"""Every reconciliation identity of a settlement, on generated data over three consecutive periods.

Each seed generates holders with works (some co-owned), labs reporting random uses of registered and
unregistered ISBNs every month, a claim verified in the middle (an escrow release), a correction and a
threshold that some holders stay under, holders with and without payout profiles (individuals withheld 3.3%),
and labs paying part of each invoice; one seed pays holders on accrual, the other on the cash basis. After each
month is settled the identities must hold, and ``ledger_check`` must pass.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone, translation

from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import (
    AccountKind,
    EntryKind,
    Invoice,
    InvoiceSection,
    LabPayment,
    LedgerLine,
    ManifestLine,
    PayoutBasis,
    PayoutBasisPolicy,
    Settlement,
    Statement,
    StatementLine,
    StatementLineKind,
)
from compensation.payments.services import lab_payment_record
from compensation.usage.tariffs import tariff_set
from core.actors import Actor
from registry.models import OwnershipClaim
from registry.services import claim_file, claim_verify
from tests.compensation.helpers import manifest_body
from tests.factories import (
    ApiKeyFactory,
    HolderFactory,
    LabFactory,
    UserFactory,
    WorkFactory,
    payout_profile,
    verify_claims,
)
from tests.helpers import key_client, seoul

pytestmark = pytest.mark.django_db

MICRO = 1_000_000
# Valid ISBN-13s: the first six are registered, the last two only later or never.
ISBNS = [
    "9788936434021",
    "9780306406157",
    "9780262033848",
    "9791162540640",
    "9780131103627",
    "9780201633610",
    "9780596517748",
    "9781491950357",
]
MONTHS = [(2026, 7), (2026, 8), (2026, 9)]


def _sum(lines: Any) -> int:
    return int(lines.aggregate(t=Sum("amount_micro"))["t"] or 0)


@pytest.mark.parametrize("seed", [1, 2])
def test_settlements_of_generated_months_reconcile(
    seed, time_machine, staff, staff_api, settings, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    rng = random.Random(seed)
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = rng.choice([1_000, 5_000])
    # Seed 1 pays on accrual, seed 2 on the cash basis: only what the labs paid (they pay part of each invoice).
    cash = seed == 2
    if cash:
        PayoutBasisPolicy.objects.create(basis=PayoutBasis.CASH, effective_from=date(2026, 1, 1), set_by=staff)
    time_machine.move_to(seoul(2026, 6, 1, 9), tick=False)
    tariff_set(
        actor=Actor(user=staff), kind="text", unit="token", rate_krw=Decimal("0.0005"), effective_from=timezone.now()
    )
    holders = [
        HolderFactory(name=f"Holder {seed}-{i}", owner=UserFactory(username=f"h{seed}-{i}@example.org"))
        for i in range(4)
    ]
    # Individuals (3.3% withheld) and a corporation are paid; the fourth holder never gives payout details.
    for holder, status in zip(holders[:3], ["individual", "corporation", "individual"], strict=True):
        payout_profile(holder, verified_by=staff, tax_status=status)
    labs = [
        LabFactory(name=f"Lab {seed}-{i}", owner=UserFactory(username=f"l{seed}-{i}@example.org")) for i in range(2)
    ]
    lab_clients = [key_client(ApiKeyFactory(party=lab, scopes=["lookup", "usage:write"]).raw) for lab in labs]
    works = []
    for index, isbn in enumerate(ISBNS[:6]):
        owner = holders[index % len(holders)]
        if index % 3 == 0:  # co-owned: the owner 70%, the next holder 30%
            work = WorkFactory(holder=owner, identifiers=[("isbn", isbn)], share_bp=7000)
            partner = holders[(index + 1) % len(holders)]
            claim_file(actor=Actor(party=partner, is_system=True), work=work, holder=partner, share_bp=3000)
        else:
            work = WorkFactory(holder=owner, identifiers=[("isbn", isbn)])
        verify_claims(work, staff)
        works.append(work)

    settled: list[Settlement] = []
    for month_index, (year, month) in enumerate(MONTHS):
        for lab_index, client in enumerate(lab_clients):
            time_machine.move_to(seoul(year, month, 5 + 7 * lab_index, 12), tick=False)
            uses = [
                {
                    "scheme": "isbn",
                    "value": rng.choice(ISBNS),
                    "units": str(rng.randrange(1, 40_000_001)),
                    "unit": "token",
                    "used_at": (timezone.now() - timedelta(minutes=rng.randrange(1, 600))).isoformat(),
                }
                for _line in range(rng.randrange(5, 25))
            ]
            with capture(execute=True):
                response = client.post(
                    "/api/v1/usage-manifests",
                    manifest_body(uses, manifest_id=f"m{month_index}-{lab_index}"),
                    format="json",
                )
            assert response.status_code == 202, response.content
        if month_index == 1:
            # A late owner registers an ISBN that was used unregistered: its escrow is released to them.
            late = WorkFactory(holder=holders[0], identifiers=[("isbn", ISBNS[6])])
            with capture(execute=True):
                claim_verify(actor=Actor(user=staff), claim=OwnershipClaim.objects.get(work=late))
            # A correction: the registry credits a holder 1,234.5 KRW charged to a lab.
            accounts = accounts_ensure(
                keys=[
                    AccountKey(AccountKind.LAB_RECEIVABLE, labs[0].pk),
                    AccountKey(AccountKind.HOLDER_PAYABLE, holders[1].pk),
                ]
            )
            receivable, payable = accounts.values()
            ledger_post_entries(
                postings=[
                    Posting(
                        idempotency_key=f"correction-{seed}",
                        kind=EntryKind.ADJUSTMENT,
                        effective_at=timezone.now(),
                        lines=[(receivable.pk, 1_234_500_000), (payable.pk, -1_234_500_000)],
                    )
                ]
            )
        time_machine.move_to(seoul(year, month + 1, 2, 9), tick=False)
        with capture(execute=True):
            response = staff_api.post(
                "/api/v1/settlements",
                {
                    "period_start": f"{year}-{month:02d}-01",
                    "period_end": _last_day(year, month),
                },
                format="json",
            )
        assert response.status_code == 202, response.content
        settlement = Settlement.objects.get(pk=response.json()["id"])
        assert settlement.status == "settled", settlement.failure_reason
        _assert_reconciles(settlement, previous=settled[-1] if settled else None, cash=cash)
        settled.append(settlement)
        # Each lab pays part of its invoice (a third to all of it), received the day after the settlement.
        for invoice in Invoice.objects.filter(settlement=settlement, amount_due_won__gt=0):
            lab_payment_record(
                actor=Actor(user=staff),
                lab=invoice.lab,
                amount_won=max(1, invoice.amount_due_won * rng.randrange(1, 4) // 3),
                received_on=timezone.localdate(),
                bank_reference=f"{invoice.number}-{seed}",
            )

    if cash:
        # The cash basis never pays holders more than the labs paid (plus the correction, which no lab stands behind).
        gross = Statement.objects.aggregate(t=Sum("payout_micro") + Sum("withheld_micro"))["t"]
        paid_in = LabPayment.objects.filter(entry__effective_at__lt=settled[-1].period_end).aggregate(
            t=Sum("amount_won")
        )["t"]
        assert 0 < gross <= (paid_in or 0) * MICRO + 1_234_500_000
    out = StringIO()
    with translation.override("en"):
        call_command("ledger_check", stdout=out)
    assert out.getvalue().strip().endswith("Ledger OK."), out.getvalue()
    assert StatementLine.objects.filter(kind=StatementLineKind.RELEASE).exists()
    assert StatementLine.objects.filter(kind=StatementLineKind.ADJUSTMENT).exists()


def _last_day(year: int, month: int) -> str:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return f"{following - timedelta(days=1):%Y-%m-%d}"


def _assert_reconciles(settlement: Settlement, *, previous: Settlement | None, cash: bool) -> None:
    start, end = settlement.period_start, settlement.period_end
    statements = list(Statement.objects.filter(settlement=settlement))
    assert statements
    paid_due = 0
    for statement in statements:
        payable = LedgerLine.objects.filter(account__kind=AccountKind.HOLDER_PAYABLE, account__party=statement.holder)
        lines = StatementLine.objects.filter(statement=statement)
        # opening = the ledger before the period; opening + lines = due; closing - opening = the movement.
        assert statement.opening_micro == -_sum(payable.filter(entry__effective_at__lt=start))
        assert statement.due_micro == statement.opening_micro + _sum(lines)
        movement = -_sum(payable.filter(entry__effective_at__gte=start, entry__effective_at__lt=end))
        assert statement.closing_micro - statement.opening_micro == movement
        assert statement.closing_micro == -_sum(payable.filter(entry__effective_at__lt=end))
        for kind, column in (
            (StatementLineKind.ACCRUAL, statement.accrued_micro),
            (StatementLineKind.RELEASE, statement.released_micro),
            (StatementLineKind.ADJUSTMENT, statement.adjustments_micro),
        ):
            assert _sum(lines.filter(kind=kind)) == column
        # Each accrual line traces to the allocations of its manifest's lines for its work.
        for line in lines.filter(kind=StatementLineKind.ACCRUAL):
            parts = [
                part[2]
                for ml in ManifestLine.objects.filter(manifest=line.manifest, work=line.work)
                for part in ml.allocation
                if part[0] == statement.holder_id and part[3] == ml.entry_id
            ]
            assert sum(parts) == line.amount_micro
            assert len(parts) == line.lines
        # Whole won, never more than due; paid holders carry their sub-won rest, the others everything.
        assert statement.payout_micro % MICRO == 0
        assert statement.withheld_micro % MICRO == 0
        assert statement.rounding_micro == 0
        assert statement.basis == ("cash" if cash else "accrual")
        if statement.payout_entry_id is not None:
            paid_due += statement.due_micro
            gross = statement.payout_micro + statement.withheld_micro
            # Withholding by the holder's tax status: 3.3% of the gross for individuals, none for corporations.
            assert statement.withheld_micro == gross // MICRO * statement.withholding_bp // 10_000 * MICRO
            assert statement.withholding_bp == {"individual": 330, "corporation": 0}[statement.tax_status]
            if cash:
                assert gross <= statement.due_micro
            else:
                assert gross == statement.due_micro // MICRO * MICRO
                assert statement.closing_micro == statement.due_micro % MICRO
            assert statement.due_micro >= settlement.payout_threshold_micro
        else:
            assert statement.carried_forward_micro == statement.due_micro
            if statement.holder.name.endswith("-3") and statement.due_micro >= settlement.payout_threshold_micro:
                assert statement.carry_reason in ("no_verified_profile", "awaiting_lab_payments")
        # No holder's payable is overdrawn at the end of a period (it holds what is carried forward).
        assert statement.closing_micro >= 0 or statement.payout_entry_id is None
        if previous is not None:
            before = Statement.objects.filter(settlement=previous, holder=statement.holder).first()
            if before is not None:
                assert statement.opening_micro == before.closing_micro
    totals = settlement.totals
    assert totals["payout"] + totals["withheld"] + totals["carried_forward"] == totals["due"]
    assert totals["rounding"] == 0
    # Each paid holder is paid its own whole won: together at most the whole won of what they were due.
    assert (totals["payout"] + totals["withheld"]) // MICRO <= paid_due // MICRO
    for invoice in Invoice.objects.filter(settlement=settlement):
        receivable = LedgerLine.objects.filter(account__kind=AccountKind.LAB_RECEIVABLE, account__party=invoice.lab)
        assert invoice.opening_micro == _sum(receivable.filter(entry__effective_at__lt=start))
        during = receivable.filter(entry__effective_at__gte=start, entry__effective_at__lt=end)
        assert invoice.total_micro == _sum(during.exclude(entry__kind=EntryKind.PAYMENT))
        assert invoice.payments_micro == _sum(during.filter(entry__kind=EntryKind.PAYMENT))
        assert invoice.closing_micro == _sum(receivable.filter(entry__effective_at__lt=end))
        usage = _sum(invoice.lines.filter(section=InvoiceSection.USAGE))
        violations = _sum(invoice.lines.filter(section=InvoiceSection.VIOLATION))
        assert usage == invoice.compensation_micro + invoice.violations_micro
        assert violations == invoice.violations_micro
        assert invoice.amount_due_won == (invoice.total_micro + MICRO // 2) // MICRO
