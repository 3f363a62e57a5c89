"""Staff reports on generated data: match rate, escrow aging, violations, top works and holders, downloads.

Uses are reported through the API with the settlement tests' clock: September 2026 (plus a hold in February),
and the reports are read as staff on the admin site.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.compensation.helpers import BOOK, CO_OWNED, UNREGISTERED
from tests.factories import RefusalFactory, WorkFactory
from tests.helpers import seoul

pytestmark = pytest.mark.django_db


PARTIAL = "9788990000019"  # the holder claims 60%; 40% nobody has claimed
UNCLAIMED = "9788990000026"  # registered, its claim not verified
REFUSED = "9788990000033"
EARLY = "9788990000040"  # unregistered, used in February: past the hold period by 2029-04
SEPTEMBER = "first=2026-09-01&last=2026-09-30"


@pytest.fixture
def used(clock, world, report, holder, staff) -> dict[str, Any]:
    partial = WorkFactory(holder=holder, identifiers=[("isbn", PARTIAL)], share_bp=6000, verified_by=staff)
    WorkFactory(holder=holder, identifiers=[("isbn", UNCLAIMED)])
    refused = WorkFactory(holder=holder, identifiers=[("isbn", REFUSED)], verified_by=staff)
    RefusalFactory(work=refused)
    clock(seoul(2026, 2, 10, 12))
    report((EARLY, "1000000"))  # 500 KRW held
    clock(seoul(2026, 9, 10, 12))
    # At 0.0005 KRW a token: 2,500 + 500 (60/40) + 2,000 (1,200 paid, 800 held) matched lines;
    # 1,000 unmatched and 500 unclaimed held; 1,000 a violation.
    report(
        (BOOK, "5000000"),
        (CO_OWNED, "1000000"),
        (PARTIAL, "4000000"),
        (UNREGISTERED, "2000000"),
        (UNCLAIMED, "1000000"),
        (REFUSED, "2000000"),
    )
    return {"partial": partial, "refused": refused}


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def page(client: Client, path: str, query: str = "") -> Any:
    response = client.get(f"/admin/compensation/reports/{path}?{query}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.content[:300]
    return response


def table(response: Any, index: int = 0) -> Any:
    return response.context["report"].tables[index]


def downloaded_totals(client: Client, path: str, query: str) -> dict[str, list[list[Any]]]:
    """The totals rows (first cell "Total") of each format's download, as numbers."""
    found: dict[str, list[list[Any]]] = {}
    content = client.get(f"/admin/compensation/reports/{path}?{query}&format=csv", HTTP_ACCEPT_LANGUAGE="en").content
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    found["csv"] = [[Decimal(c) for c in row[1:] if c] for row in rows if row and row[0] == "Total"]
    content = client.get(f"/admin/compensation/reports/{path}?{query}&format=xlsx", HTTP_ACCEPT_LANGUAGE="en").content
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    found["xlsx"] = [
        [Decimal(repr(c)).quantize(Decimal("0.000001")).normalize() for c in row[1:] if c is not None]
        for row in sheet.iter_rows(values_only=True)
        if row and row[0] == "Total"
    ]
    content = client.get(f"/admin/compensation/reports/{path}?{query}&format=pdf", HTTP_ACCEPT_LANGUAGE="en").content
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
    found["pdf"] = [[line] for line in text.splitlines()]
    return found


def numbers(cells: tuple[Any, ...]) -> list[Decimal]:
    return [Decimal(c) for c in cells if isinstance(c, Decimal | int)]


def test_match_rate_by_value_is_matched_over_matched_and_held(used, staff_client):
    response = page(staff_client, "match-rate/", SEPTEMBER)
    rate = table(response)
    assert [row[0] for row in rate.rows] == ["2026-09"]
    _month, matched, unmatched, unclaimed, disputed, held, by_value, matched_lines, held_lines, by_line = rate.rows[0]
    assert (matched, unmatched, unclaimed, disputed, held) == (
        Decimal(4_200),  # 2,500 + 500 + 1,200
        Decimal(1_000),
        Decimal(1_300),  # 800 of the partly claimed work + 500 of the unclaimed one
        Decimal(0),
        Decimal(2_300),
    )
    assert by_value == (Decimal(4_200) * 100 / Decimal(6_500)).quantize(Decimal("0.01")) == Decimal("64.62")
    assert (matched_lines, held_lines, by_line) == (3, 2, Decimal("60.00"))
    # The headline figure, and the page shows it.
    headline = dict(response.context["report"].headline)
    assert headline["Match rate by value (%)"] == Decimal("64.62")
    html = response.content.decode()
    assert "64.62" in html
    assert "4,200" in html
    # February's unmatched use is a month of its own when the period covers it.
    whole = table(page(staff_client, "match-rate/", "first=2026-01-01&last=2026-12-31"))
    assert [row[0] for row in whole.rows] == ["2026-02", "2026-09"]
    assert whole.rows[0][6] == Decimal("0.00")
    assert whole.totals[5] == Decimal(2_800)


def test_match_rate_downloads_carry_the_pages_totals(used, staff_client):
    totals = table(page(staff_client, "match-rate/", SEPTEMBER)).totals
    found = downloaded_totals(staff_client, "match-rate/", SEPTEMBER)
    assert found["csv"] == [numbers(totals)]
    assert found["xlsx"] == [numbers(totals)]
    pdf_lines = [line[0] for line in found["pdf"]]
    total_at = pdf_lines.index("Total")
    assert pdf_lines[total_at + 1 : total_at + 10] == [
        "4,200",
        "1,000",
        "1,300",
        "0",
        "2,300",
        "64.62",
        "3",
        "2",
        "60.00",
    ]


def test_escrow_aging_buckets_and_what_is_eligible_for_distribution(used, clock, report, staff_client, staff):
    clock(seoul(2029, 3, 20, 12))
    report((UNREGISTERED, "2000000"))  # 1,000 KRW more held for the unregistered book, this month
    clock(seoul(2029, 4, 15, 12))
    staff_client.force_login(staff)  # the session of 2026 has expired
    response = page(staff_client, "escrow-aging/")
    by_age = table(response)
    assert by_age.columns[1:-2] == ["isbn"]
    amounts = {row[0]: (row[-2], row[-1]) for row in by_age.rows}
    assert amounts == {
        "0-6 months": (Decimal(1_000), 1),
        "6-12 months": (Decimal(0), 0),
        "1-2 years": (Decimal(0), 0),
        "2-3 years": (Decimal(2_300), 3),  # September 2026: unmatched, unclaimed share, unclaimed work
        "Over the hold period": (Decimal(500), 1),  # February 2026: over 1,095 days old
    }
    assert by_age.totals[-2:] == (Decimal(3_800), 5)
    # Hold months whose hold period has passed since the month ended: February 2026 only.
    eligible = table(response, 2)
    assert eligible.rows == [("2026-02", Decimal(500), 1)]
    headline = dict(response.context["report"].headline)
    assert headline["Eligible for distribution now (KRW)"] == Decimal(500)
    assert headline["Open escrow (KRW)"] == Decimal(3_800)
    html = response.content.decode()
    assert "3,800" in html
    assert "<svg" in html
    assert "<title id=" in html
    found = downloaded_totals(staff_client, "escrow-aging/", "")
    assert found["csv"][0] == [Decimal(3_800), Decimal(3_800), Decimal(5)]
    assert found["xlsx"] == found["csv"]


def test_violations_by_lab_model_and_work(used, staff_client, lab):
    response = page(staff_client, "violations/", SEPTEMBER)
    uses = table(response, 1)
    assert uses.rows == [(lab.name, "hangul-7b", str(used["refused"].pk), f"Work {REFUSED}", 1, Decimal(1_000))]
    assert table(response, 0).rows == [(lab.name, 1, Decimal(1_000))]
    assert downloaded_totals(staff_client, "violations/", SEPTEMBER)["csv"] == [[1, 1_000], [1, 1_000]]


def test_top_works_and_holders_by_accrual(used, staff_client, holder, other_holder, world):
    response = page(staff_client, "top/", SEPTEMBER)
    works = table(response, 0)
    assert [(row[1], row[-1]) for row in works.rows] == [
        (str(world["book"].pk), Decimal(2_500)),
        (str(used["partial"].pk), Decimal(1_200)),
        (str(world["co_owned"].pk), Decimal(500)),
    ]
    holders = table(response, 1)
    assert holders.rows == [(1, holder.name, Decimal(4_000)), (2, other_holder.name, Decimal(200))]
    # What works paid to owners is what the owners' payables were credited.
    assert works.totals[-1] == holders.totals[-1] == Decimal(4_200)
    assert downloaded_totals(staff_client, "top/", SEPTEMBER)["csv"] == [[3, 4_200], [4_200]]


def test_the_dashboard_draws_accessible_charts(used, staff_client):
    response = page(staff_client, "", "first=2026-01-01&last=2026-12-31")
    charts = {chart.id: chart for chart in response.context["charts"]}
    by_month = {bar.label: bar.value_text for bar in charts["accruals-by-month"].bars}
    assert by_month == {"2026-02": "500", "2026-09": "7,500"}
    assert [bar.label for bar in charts["match-rate"].bars] == ["2026-02", "2026-09"]
    html = response.content.decode()
    assert 'role="img"' in html
    assert "Accruals per month (KRW)" in html
    assert "2026-09: 7,500" in html


def test_reports_are_for_staff_only(used, client, outsider, owner):
    for user in (None, outsider, owner):
        if user is not None:
            client.force_login(user)
        for path in ("", "match-rate/", "escrow-aging/", "violations/", "top/"):
            response = client.get(f"/admin/compensation/reports/{path}?format=csv")
            assert response.status_code in (302, 403), path
            assert "format=csv" not in response.get("Content-Disposition", "")
            if response.status_code == 302:
                assert "/admin/login/" in response["Location"]
