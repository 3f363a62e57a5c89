"""The portal: a holder's payout details (password again to change them, numbers shown masked), what a statement
says about the basis and why money was carried forward, and a lab's paid, outstanding and overdue invoices."""

from __future__ import annotations

import pytest

from compensation.models import Invoice, PayoutProfile, Statement
from compensation.payments.services import lab_payment_record
from core.actors import Actor
from registry.models import AuditEvent
from tests.compensation.helpers import BOOK
from tests.factories import PASSWORD
from tests.helpers import seoul, signed_in

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/payout-profile/"
FORM = {
    "payee_name": "김하늘",
    "bank_name": "국민은행",
    "account_number": "123456-01-234567",
    "tax_id_kind": "rrn",
    "tax_id": "900101-1234568",
    "tax_status": "individual",
}


def test_changing_payout_details_needs_the_password_again(owner, holder):
    client = signed_in(owner)
    wrong = client.post(PAGE, {**FORM, "password": "not-my-password"})
    assert wrong.status_code == 200
    assert "password" in wrong.context["form"].errors
    assert not PayoutProfile.objects.exists()
    saved = client.post(PAGE, {**FORM, "password": PASSWORD})
    assert saved.status_code == 302
    profile = PayoutProfile.objects.get(holder=holder)
    assert profile.status == "unverified"
    assert AuditEvent.objects.filter(code="compensation.payout_profile.created", object_id=str(profile.pk)).exists()
    page = client.get(PAGE).content.decode()
    assert "**********4567" in page
    assert "900101-1******" in page
    assert "12345601234567" not in page
    assert "123456-01-234567" not in page
    assert "9001011234568" not in page


def test_a_lab_member_has_no_payout_details_page(lab):
    assert signed_in(lab.memberships.get().user).get(PAGE).status_code == 404


def test_a_statement_says_why_nothing_was_paid_and_on_what_basis(clock, world, report, settle, holder, owner):
    PayoutProfile.objects.filter(holder=holder).delete()
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "40000000"))
    clock(seoul(2026, 10, 2, 9))
    statement = Statement.objects.get(settlement_id=settle("2026-09-01", "2026-09-30")["id"], holder=holder)
    client = signed_in(owner)
    text = client.get(f"/dashboard/statements/{statement.pk}/").content.decode()
    assert str(statement.get_carry_reason_display()) in text
    assert statement.carry_reason == "no_verified_profile"
    assert PAGE in text


def test_a_lab_sees_paid_outstanding_and_overdue_in_its_invoices(clock, world, report, settle, lab, staff):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "24691358"))
    clock(seoul(2026, 10, 3, 9))
    invoice = Invoice.objects.get(settlement_id=settle("2026-09-01", "2026-09-30")["id"], lab=lab)
    lab_payment_record(
        actor=Actor(user=staff), lab=lab, amount_won=10_000, received_on=seoul(2026, 10, 3).date(), bank_reference="P-1"
    )
    clock(seoul(2026, 11, 15, 9))
    client = signed_in(lab.memberships.get().user)
    listing = client.get("/dashboard/invoices/")
    assert listing.status_code == 200
    rows = listing.context["rows"]
    assert [(i.pk, a["paid_won"], a["outstanding_won"], a["overdue_won"]) for i, a in rows] == [
        (invoice.pk, 10_000, 2_346, 2_346)
    ]
    detail = client.get(f"/dashboard/invoices/{invoice.pk}/").content.decode()
    assert "P-1" in detail


def test_wrong_passwords_on_the_payout_form_count_against_the_sign_in_limit(owner, holder, settings):
    settings.LOGIN_MAX_FAILURES = 2
    client = signed_in(owner)
    for _attempt in range(2):
        assert "password" in client.post(PAGE, {**FORM, "password": "guess"}).context["form"].errors
    # Locked now: even the right password is refused until the window passes.
    refused = client.post(PAGE, {**FORM, "password": PASSWORD})
    assert refused.status_code == 200
    assert "password" in refused.context["form"].errors
    assert not PayoutProfile.objects.exists()


def test_a_key_that_may_change_payout_details_needs_the_password_too(owner, holder):
    from registry.models import ApiKey

    client = signed_in(owner)
    refused = client.post("/dashboard/keys/", {"name": "bank", "scopes": ["payouts:write"], "password": "guess"})
    assert "password" in refused.context["form"].errors
    assert not ApiKey.objects.filter(party=holder).exists()
    created = client.post("/dashboard/keys/", {"name": "bank", "scopes": ["payouts:write"], "password": PASSWORD})
    assert created.status_code == 302
    assert ApiKey.objects.get(party=holder).scopes == ["payouts:write"]
    # Other keys need no password.
    assert client.post("/dashboard/keys/", {"name": "works", "scopes": ["works:write"]}).status_code == 302
