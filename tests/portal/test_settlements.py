"""Statements for rights holders and invoices for labs in the portal, with their downloads."""

from __future__ import annotations

import pytest

from tests.compensation.helpers import BOOK, CO_OWNED
from tests.helpers import seoul, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def settled(clock, world, report, settle):
    clock(seoul(2026, 9, 10, 12))
    report((BOOK, "50000000"), (CO_OWNED, "50000000"))
    clock(seoul(2026, 10, 3, 9))
    return settle("2026-09-01", "2026-09-30")


def test_a_holder_reads_its_statement_and_downloads_it(settled, owner, holder, world):
    client = signed_in(owner)
    listing = client.get("/dashboard/statements/").content.decode()
    assert "₩40,000" in listing  # 25,000 + 15,000 won due
    statement_id = holder.statements.get().pk
    page = client.get(f"/dashboard/statements/{statement_id}/").content.decode()
    assert world["book"].title in page
    assert "₩25,000" in page
    response = client.get(f"/dashboard/statement/{statement_id}/download", {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    response = client.get(f"/dashboard/statement/{statement_id}/download", {"format": "pdf"})
    assert response.content.startswith(b"%PDF")


def test_a_lab_reads_its_invoice_and_nobody_else_does(settled, lab, owner, co_owner):
    lab_client = signed_in(lab.memberships.get().user)
    invoice = lab.invoices.get()
    assert invoice.number in lab_client.get("/dashboard/invoices/").content.decode()
    page = lab_client.get(f"/dashboard/invoices/{invoice.pk}/").content.decode()
    assert "₩50,000" in page
    assert lab_client.get(f"/dashboard/invoice/{invoice.pk}/download", {"format": "xlsx"}).status_code == 200
    holder_client = signed_in(owner)
    assert holder_client.get(f"/dashboard/invoice/{invoice.pk}/download", {"format": "csv"}).status_code == 404
    statement = owner.memberships.get().party.statements.get()
    assert signed_in(co_owner).get(f"/dashboard/statements/{statement.pk}/").status_code == 404
    assert lab_client.get(f"/dashboard/statement/{statement.pk}/download", {"format": "csv"}).status_code == 404


def test_a_large_statement_is_prepared_in_the_background(
    settled, owner, holder, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_SYNC_MAX_LINES = 0
    client = signed_in(owner)
    statement_id = holder.statements.get().pk
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(f"/dashboard/statement/{statement_id}/download", {"format": "csv"})
    assert response.status_code == 302
    export_page = response["Location"]
    assert client.get(export_page.rstrip("/") + "/status.json").json()["status"] == "done"
    file_response = client.get(export_page + "file")
    assert file_response.status_code == 200


def test_earnings_show_the_holders_own_share_per_work_and_what_was_paid_out(settled, owner, world):
    from django.utils import translation

    with translation.override("en"):
        mine = signed_in(owner).get("/dashboard/earnings/", HTTP_ACCEPT_LANGUAGE="en").context
    # The holder has 100% of the book and 60% of the co-owned one: its own share, not the work's total.
    assert [(w["work_id"], w["total"]) for w in mine["top_works"]] == [
        (world["book"].pk, 25_000_000_000),
        (world["co_owned"].pk, 15_000_000_000),
    ]
    assert mine["paid_out_micro"] == 40_000_000_000
    assert mine["balance_micro"] == 0
    assert [(m["month"], m["micro"], m["paid_out_micro"]) for m in mine["months"]] == [
        ("2026-09", 40_000_000_000, 40_000_000_000)
    ]
