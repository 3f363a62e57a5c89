"""The portal shows a settlement's period as the days it covers: a December 1-4 settlement ends on the 4th.

A settlement stores its period as ``[period_start, period_end)``, the end being midnight after the last day;
shown as a date, that instant is the day after the period.
"""

from __future__ import annotations

import pytest

from tests.compensation.helpers import BOOK
from tests.helpers import seoul, signed_in

pytestmark = pytest.mark.django_db

PERIOD = "Dec. 1, 2026 \u2013 Dec. 4, 2026"  # an en dash, as the template writes
ONE_DAY_TOO_LONG = "Dec. 5, 2026"


@pytest.fixture
def settled(clock, world, report, settle):
    clock(seoul(2026, 12, 2, 12))
    report((BOOK, "50000000"))
    clock(seoul(2026, 12, 7, 9))
    return settle("2026-12-01", "2026-12-04")


def test_a_holder_sees_the_days_its_statement_covers(settled, owner, holder):
    client = signed_in(owner)
    listing = client.get("/dashboard/statements/").content.decode()
    assert PERIOD in listing
    assert ONE_DAY_TOO_LONG not in listing
    page = client.get(f"/dashboard/statements/{holder.statements.get().pk}/").content.decode()
    assert PERIOD in page
    assert ONE_DAY_TOO_LONG not in page


def test_a_lab_sees_the_days_its_invoice_covers(settled, lab):
    client = signed_in(lab.memberships.get().user)
    listing = client.get("/dashboard/invoices/").content.decode()
    assert PERIOD in listing
    assert ONE_DAY_TOO_LONG not in listing
    page = client.get(f"/dashboard/invoices/{lab.invoices.get().pk}/").content.decode()
    assert PERIOD in page
    assert ONE_DAY_TOO_LONG not in page
