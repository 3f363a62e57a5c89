"""Statement and invoice downloads: CSV, XLSX and PDF carry the same totals, in the reader's language.

Data is built as in test_settlements: uses reported in September through the API, settled in October.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any, cast

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from compensation.models import Export, ExportStatus
from tests.compensation.helpers import BOOK, CO_OWNED, REFUSED

pytestmark = pytest.mark.django_db


def won(micro: int) -> Decimal:
    return Decimal(micro) / 1_000_000


def csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf"), "UTF-8 byte-order mark for Excel"
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def csv_amounts(content: bytes) -> dict[str, Decimal]:
    """The label of each row (first cell) and its last non-empty number."""
    found: dict[str, Decimal] = {}
    for row in csv_rows(content):
        cells = [c for c in row if c]
        if len(cells) >= 2:
            try:
                found[cells[0]] = Decimal(cells[-1])
            except ArithmeticError:
                continue
    return found


def xlsx_amounts(content: bytes) -> dict[str, Decimal]:
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    found: dict[str, Decimal] = {}
    for row in sheet.iter_rows(values_only=True):
        cells = [c for c in row if c not in (None, "")]
        if len(cells) >= 2 and isinstance(cells[0], str) and isinstance(cells[-1], int | float):
            # Excel keeps numbers as doubles: exact to the micro-won for these amounts.
            found[cells[0]] = Decimal(repr(cells[-1])).quantize(Decimal("0.000001")).normalize()
    return found


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def pdf_amount(text: str, label: str) -> Decimal:
    """The PDF's text has one cell a line: the last of the numbers after the label's last line (totals come
    last, after any line of the same name)."""
    lines = [line.strip() for line in text.splitlines()]
    numbers = []
    start = len(lines) - lines[::-1].index(label)
    for line in lines[start:]:
        try:
            numbers.append(Decimal(line.replace(",", "")))
        except ArithmeticError:
            break
    assert numbers, label
    return numbers[-1]


def download(client: Any, url: str, fmt: str, language: str = "en") -> bytes:
    response = client.get(f"{url}/export?format={fmt}", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200, response.content[:500]
    assert "attachment" in response["Content-Disposition"]
    return bytes(response.content)


STATEMENT_TOTALS = {
    "Accrued": "accrued_micro",
    "Due": "due_micro",
    "Payout": "payout_micro",
    "Rounding": "rounding_micro",
    "Closing balance": "closing_micro",
}


def test_the_csv_xlsx_and_pdf_of_a_statement_carry_the_same_totals(settled, holder_api):
    statement = settled["statement"]
    expected = {label: won(getattr(statement, field)) for label, field in STATEMENT_TOTALS.items()}
    expected["Total of lines"] = won(sum(line.amount_micro for line in statement.lines.all()))
    # Sub-won amounts survive: 2,500.0005 KRW for the sole-owned book, 60% of it for the co-owned one.
    assert expected["Accrued"] == Decimal("4000.0008")
    assert expected["Total of lines"] == expected["Accrued"]

    url = f"/api/v1/statements/{statement.pk}"
    from_csv = csv_amounts(download(holder_api, url, "csv"))
    from_xlsx = xlsx_amounts(download(holder_api, url, "xlsx"))
    text = pdf_text(download(holder_api, url, "pdf"))
    for label, amount in expected.items():
        assert from_csv[label] == amount, label
        assert from_xlsx[label] == amount, label
        assert pdf_amount(text, label) == amount, label
    assert "4,000.0008" in text.split()
    assert "Hangang Press" in text
    assert "2026-09-01" in text
    assert "2026-09-30" in text
    # The lines, by work: both books, with their manifest lines.
    rows = csv_rows(download(holder_api, url, "csv"))
    works = {row[2] for row in rows if len(row) == 9 and row[0] == "Accrued"}
    assert works == {f"Work {BOOK}", f"Work {CO_OWNED}"}


def test_the_csv_xlsx_and_pdf_of_an_invoice_carry_the_same_totals_and_list_violations_apart(settled, lab_api):
    invoice = settled["invoice"]
    url = f"/api/v1/invoices/{invoice.pk}"
    from_csv = csv_amounts(download(lab_api, url, "csv"))
    from_xlsx = xlsx_amounts(download(lab_api, url, "xlsx"))
    text = pdf_text(download(lab_api, url, "pdf"))
    expected = {
        "Compensation": won(invoice.compensation_micro),
        "Violations": won(invoice.violations_micro),
        "Total for the period": won(invoice.total_micro),
        "Closing balance": won(invoice.closing_micro),
        "Amount due (whole won)": Decimal(invoice.amount_due_won),
        "Total compensation": won(invoice.compensation_micro),
        "Total violations": won(invoice.violations_micro),
    }
    assert invoice.violations_micro == 1_000 * 1_000_000  # 2,000,000 tokens of the refused book
    for label, amount in expected.items():
        assert from_csv[label] == amount, label
        assert from_xlsx[label] == amount, label
        assert pdf_amount(text, label) == amount, label
    assert invoice.number in text
    assert "Seoul AI Lab" in text
    rows = csv_rows(download(lab_api, url, "csv"))
    violations = rows[[r[:1] for r in rows].index(["Violations: uses of refused works"]) + 2]
    assert violations[3] == f"Work {REFUSED}"
    assert Decimal(violations[-1]) == Decimal(1_000)
    usage = [row for row in rows if len(row) == 6 and row[0] == "hangul-7b"]
    assert "Matched: owed to the owners" in {row[3] for row in usage}
    assert "Refused when used: a violation" not in {row[3] for row in usage}


def test_labels_follow_the_readers_language(settled, holder_api):
    url = f"/api/v1/statements/{settled['statement'].pk}"
    korean = csv_rows(download(holder_api, url, "csv", language="ko"))
    labels = {row[0] for row in korean if row}
    assert {"마감 잔액", "지급", "기간"} <= labels
    assert "Closing balance" not in labels
    english = {row[0] for row in csv_rows(download(holder_api, url, "csv", language="en")) if row}
    assert {"Closing balance", "Payout", "Period"} <= english
    # The PDF embeds a Korean font, so its Korean text can be extracted.
    text = pdf_text(download(holder_api, url, "pdf", language="ko"))
    assert "마감 잔액" in text
    assert "권리자 정산서" in text
    sheet = load_workbook(io.BytesIO(download(holder_api, url, "xlsx", language="ko")), read_only=True).worksheets[0]
    assert "마감 잔액" in {row[0] for row in sheet.iter_rows(values_only=True) if row}


def test_a_holder_cannot_export_another_holders_statement_nor_an_invoice(
    settled, other_holder_api, holder_api, lab_api
):
    statement, invoice = settled["statement"], settled["invoice"]
    for fmt in ("csv", "pdf"):
        response = other_holder_api.get(f"/api/v1/statements/{statement.pk}/export?format={fmt}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert lab_api.get(f"/api/v1/statements/{statement.pk}/export?format=csv").status_code == 404
    assert holder_api.get(f"/api/v1/invoices/{invoice.pk}/export?format=csv").status_code == 404
    assert holder_api.get(f"/api/v1/statements/{statement.pk}/export?format=docx").status_code == 400
    assert Export.objects.count() == 0


def test_a_large_statement_is_exported_by_a_task_and_polled(
    settled, holder_api, other_holder_api, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_SYNC_MAX_LINES = 1
    statement = settled["statement"]
    with django_capture_on_commit_callbacks(execute=True):
        response = holder_api.get(f"/api/v1/statements/{statement.pk}/export?format=xlsx", HTTP_ACCEPT_LANGUAGE="ko")
    assert response.status_code == 202, response.content
    export = Export.objects.get()
    assert (export.document, export.object_id, export.format, export.language) == (
        "statement",
        statement.pk,
        "xlsx",
        "ko",
    )
    assert export.status == ExportStatus.DONE
    assert (export.file.name or "").endswith(".xlsx")

    polled = holder_api.get(response["Location"])
    assert polled.status_code == 200
    assert polled.json()["status"] == "done"
    content = b"".join(holder_api.get(polled.json()["download"]).streaming_content)
    assert xlsx_amounts(content)["마감 잔액"] == won(statement.closing_micro)
    assert xlsx_amounts(content)["지급"] == won(statement.payout_micro)

    # Asking again answers with the same export; running the task again changes nothing.
    with django_capture_on_commit_callbacks(execute=True):
        again = holder_api.get(f"/api/v1/statements/{statement.pk}/export?format=xlsx", HTTP_ACCEPT_LANGUAGE="ko")
    assert again.status_code == 202
    assert again.json()["id"] == export.pk
    from compensation.tasks import export_run

    assert export_run.delay(export.pk).get() == "done"
    assert Export.objects.count() == 1
    assert Export.objects.get().file.name == export.file.name
    # Only who may read the statement may read its export.
    assert other_holder_api.get(response["Location"]).status_code == 404
    assert other_holder_api.get(f"/api/v1/exports/{export.pk}/file").status_code == 404


def test_without_the_font_file_the_pdf_uses_the_built_in_korean_font(settled, holder_api, settings):
    settings.PDF_FONT_PATH = "/nonexistent/NanumGothic.ttf"
    content = download(holder_api, f"/api/v1/statements/{settled['statement'].pk}", "pdf", language="ko")
    fonts = {
        str(font["/BaseFont"])
        for page in PdfReader(io.BytesIO(content)).pages
        for font in cast(Any, page["/Resources"])["/Font"].values()
    }
    assert "/HYSMyeongJo-Medium" in fonts
    settings.PDF_FONT_PATH = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
    content = download(holder_api, f"/api/v1/statements/{settled['statement'].pk}", "pdf", language="ko")
    assert "마감 잔액" in pdf_text(content)
