"""Settlement runs: statements, invoices and payouts that reconcile to the micro-won, once, in a closed period.

The clock is moved with time-machine: uses are reported in September, the period is settled in October,
and later postings land in the open period.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone, translation

from compensation.ledger.services import AccountKey, Posting, accounts_ensure, ledger_post_entries
from compensation.models import (
    AccountKind,
    EntryKind,
    Invoice,
    InvoiceSection,
    LedgerEntry,
    LedgerLine,
    ManifestLine,
    Outcome,
    Settlement,
    SettlementStatus,
    Statement,
    StatementLine,
    StatementLineKind,
)
from tests.compensation.helpers import BOOK, CO_OWNED, UNREGISTERED
from tests.factories import payout_profile
from tests.helpers import seoul

pytestmark = pytest.mark.django_db

MICRO = 1_000_000


def _payable(party: Any) -> int:
    return int(
        LedgerLine.objects.filter(account__kind="holder_payable", account__party=party).aggregate(
            t=Sum("amount_micro")
        )["t"]
        or 0
    )


def _movement(party: Any, kind: str, start: datetime, end: datetime) -> int:
    total = LedgerLine.objects.filter(
        account__kind=kind, account__party=party, entry__effective_at__gte=start, entry__effective_at__lt=end
    ).aggregate(t=Sum("amount_micro"))["t"]
    return int(total or 0)


def test_a_month_is_settled_into_statements_invoices_and_whole_won_payouts_that_reconcile(
    clock, world, report, settle, holder, other_holder, lab, staff_api, settings
):
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 1_000
    clock(seoul(2026, 9, 10, 12))
    # 5,000,001 tokens at 0.0005 KRW = 2,500.0005 KRW; the co-owned one splits 60/40 to the micro-won.
    manifest = report((BOOK, "5000001"), (CO_OWNED, "5000001"), (UNREGISTERED, "1000"), ("bad", "1"))
    clock(seoul(2026, 10, 3, 9))
    body = settle("2026-09-01", "2026-09-30")

    assert body["status"] == "settled", body
    assert (body["first_day"], body["last_day"]) == ("2026-09-01", "2026-09-30")
    settlement = Settlement.objects.get(pk=body["id"])
    assert settlement.period_start == seoul(2026, 9, 1)
    assert settlement.period_end == seoul(2026, 10, 1)

    mine = Statement.objects.get(settlement=settlement, holder=holder)
    theirs = Statement.objects.get(settlement=settlement, holder=other_holder)
    line_cost = 2_500_000_500  # micro-won
    assert mine.accrued_micro == line_cost + line_cost * 6000 // 10000
    assert theirs.accrued_micro == line_cost * 4000 // 10000
    for statement in (mine, theirs):
        # The due's whole won, rounded down; the sub-won rest stays on the payable, carried forward.
        assert statement.payout_micro == statement.due_micro // MICRO * MICRO
        assert statement.withheld_micro == statement.rounding_micro == 0
        assert statement.closing_micro == statement.carried_forward_micro == statement.due_micro % MICRO
        # opening + lines - payout = closing = the ledger's movement for the holder in the period.
        lines = StatementLine.objects.filter(statement=statement).aggregate(t=Sum("amount_micro"))["t"]
        assert statement.opening_micro + lines - statement.payout_micro == statement.closing_micro
        movement = -_movement(statement.holder, "holder_payable", settlement.period_start, settlement.period_end)
        assert statement.closing_micro - statement.opening_micro == movement
        assert _payable(statement.holder) == -statement.closing_micro
        entry = statement.payout_entry
        assert entry is not None
        assert entry.kind == EntryKind.PAYOUT
        assert entry.effective_at == seoul(2026, 10, 1) - timedelta(microseconds=1)
    assert (mine.closing_micro, theirs.closing_micro) == (800, 200)
    assert not LedgerLine.objects.filter(account__kind=AccountKind.ROUNDING).exists()

    # Every statement line traces back to manifest lines.
    line = StatementLine.objects.get(statement=mine, work=world["co_owned"])
    assert (line.kind, line.lab_id, line.manifest_id, line.lines) == (StatementLineKind.ACCRUAL, lab.pk, manifest, 1)
    traced = ManifestLine.objects.get(manifest_id=manifest, work=world["co_owned"])
    assert [part[2] for part in traced.allocation if part[0] == holder.pk] == [line.amount_micro]

    invoice = Invoice.objects.get(settlement=settlement, lab=lab)
    receivable = _movement(lab, "lab_receivable", settlement.period_start, settlement.period_end)
    assert invoice.total_micro == receivable == 2 * line_cost + 500_000
    assert invoice.amount_due_won == 5_001  # 5,001.001 KRW, rounded half up
    outcomes = {
        (line.outcome, line.lines, line.amount_micro) for line in invoice.lines.filter(section=InvoiceSection.USAGE)
    }
    assert outcomes == {
        (Outcome.MATCHED, 2, 2 * line_cost),
        (Outcome.UNMATCHED_HELD, 1, 500_000),
        (Outcome.INVALID, 1, 0),
    }

    assert settlement.totals["payout"] == mine.payout_micro + theirs.payout_micro
    assert settlement.progress["step"] == "payouts"
    assert _ledger_check() == (0, "Ledger OK.")


def _ledger_check() -> tuple[int, str]:
    out = StringIO()
    with translation.override("en"):
        try:
            call_command("ledger_check", stdout=out)
        except CommandError as error:
            return 1, out.getvalue() + str(error)
    return 0, out.getvalue().strip().splitlines()[-1]


def test_holders_read_their_statements_labs_their_invoices_and_staff_everything(
    clock, world, report, settle, holder, other_holder, lab, holder_api, other_holder_api, lab_api, staff_api
):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"), (CO_OWNED, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    body = settle("2026-09-01", "2026-09-30")
    mine = holder_api.get("/api/v1/statements").json()["results"]
    assert [(s["holder"], s["first_day"], s["last_day"]) for s in mine] == [(holder.pk, "2026-09-01", "2026-09-30")]
    statement = mine[0]
    assert statement["due_micro"] == 25_000 * MICRO + 15_000 * MICRO
    lines = holder_api.get(f"/api/v1/statements/{statement['id']}/lines").json()["results"]
    assert sorted((line["work"], line["lab_name"], line["amount_micro"]) for line in lines) == sorted(
        [(world["book"].pk, lab.name, 25_000 * MICRO), (world["co_owned"].pk, lab.name, 15_000 * MICRO)]
    )
    # Another holder's statement does not exist for this one; labs and holders cannot run settlements.
    assert other_holder_api.get(f"/api/v1/statements/{statement['id']}").status_code == 404
    assert lab_api.get("/api/v1/statements").json()["results"] == []
    assert holder_api.get("/api/v1/settlements").status_code == 403
    assert (
        holder_api.post(
            "/api/v1/settlements", {"period_start": "2026-08-01", "period_end": "2026-08-31"}, format="json"
        ).status_code
        == 403
    )
    invoices = lab_api.get("/api/v1/invoices").json()["results"]
    assert [(i["lab"], i["total_micro"], i["amount_due_won"]) for i in invoices] == [(lab.pk, 50_000 * MICRO, 50_000)]
    invoice_lines = lab_api.get(f"/api/v1/invoices/{invoices[0]['id']}/lines").json()["results"]
    assert [(line["section"], line["outcome"], line["lines"]) for line in invoice_lines] == [("usage", "matched", 2)]
    assert holder_api.get(f"/api/v1/invoices/{invoices[0]['id']}").status_code == 404
    assert staff_api.get(f"/api/v1/statements?settlement={body['id']}").json()["count"] == 2
    assert staff_api.get(f"/api/v1/settlements/{body['id']}").json()["totals"]["labs"] == 1


def test_the_same_period_again_creates_nothing_and_an_overlapping_one_is_refused(clock, world, report, settle):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    first = settle("2026-09-01", "2026-09-30")
    entries = LedgerEntry.objects.count()
    again = settle("2026-09-01", "2026-09-30", expect=200)
    assert again["id"] == first["id"]
    assert again["status"] == "settled"
    assert LedgerEntry.objects.count() == entries
    refused = settle("2026-09-15", "2026-10-01", expect=409)
    assert refused["error"]["code"] == "settlement_overlap"
    assert refused["error"]["settlement"] == first["id"]
    assert Settlement.objects.count() == 1
    assert settle("2026-10-05", "2026-10-01", expect=400)["error"]["code"] == "invalid_period"
    assert settle("2026-10-01", "2026-10-31", expect=400)["error"]["code"] == "period_not_over"
    # Periods are settled in order: August's statements would change September's opening balances.
    earlier = settle("2026-08-01", "2026-08-31", expect=409)
    assert earlier["error"]["code"] == "settlement_out_of_order"
    assert earlier["error"]["settlement"] == first["id"]
    assert Settlement.objects.count() == 1
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError, match="already settled or planned"), transaction.atomic():
            Settlement.objects.create(
                period_start=seoul(2026, 8, 1), period_end=seoul(2026, 9, 1), payout_threshold_micro=0
            )


def test_a_holder_under_the_threshold_is_carried_forward_and_paid_in_a_later_period(
    clock, world, report, settle, holder, settings
):
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 10_000
    clock(seoul(2026, 8, 20, 12))
    report((BOOK, "12000000"))  # 6,000 KRW: under the threshold
    clock(seoul(2026, 9, 2, 9))
    august = settle("2026-08-01", "2026-08-31")
    first = Statement.objects.get(settlement_id=august["id"], holder=holder)
    assert (first.due_micro, first.payout_micro, first.carried_forward_micro) == (6_000 * MICRO, 0, 6_000 * MICRO)
    assert first.payout_entry is None
    assert _payable(holder) == -6_000 * MICRO

    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "10000000"))  # 5,000 KRW more
    clock(seoul(2026, 10, 2, 9))
    september = settle("2026-09-01", "2026-09-30")
    second = Statement.objects.get(settlement_id=september["id"], holder=holder)
    assert second.opening_micro == first.closing_micro
    assert (second.accrued_micro, second.due_micro) == (5_000 * MICRO, 11_000 * MICRO)
    assert (second.payout_micro, second.carried_forward_micro, second.closing_micro) == (11_000 * MICRO, 0, 0)
    assert _payable(holder) == 0


def test_each_holder_is_paid_at_most_its_due_and_its_sub_won_rest_is_carried_until_it_adds_up(
    clock, world, report, settle, holder, other_holder, settings
):
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 0
    clock(seoul(2026, 9, 10, 12))
    # The book: 246.916047 KRW; the co-owned book: 251.25 KRW, 150.75 to ``holder`` and 100.5 to ``other_holder``.
    # Pooled and split by largest remainder, ``holder`` (due 397.666047) was paid 398: more than it was due.
    report((BOOK, "493832.094"), (CO_OWNED, "502500"))
    clock(seoul(2026, 10, 2, 9))
    september = settle("2026-09-01", "2026-09-30")
    mine = Statement.objects.get(settlement_id=september["id"], holder=holder)
    theirs = Statement.objects.get(settlement_id=september["id"], holder=other_holder)
    assert (mine.due_micro, mine.payout_micro, mine.carried_forward_micro) == (397_666_047, 397 * MICRO, 666_047)
    assert (theirs.due_micro, theirs.payout_micro, theirs.carried_forward_micro) == (100_500_000, 100 * MICRO, 500_000)
    # Neither payable is overdrawn: each still holds its holder's sub-won rest.
    assert _payable(holder) == -666_047
    assert _payable(other_holder) == -500_000
    assert mine.rounding_micro == theirs.rounding_micro == 0
    assert not LedgerLine.objects.filter(account__kind=AccountKind.ROUNDING).exists()
    assert _ledger_check() == (0, "Ledger OK.")

    clock(seoul(2026, 10, 10, 12))
    report((CO_OWNED, "2500"))  # 1.25 KRW: 0.75 to ``holder``, 0.5 to ``other_holder``
    clock(seoul(2026, 11, 2, 9))
    october = settle("2026-10-01", "2026-10-31")
    mine = Statement.objects.get(settlement_id=october["id"], holder=holder)
    theirs = Statement.objects.get(settlement_id=october["id"], holder=other_holder)
    # The rests carried from September are the opening balances, paid once they add up to a won.
    assert (mine.opening_micro, mine.due_micro, mine.payout_micro, mine.closing_micro) == (
        666_047,
        1_416_047,
        1 * MICRO,
        416_047,
    )
    assert (theirs.opening_micro, theirs.due_micro, theirs.payout_micro, theirs.closing_micro) == (
        500_000,
        1 * MICRO,
        1 * MICRO,
        0,
    )
    assert _payable(holder) == -416_047
    assert _payable(other_holder) == 0
    assert _ledger_check() == (0, "Ledger OK.")


def test_withholding_is_taken_from_the_payout_in_whole_won(clock, world, report, settle, holder, staff, settings):
    settings.SETTLEMENT_PAYOUT_THRESHOLD_KRW = 0
    # An individual: business income, withheld at the 3.3% migration 0014 starts the rates with.
    payout_profile(holder, verified_by=staff, tax_status="individual")
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "24691358"))  # 12,345.679 KRW
    clock(seoul(2026, 10, 2, 9))
    body = settle("2026-09-01", "2026-09-30")
    statement = Statement.objects.get(settlement_id=body["id"], holder=holder)
    gross_won = 12_345  # the whole won of its due, rounded down
    assert statement.withheld_micro == gross_won * 330 // 10_000 * MICRO == 407 * MICRO
    assert statement.payout_micro == (gross_won - 407) * MICRO
    assert statement.rounding_micro == 0
    assert statement.carried_forward_micro == 679_000
    withheld = LedgerLine.objects.filter(account__kind=AccountKind.WITHHOLDING).aggregate(t=Sum("amount_micro"))["t"]
    assert withheld == -407 * MICRO
    assert _payable(holder) == -679_000
    # Payouts + carried forward + withheld = the payables due, to the micro-won.
    totals = Settlement.objects.get(pk=body["id"]).totals
    assert totals["payout"] + totals["withheld"] + totals["carried_forward"] == totals["due"]


def test_a_closed_period_refuses_postings_and_the_ledger_moves_late_ones_to_the_open_period(
    clock, world, report, settle, holder, lab
):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    settle("2026-09-01", "2026-09-30")
    accounts = accounts_ensure(
        keys=[AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk), AccountKey(AccountKind.HOLDER_PAYABLE, holder.pk)]
    )
    lab_account, holder_account = accounts.values()
    late = Posting(
        idempotency_key="late-correction",
        kind=EntryKind.ADJUSTMENT,
        effective_at=seoul(2026, 9, 15),
        lines=[(lab_account.pk, 1_000), (holder_account.pk, -1_000)],
        source={"corrects": "september"},
    )
    entry_id = ledger_post_entries(postings=[late])["late-correction"]
    entry = LedgerEntry.objects.get(pk=entry_id)
    assert entry.effective_at == timezone.now()
    assert entry.source["moved_from"] == seoul(2026, 9, 15).isoformat()
    assert entry.source["closed_by_settlement"] == Settlement.objects.get().pk
    # Posting it again is the same entry (the date asked for is remembered).
    assert ledger_post_entries(postings=[late])["late-correction"] == entry_id
    # Before the period too: the books are closed through its end, or September's opening balances would change.
    backdated = Posting(
        idempotency_key="august-correction",
        kind=EntryKind.ADJUSTMENT,
        effective_at=seoul(2026, 8, 15),
        lines=[(lab_account.pk, 500), (holder_account.pk, -500)],
    )
    moved = LedgerEntry.objects.get(pk=ledger_post_entries(postings=[backdated])["august-correction"])
    assert moved.effective_at == timezone.now()
    assert moved.source["moved_from"] == seoul(2026, 8, 15).isoformat()
    # After the period, nothing moves.
    current = Posting(
        idempotency_key="october-correction",
        kind=EntryKind.ADJUSTMENT,
        effective_at=seoul(2026, 10, 2),
        lines=[(lab_account.pk, 700), (holder_account.pk, -700)],
    )
    kept = LedgerEntry.objects.get(pk=ledger_post_entries(postings=[current])["october-correction"])
    assert kept.effective_at == seoul(2026, 10, 2)
    assert "moved_from" not in kept.source

    if connection.vendor != "postgresql":
        return
    for sneaky_date in (seoul(2026, 9, 20), seoul(2026, 7, 1)):
        with pytest.raises(IntegrityError, match="closed the books"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "INSERT INTO compensation_ledgerentry (idempotency_key, kind, effective_at, created_at, memo, source)"
                " VALUES ('sneaky', 'adjustment', %s, now(), '', '{}')",
                [sneaky_date],
            )
    with pytest.raises(IntegrityError, match="never change"), transaction.atomic():
        Settlement.objects.update(period_end=seoul(2026, 10, 2))
    with pytest.raises(IntegrityError, match="stays closed"), transaction.atomic():
        Settlement.objects.update(status=SettlementStatus.FAILED)
    for table in ("compensation_statementline", "compensation_invoiceline", "compensation_settlement"):
        with pytest.raises(Exception, match="keeps every row"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608  (constant names)
    for table in ("compensation_statement", "compensation_invoice", "compensation_statementline"):
        with pytest.raises(Exception, match="never changes"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET id = id")  # noqa: S608  (constant names)


@pytest.mark.postgres
def test_ledger_check_finds_a_statement_that_no_longer_reconciles(clock, world, report, settle):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    settle("2026-09-01", "2026-09-30")
    assert _ledger_check()[0] == 0
    with connection.cursor() as cursor:
        # What only someone bypassing the triggers could do: the statement's arithmetic still adds up.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE compensation_statement SET opening_micro = opening_micro + 1, due_micro = due_micro + 1,"
            " closing_micro = closing_micro + 1, carried_forward_micro = carried_forward_micro + 1"
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
    code, output = _ledger_check()
    assert code == 1
    assert "statements_reconcile" in output
    assert "1 statement" in output


def test_staff_settle_a_period_from_the_admin_and_read_its_statements_there(
    clock, world, report, staff, holder, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    staff.is_superuser = True
    staff.save()
    client = APIClient()
    client.force_login(staff)
    assert client.get("/admin/compensation/settlement/add/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/compensation/settlement/add/", {"first_day": "2026-09-01", "last_day": "2026-09-30"}
        )
    assert response.status_code == 302, response.content
    settlement = Settlement.objects.get()
    assert settlement.status == SettlementStatus.SETTLED
    assert settlement.created_by == staff
    statement = Statement.objects.get(holder=holder)
    page = client.get(f"/admin/compensation/statement/{statement.pk}/change/")
    assert page.status_code == 200
    assert world["book"].title in page.content.decode()
    # Never edited nor deleted through the admin.
    assert client.post(f"/admin/compensation/settlement/{settlement.pk}/delete/", {"post": "yes"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        refused = client.post(
            "/admin/compensation/settlement/add/", {"first_day": "2026-09-20", "last_day": "2026-10-01"}
        )
    # The form again, with the refusal on it (tests/compensation/test_admin_forms.py goes further).
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors
    assert Settlement.objects.count() == 1
