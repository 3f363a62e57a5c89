"""Money in: staff record what labs pay (API, admin, bank statement CSV); each payment is a ledger entry against
the lab's receivable, matched to invoices oldest first or as its reference says, once per bank reference. Invoices
show paid, outstanding and overdue amounts; holders can be paid on the cash basis, pro rata per lab.
"""

from __future__ import annotations

from datetime import date
from io import StringIO
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models import Sum
from django.utils import translation

from compensation.models import (
    AccountKind,
    EntryKind,
    Invoice,
    LabPayment,
    LedgerEntry,
    LedgerLine,
    PaymentAllocation,
    PayoutBasis,
    PayoutBasisPolicy,
    Statement,
)
from registry.models import AuditEvent
from tests.compensation.helpers import BOOK, CO_OWNED
from tests.helpers import seoul

pytestmark = pytest.mark.django_db

MICRO = 1_000_000
PAYMENTS = "/api/v1/lab-payments"
IMPORT = "/api/v1/lab-payments/import"


def _pay(staff_api: Any, lab: Any, amount: int, reference: str, day: str = "2026-10-03", expect: int = 201) -> Any:
    response = staff_api.post(
        PAYMENTS,
        {"lab": lab.pk, "amount_won": amount, "received_on": day, "bank_reference": reference},
        format="json",
    )
    assert response.status_code == expect, response.content
    return response.json()


def _receivable(lab: Any) -> int:
    lines = LedgerLine.objects.filter(account__kind=AccountKind.LAB_RECEIVABLE, account__party=lab)
    return int(lines.aggregate(t=Sum("amount_micro"))["t"] or 0)


def _ledger_ok() -> str:
    out = StringIO()
    with translation.override("en"):
        call_command("ledger_check", stdout=out)
    return out.getvalue()


@pytest.fixture
def invoiced(clock: Any, world: Any, report: Any, settle: Any, lab: Any) -> Invoice:
    """September: the lab used the holder's book for 24,691,358 tokens (12,345.679 KRW), settled in October."""
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "24691358"))
    clock(seoul(2026, 10, 3, 9))
    body = settle("2026-09-01", "2026-09-30")
    invoice = Invoice.objects.get(settlement_id=body["id"], lab=lab)
    assert invoice.amount_due_won == 12_346
    return invoice


def test_a_partial_payment_credits_the_receivable_and_leaves_the_rest_outstanding(invoiced, staff_api, lab_api, lab):
    before = _receivable(lab)
    body = _pay(staff_api, lab, 10_000, "SHB-20261005-0001")

    payment = LabPayment.objects.get(pk=body["id"])
    assert body["allocated_won"] == 10_000
    assert body["invoices"] == [{"invoice": invoiced.pk, "number": invoiced.number, "amount_won": 10_000}]
    # The entry: the bank debited, the lab's receivable credited, by exactly the amount.
    lines = dict(payment.entry.lines.values_list("account__kind", "amount_micro"))
    assert payment.entry.kind == EntryKind.PAYMENT
    assert lines == {AccountKind.BANK: 10_000 * MICRO, AccountKind.LAB_RECEIVABLE: -10_000 * MICRO}
    assert _receivable(lab) == before - 10_000 * MICRO
    assert AuditEvent.objects.filter(code="compensation.payment.recorded", object_id=str(payment.pk)).exists()
    # The lab sees what it paid and what it still owes, in the API.
    shown = lab_api.get(f"/api/v1/invoices/{invoiced.pk}").json()
    assert (shown["paid_won"], shown["outstanding_won"], shown["overdue_won"]) == (10_000, 2_346, 0)
    assert shown["due_on"] == "2026-10-30"
    assert [p["id"] for p in lab_api.get(PAYMENTS).json()["results"]] == [payment.pk]
    assert "Ledger OK." in _ledger_ok()


def test_an_overpayment_pays_the_invoice_and_the_rest_waits_for_the_next_one(
    invoiced, staff_api, lab, clock, report, settle
):
    body = _pay(staff_api, lab, 20_000, "SHB-20261006-0002")
    assert body["allocated_won"] == 12_346
    invoiced_now = Invoice.objects.get(pk=invoiced.pk)
    assert staff_api.get(f"/api/v1/invoices/{invoiced_now.pk}").json()["outstanding_won"] == 0
    # The receivable is in credit: the registry holds 7,654 won (and the sub-won) of the lab's money.
    assert _receivable(lab) == invoiced.closing_micro - 20_000 * MICRO
    # October's invoice is paid from that credit as soon as it is written.
    clock(seoul(2026, 10, 12, 12))
    report((BOOK, "10000000"))  # 5,000 KRW
    clock(seoul(2026, 11, 2, 9))
    october = Invoice.objects.get(settlement_id=settle("2026-10-01", "2026-10-31")["id"], lab=lab)
    assert october.amount_due_won == 5_000
    assert october.payments_micro == -20_000 * MICRO  # received in October: the invoice shows it
    assert october.closing_micro == october.opening_micro + october.total_micro + october.payments_micro
    shown = staff_api.get(f"/api/v1/invoices/{october.pk}").json()
    assert (shown["paid_won"], shown["outstanding_won"]) == (5_000, 0)
    assert PaymentAllocation.objects.filter(payment_id=body["id"]).aggregate(t=Sum("amount_won"))["t"] == 17_346
    assert "Ledger OK." in _ledger_ok()


def test_the_same_bank_reference_records_one_payment_and_other_details_are_a_conflict(invoiced, staff_api, lab):
    first = _pay(staff_api, lab, 5_000, "SHB-20261007-0003")
    again = _pay(staff_api, lab, 5_000, "SHB-20261007-0003", expect=200)
    assert again["id"] == first["id"]
    conflict = _pay(staff_api, lab, 6_000, "SHB-20261007-0003", expect=409)
    assert conflict["error"]["code"] == "payment_reference_conflict"
    assert LabPayment.objects.count() == 1
    assert LedgerEntry.objects.filter(kind=EntryKind.PAYMENT).count() == 1
    assert PaymentAllocation.objects.get().amount_won == 5_000


def test_the_database_refuses_a_second_payment_with_the_same_reference(invoiced, staff_api, lab):
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    from compensation.ledger.services import AccountKey, accounts_ensure, ledger_post

    first = LabPayment.objects.get(pk=_pay(staff_api, lab, 1_000, "X-1")["id"])
    accounts = accounts_ensure(keys=[AccountKey(AccountKind.BANK), AccountKey(AccountKind.LAB_RECEIVABLE, lab.pk)])
    # Around the service, as a bug would: a second row with the same reference and an entry of its own.
    entry, _created = ledger_post(
        idempotency_key="around-the-service",
        kind=EntryKind.PAYMENT,
        effective_at=timezone.now(),
        lines=[(account, amount) for account, amount in zip(accounts.values(), [MICRO, -MICRO], strict=True)],
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        LabPayment.objects.create(
            lab=lab,
            amount_won=1,
            received_on=date(2026, 10, 1),
            bank_reference=first.bank_reference,
            source="api",
            entry=entry,
        )
    assert LabPayment.objects.count() == 1


def test_a_reference_naming_an_invoice_pays_that_invoice_first(invoiced, staff_api, lab, clock, report, settle):
    clock(seoul(2026, 10, 12, 12))
    report((BOOK, "10000000"))  # 5,000 KRW
    clock(seoul(2026, 11, 2, 9))
    october = Invoice.objects.get(settlement_id=settle("2026-10-01", "2026-10-31")["id"], lab=lab)
    named = _pay(staff_api, lab, 5_000, f"transfer {october.number}", day="2026-11-02")
    assert named["invoices"] == [{"invoice": october.pk, "number": october.number, "amount_won": 5_000}]
    oldest = _pay(staff_api, lab, 1_000, "SHB-20261102-0005", day="2026-11-02")
    assert oldest["invoices"] == [{"invoice": invoiced.pk, "number": invoiced.number, "amount_won": 1_000}]


def test_only_staff_record_payments_and_labs_read_only_their_own(invoiced, lab_api, holder_api, staff_api, lab):
    denied = lab_api.post(
        PAYMENTS, {"lab": lab.pk, "amount_won": 1, "received_on": "2026-10-03", "bank_reference": "x"}, format="json"
    )
    assert denied.status_code == 403
    _pay(staff_api, lab, 1_000, "SHB-1")
    assert holder_api.get(PAYMENTS).json()["results"] == []
    assert LabPayment.objects.count() == 1


def test_payments_are_refused_for_a_future_day_a_holder_or_a_zero_amount(invoiced, staff_api, lab, holder):
    assert _pay(staff_api, lab, 1, "F-1", day="2027-01-01", expect=400)["error"]["code"] == "future_date"
    assert _pay(staff_api, holder, 1, "F-2", expect=400)["error"]["code"] == "not_a_lab"
    assert _pay(staff_api, lab, 0, "F-3", expect=400)["error"]["code"] == "min_value"
    assert not LabPayment.objects.exists()


def test_a_bank_statement_import_records_each_good_line_and_lists_the_refused_ones(invoiced, staff_api, lab):
    csv_text = (
        "received_on,amount_krw,bank_reference,lab,memo\n"
        f'2026-10-03,"5,000",IMP-1,{lab.pk},first\n'
        "2026-10-03,abc,IMP-2,{lab},bad amount\n".replace("{lab}", str(lab.pk))
        + "2026-13-05,100,IMP-3,,bad date\n"
        + f"2026-10-03,2000,{invoiced.number} IMP-4,,the lab found by the invoice number\n"
        + "2026-10-03,2000,IMP-5,999999,no such lab\n"
        + f"2026-10-03,5000,IMP-1,{lab.pk},the same line again\n"
    )
    upload = SimpleUploadedFile("statement.csv", csv_text.encode("utf-8-sig"), content_type="text/csv")
    response = staff_api.post(IMPORT, {"file": upload}, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["lines"], body["recorded"], body["duplicates"]) == (6, 2, 1)
    assert [(e["line"], e["code"]) for e in body["errors"]] == [
        (2, "invalid_amount"),
        (3, "invalid_date"),
        (5, "unknown_lab"),
    ]
    assert sorted(LabPayment.objects.values_list("bank_reference", "amount_won", "source")) == [
        ("IMP-1", 5_000, "import"),
        (f"{invoiced.number} IMP-4", 2_000, "import"),
    ]
    # The same statement again records nothing new.
    upload = SimpleUploadedFile("statement.csv", csv_text.encode("utf-8"), content_type="text/csv")
    again = staff_api.post(IMPORT, {"file": upload}, format="multipart").json()
    assert (again["recorded"], again["duplicates"]) == (0, 3)
    assert LabPayment.objects.count() == 2


def test_an_import_with_a_wrong_header_or_too_many_lines_records_nothing(invoiced, staff_api, lab, settings):
    upload = SimpleUploadedFile("s.csv", b"date,amount\n2026-10-03,1\n", content_type="text/csv")
    assert staff_api.post(IMPORT, {"file": upload}, format="multipart").json()["error"]["code"] == "invalid_header"
    settings.LAB_PAYMENT_IMPORT_MAX_LINES = 1
    body = f"received_on,amount_krw,bank_reference,lab,memo\n2026-10-03,1,A,{lab.pk},\n2026-10-03,1,B,{lab.pk},\n"
    upload = SimpleUploadedFile("s.csv", body.encode(), content_type="text/csv")
    assert staff_api.post(IMPORT, {"file": upload}, format="multipart").json()["error"]["code"] == "too_many_lines"
    assert not LabPayment.objects.exists()


def test_unpaid_invoices_become_overdue_and_are_reported_by_age(invoiced, staff_api, lab_api, lab, clock):
    _pay(staff_api, lab, 2_346, "SHB-OD-1")
    clock(seoul(2026, 12, 15, 9))  # 46 days after the due date (2026-10-30)
    shown = lab_api.get(f"/api/v1/invoices/{invoiced.pk}").json()
    assert (shown["paid_won"], shown["outstanding_won"], shown["overdue_won"]) == (2_346, 10_000, 10_000)
    report = staff_api.get("/api/v1/invoices/overdue").json()
    assert [(r["number"], r["overdue_won"], r["days_overdue"], r["band"]) for r in report["invoices"]] == [
        (invoiced.number, 10_000, 46, "31-60")
    ]
    assert {b["band"]: b["overdue_won"] for b in report["bands"]} == {"1-30": 0, "31-60": 10_000, "61-90": 0, "91+": 0}
    assert lab_api.get("/api/v1/invoices/overdue").status_code == 403


def test_on_the_cash_basis_holders_are_paid_pro_rata_what_the_lab_paid_exact_to_the_won(
    clock, world, report, settle, staff, staff_api, lab, holder, other_holder
):
    PayoutBasisPolicy.objects.create(basis=PayoutBasis.CASH, effective_from=date(2026, 9, 1), set_by=staff)
    clock(seoul(2026, 9, 10, 12))
    report((CO_OWNED, "200000000"))  # 100,000 KRW: 60,000 to the holder, 40,000 to the other holder
    clock(seoul(2026, 9, 20, 12))
    _pay(staff_api, lab, 50_000, "SHB-CASH-1", day="2026-09-20")  # half, before the invoice exists
    clock(seoul(2026, 10, 2, 9))
    september = settle("2026-09-01", "2026-09-30")
    first = {s.holder_id: s for s in Statement.objects.filter(settlement_id=september["id"])}
    assert first[holder.pk].payout_micro == 30_000 * MICRO
    assert first[other_holder.pk].payout_micro == 20_000 * MICRO
    for statement in first.values():
        assert statement.basis == "cash"
        assert statement.carry_reason == "awaiting_lab_payments"
    assert first[holder.pk].carried_forward_micro == 30_000 * MICRO
    # The holder's statement says which basis it was paid on.
    statement_json = staff_api.get(f"/api/v1/statements/{first[holder.pk].pk}").json()
    assert (statement_json["basis"], statement_json["carry_reason"]) == ("cash", "awaiting_lab_payments")
    invoice = Invoice.objects.get(settlement_id=september["id"], lab=lab)
    assert staff_api.get(f"/api/v1/invoices/{invoice.pk}").json()["outstanding_won"] == 50_000
    # The lab pays the rest in October: October pays the holders the rest, and nothing more.
    clock(seoul(2026, 10, 20, 12))
    _pay(staff_api, lab, 50_000, "SHB-CASH-2", day="2026-10-20")
    clock(seoul(2026, 11, 2, 9))
    october = settle("2026-10-01", "2026-10-31")
    second = {s.holder_id: s for s in Statement.objects.filter(settlement_id=october["id"])}
    assert second[holder.pk].payout_micro == 30_000 * MICRO
    assert second[other_holder.pk].payout_micro == 20_000 * MICRO
    assert second[holder.pk].carry_reason == ""
    assert second[holder.pk].closing_micro == second[other_holder.pk].closing_micro == 0
    paid = Statement.objects.aggregate(t=Sum("payout_micro"))["t"]
    assert paid == 100_000 * MICRO
    assert "Ledger OK." in _ledger_ok()


def test_on_accrual_holders_are_paid_whether_or_not_the_lab_paid(clock, world, report, settle, holder):
    clock(seoul(2026, 9, 10, 12))
    report((CO_OWNED, "200000000"))
    clock(seoul(2026, 10, 2, 9))
    statement = Statement.objects.get(settlement_id=settle("2026-09-01", "2026-09-30")["id"], holder=holder)
    assert (statement.basis, statement.payout_micro, statement.carry_reason) == ("accrual", 60_000 * MICRO, "")


def test_staff_record_a_payment_in_the_admin_and_read_the_overdue_report(invoiced, staff_client, staff, lab, clock):
    response = staff_client.post(
        "/admin/compensation/labpayment/add/",
        {
            "lab": lab.pk,
            "amount_won": "2346",
            "received_on": "2026-10-03",
            "bank_reference": "ADMIN-1",
            "memo": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    payment = LabPayment.objects.get(bank_reference="ADMIN-1")
    assert (payment.source, payment.amount_won) == ("admin", 2_346)
    assert payment.allocations.get().invoice_id == invoiced.pk
    clock(seoul(2026, 11, 10, 9))
    staff_client.force_login(staff)  # the session of five weeks ago has expired
    page = staff_client.get("/admin/compensation/reports/overdue/")
    assert page.status_code == 200
    assert invoiced.number in page.content.decode()
    download = staff_client.get("/admin/compensation/reports/overdue/?format=csv")
    csv_text = b"".join(download.streaming_content if download.streaming else [download.content]).decode("utf-8-sig")
    assert "10000" in csv_text.replace(",", "")
    assert invoiced.number in csv_text


@pytest.mark.postgres
def test_postgresql_refuses_changing_or_deleting_a_recorded_payment(invoiced, staff_api, lab):
    from django.db import DatabaseError, connection, transaction

    body = _pay(staff_api, lab, 1_000, "PG-1")
    for statement in (
        "UPDATE compensation_labpayment SET amount_won = 2000 WHERE id = %s",
        "DELETE FROM compensation_labpayment WHERE id = %s",
        "UPDATE compensation_paymentallocation SET amount_won = 2 WHERE payment_id = %s",
        "DELETE FROM compensation_paymentallocation WHERE payment_id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [body["id"]])
    assert LabPayment.objects.get().amount_won == 1_000
    assert PaymentAllocation.objects.get().amount_won == 1_000


def test_ledger_check_names_an_allocation_beyond_the_invoice(invoiced, staff_api, lab):
    from django.core.management.base import CommandError

    body = _pay(staff_api, lab, 20_000, "CHK-1")
    # A second payment whose allocation a bug wrote although the invoice was already paid.
    extra = _pay(staff_api, lab, 5_000, "CHK-2")
    assert extra["invoices"] == []
    PaymentAllocation.objects.create(payment_id=extra["id"], invoice=invoiced, amount_won=5_000)
    out = StringIO()
    with pytest.raises(CommandError), translation.override("en"):
        call_command("ledger_check", stdout=out)
    assert "FAILED  payment_allocations: 1 invoice: " + str(invoiced.pk) in out.getvalue()
    assert body["allocated_won"] == 12_346


def test_a_payment_received_in_a_settled_period_is_posted_in_the_open_one(invoiced, staff_api, lab):
    body = _pay(staff_api, lab, 3_000, "LATE-1", day="2026-09-25")
    payment = LabPayment.objects.get(pk=body["id"])
    # The books of September are closed: the entry is dated now and says where it was asked for.
    assert payment.received_on == date(2026, 9, 25)
    assert payment.entry.effective_at >= invoiced.settlement.period_end
    assert payment.entry.source["closed_by_settlement"] == invoiced.settlement_id
    assert body["invoices"] == [{"invoice": invoiced.pk, "number": invoiced.number, "amount_won": 3_000}]
    assert "Ledger OK." in _ledger_ok()


def test_a_payment_entry_cannot_be_reversed_by_hand(invoiced, staff_api, lab, staff):
    from compensation.errors import LedgerError
    from compensation.ledger.services import ledger_reverse
    from core.actors import Actor

    payment = LabPayment.objects.get(pk=_pay(staff_api, lab, 1_000, "REV-1")["id"])
    with pytest.raises(LedgerError) as refused:
        ledger_reverse(entry=payment.entry, actor=Actor(user=staff), reason="typo")
    assert refused.value.code == "not_reversible"
    assert not LedgerEntry.objects.filter(reverses=payment.entry).exists()
