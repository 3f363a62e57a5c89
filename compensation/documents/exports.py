"""Exports: statements, invoices and reports as typed rows, rendered to CSV, XLSX or PDF.

An exporter yields ``Row``s (a title, a header block, sections of columns, data and totals, and a summary);
the three renderers lay the same rows out, so the CSV, XLSX and PDF of one document carry the same figures.
Amounts are micro-won in the database and exact KRW ``Decimal``s here (up to six decimals, only where a
sub-won part exists). Small documents are rendered in the request; large ones by a task (``export_execute`` in
``compensation.documents.services``) into default storage, which the API answers with 202 and an ``Export`` to
poll. Which documents an actor may read is ``compensation.documents.selectors``'.
"""

from __future__ import annotations

import io
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.models import (
    ConsolidatedStatement,
    ExportFormat,
    Invoice,
    InvoiceLine,
    InvoiceSection,
    LineSide,
    Outcome,
    PayoutBasis,
    Statement,
    StatementLine,
    StatementLineKind,
    TaxStatus,
)
from compensation.payments.selectors import invoice_due_on
from compensation.settlement import selectors as settlement_selectors
from core import spreadsheets
from core.errors import InvalidInput
from core.money import MICRO
from registry.selectors import registry_name

logger = logging.getLogger(__name__)


Cell = str | int | Decimal | date | None


class RowKind(StrEnum):
    TITLE = "title"  # the registry's name
    HEADING = "heading"  # a document or section heading
    META = "meta"  # a label and its values (period, party, number)
    COLUMNS = "columns"  # a section's column labels
    DATA = "data"
    TOTAL = "total"  # a section's totals, in the same columns as its data
    SUMMARY = "summary"  # a label and one amount
    BLANK = "blank"


@dataclass(frozen=True)
class Row:
    kind: RowKind
    cells: tuple[Cell, ...] = ()


def won(micro: int) -> Decimal:
    """Micro-won as exact KRW: whole won without decimals, otherwise only the decimals that exist."""
    if micro % MICRO == 0:
        return Decimal(micro // MICRO)
    return (Decimal(micro) / MICRO).normalize()


def format_krw(value: Decimal | int) -> str:
    """KRW with thousands separators, e.g. ``2,500.0005``."""
    return f"{value:,}" if isinstance(value, int) else format(value, ",f")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class Exporter(ABC):
    """A document as a stream of rows. Subclasses set ``slug`` and implement ``rows`` and ``line_count``."""

    slug = "export"

    def title(self) -> str:
        return registry_name()

    def line_count(self) -> int:
        """The data rows it will yield, roughly: large exports run in a task."""
        return 0

    @abstractmethod
    def rows(self) -> Iterator[Row]:
        """The document's rows, in order."""

    def filename(self, fmt: str) -> str:
        return f"{self.slug}.{fmt}"

    @staticmethod
    def heading(text: Any) -> Row:
        return Row(RowKind.HEADING, (str(text),))

    @staticmethod
    def meta(label: Any, *values: Cell) -> Row:
        return Row(RowKind.META, (str(label), *values))

    @staticmethod
    def columns(*labels: Any) -> Row:
        return Row(RowKind.COLUMNS, tuple(str(label) for label in labels))

    @staticmethod
    def summary(label: Any, micro: int) -> Row:
        return Row(RowKind.SUMMARY, (str(label), won(micro)))

    def header(self, heading: Any, *meta: Row) -> Iterator[Row]:
        yield Row(RowKind.TITLE, (self.title(),))
        yield self.heading(heading)
        yield from meta
        yield self.meta(_("Currency"), "KRW")
        yield self.meta(_("Generated at"), timezone.localtime().replace(microsecond=0).strftime("%Y-%m-%d %H:%M"))
        yield Row(RowKind.BLANK)


# --- Statements and invoices ---------------------------------------------------------------------------


class StatementExporter(Exporter):
    """A rights holder's statement: header, lines by work, lab and manifest, then the balances."""

    def __init__(self, *, statement: Statement) -> None:
        self.statement = statement
        self.slug = f"statement-{statement.pk}"

    def line_count(self) -> int:
        return StatementLine.objects.filter(statement=self.statement).count()

    def rows(self) -> Iterator[Row]:
        statement = self.statement
        settlement = statement.settlement
        yield from self.header(
            _("Rights holder statement"),
            self.meta(_("Statement number"), str(statement.pk)),
            self.meta(_("Period"), settlement.first_day, settlement.last_day),
            self.meta(_("Rights holder"), statement.holder.name),
            self.meta(
                _("Settled on"), timezone.localtime(settlement.settled_at).date() if settlement.settled_at else ""
            ),
            # On what basis the holder was paid, the withholding it bore, and why anything was carried forward.
            self.meta(_("Payout basis"), str(dict(PayoutBasis.choices).get(statement.basis, statement.basis))),
            self.meta(
                _("Withholding"),
                f"{dict(TaxStatus.choices).get(statement.tax_status, '')} {statement.withholding_bp / 100:g}%".strip()
                if statement.tax_status
                else "",
            ),
            self.meta(
                _("Why carried forward"), str(statement.get_carry_reason_display()) if statement.carry_reason else ""
            ),
        )
        yield self.heading(_("Lines by work, lab and manifest"))
        yield self.columns(
            _("Kind"),
            _("Work"),
            _("Title"),
            _("Side"),
            _("Other side's work"),
            _("Lab"),
            _("Manifest"),
            _("Manifest lines"),
            _("Amount (KRW)"),
        )
        kinds = dict(StatementLineKind.choices)
        sides = dict(LineSide.choices)
        count = total = 0
        lines = settlement_selectors.statement_lines(statement=statement).order_by(
            "kind", "work_id", "lab_id", "manifest_id", "pk"
        )
        for line in lines.iterator(chunk_size=2_000):
            count += line.lines
            total += line.amount_micro
            yield Row(
                RowKind.DATA,
                (
                    str(kinds.get(line.kind, line.kind)),
                    _text(line.work_id),
                    line.work.title if line.work is not None else "",
                    # A recording's use split with its musical work: the side earned on, and the other side's work.
                    str(sides[line.side]) if line.side else "",
                    f"{line.other_work_id} {line.other_work.title}" if line.other_work is not None else "",
                    line.lab.name if line.lab is not None else "",
                    line.manifest.manifest_id if line.manifest is not None else "",
                    line.lines,
                    won(line.amount_micro),
                ),
            )
        yield Row(RowKind.TOTAL, (str(_("Total of lines")), None, None, None, None, None, None, count, won(total)))
        yield Row(RowKind.BLANK)
        yield self.heading(_("Balances"))
        yield self.summary(_("Opening balance"), statement.opening_micro)
        yield self.summary(_("Accrued"), statement.accrued_micro)
        yield self.summary(_("Escrow released"), statement.released_micro)
        yield self.summary(_("Market-share distribution"), statement.distributed_micro)
        yield self.summary(_("Adjustments"), statement.adjustments_micro)
        yield self.summary(_("Due"), statement.due_micro)
        yield self.summary(_("Payout"), statement.payout_micro)
        yield self.summary(_("Withheld"), statement.withheld_micro)
        yield self.summary(_("Rounding"), statement.rounding_micro)
        yield self.summary(_("Carried forward"), statement.carried_forward_micro)
        yield self.summary(_("Closing balance"), statement.closing_micro)


class ConsolidatedStatementExporter(Exporter):
    """An agent's consolidated statement: one section per member (its lines, their total, the member's balances,
    withholding and payout, and who was paid), then the grand totals, which are the members' sums exactly."""

    def __init__(self, *, consolidated: ConsolidatedStatement) -> None:
        self.consolidated = consolidated
        self.slug = f"consolidated-statement-{consolidated.pk}"

    def line_count(self) -> int:
        return StatementLine.objects.filter(
            statement__in=settlement_selectors.consolidated_members(consolidated=self.consolidated).values("pk")
        ).count()

    def rows(self) -> Iterator[Row]:
        consolidated = self.consolidated
        settlement = consolidated.settlement
        members = list(settlement_selectors.consolidated_members(consolidated=consolidated))
        yield from self.header(
            _("Consolidated statement"),
            self.meta(_("Consolidated statement number"), str(consolidated.pk)),
            self.meta(_("Period"), settlement.first_day, settlement.last_day),
            self.meta(_("Agent"), consolidated.agent.name),
            self.meta(_("Members"), consolidated.members),
            self.meta(
                _("Settled on"), timezone.localtime(settlement.settled_at).date() if settlement.settled_at else ""
            ),
        )
        kinds = dict(StatementLineKind.choices)
        lines = settlement_selectors.consolidated_lines(consolidated=consolidated).iterator(chunk_size=2_000)
        pending = next(lines, None)
        for statement in members:
            yield self.heading(statement.holder.name)
            yield self.meta(_("Statement number"), str(statement.pk))
            yield self.meta(_("Rights holder"), statement.holder.name)
            yield self.meta(_("Paid to"), statement.paid_to.name)
            yield self.columns(
                _("Kind"), _("Work"), _("Title"), _("Lab"), _("Manifest"), _("Manifest lines"), _("Amount (KRW)")
            )
            count = total = 0
            # The lines come member by member in the members' order: each section takes its own from the stream.
            while pending is not None and pending.statement_id == statement.pk:
                line = pending
                count += line.lines
                total += line.amount_micro
                yield Row(
                    RowKind.DATA,
                    (
                        str(kinds.get(line.kind, line.kind)),
                        _text(line.work_id),
                        line.work.title if line.work is not None else "",
                        line.lab.name if line.lab is not None else "",
                        line.manifest.manifest_id if line.manifest is not None else "",
                        line.lines,
                        won(line.amount_micro),
                    ),
                )
                pending = next(lines, None)
            yield Row(RowKind.TOTAL, (str(_("Subtotal")), None, None, None, None, count, won(total)))
            yield self.summary(_("Opening balance"), statement.opening_micro)
            yield self.summary(_("Due"), statement.due_micro)
            yield self.summary(_("Withheld"), statement.withheld_micro)
            yield self.summary(_("Net payout"), statement.payout_micro)
            yield self.summary(_("Carried forward"), statement.carried_forward_micro)
            yield Row(RowKind.BLANK)
        yield self.heading(_("Grand total"))
        yield self.summary(_("Opening balance"), consolidated.opening_micro)
        yield self.summary(_("Earned in the period"), consolidated.earned_micro)
        yield self.summary(_("Due"), consolidated.due_micro)
        yield self.summary(_("Withheld"), consolidated.withheld_micro)
        yield self.summary(_("Net payout"), consolidated.payout_micro)
        yield self.summary(_("Paid to the agent"), consolidated.paid_to_agent_micro)
        yield self.summary(_("Carried forward"), consolidated.carried_forward_micro)


class InvoiceExporter(Exporter):
    """A lab's invoice: usage by model and manifest, by outcome, violations apart, adjustments, totals."""

    def __init__(self, *, invoice: Invoice) -> None:
        self.invoice = invoice
        self.slug = f"invoice-{invoice.number}"

    def line_count(self) -> int:
        return InvoiceLine.objects.filter(invoice=self.invoice).count()

    def rows(self) -> Iterator[Row]:
        invoice = self.invoice
        settlement = invoice.settlement
        outcomes = dict(Outcome.choices)
        lines = settlement_selectors.invoice_lines(invoice=invoice)
        yield from self.header(
            _("Invoice"),
            self.meta(_("Invoice number"), invoice.number),
            self.meta(_("Period"), settlement.first_day, settlement.last_day),
            self.meta(_("Lab"), invoice.lab.name),
            self.meta(_("Due on"), invoice_due_on(invoice)),
        )

        # Uses of refused works are billed as violations, below, not as compensation.
        usage = lines.filter(section=InvoiceSection.USAGE).exclude(outcome=Outcome.REFUSED_AT_USE)
        yield self.heading(_("Usage by model and manifest"))
        yield self.columns(
            _("Model"), _("Model version"), _("Manifest"), _("Outcome"), _("Manifest lines"), _("Amount (KRW)")
        )
        count = total = 0
        for line in usage.order_by("model", "model_version", "manifest_id", "outcome", "pk").iterator(chunk_size=2_000):
            count += line.lines
            total += line.amount_micro
            yield Row(
                RowKind.DATA,
                (
                    line.model,
                    line.model_version,
                    line.manifest.manifest_id if line.manifest is not None else "",
                    str(outcomes.get(line.outcome, line.outcome)),
                    line.lines,
                    won(line.amount_micro),
                ),
            )
        yield Row(RowKind.TOTAL, (str(_("Total compensation")), None, None, None, count, won(total)))
        yield Row(RowKind.BLANK)

        yield self.heading(_("By outcome"))
        yield self.columns(_("Outcome"), _("Manifest lines"), _("Amount (KRW)"))
        for outcome, lines_sum, amount in (
            usage.order_by()
            .values("outcome")
            .annotate(count=Sum("lines"), amount=Sum("amount_micro"))
            .order_by("outcome")
            .values_list("outcome", "count", "amount")
        ):
            yield Row(RowKind.DATA, (str(outcomes.get(outcome, outcome)), int(lines_sum or 0), won(int(amount or 0))))
        yield Row(RowKind.TOTAL, (str(_("Total compensation")), count, won(total)))
        yield Row(RowKind.BLANK)

        yield self.heading(_("Violations: uses of refused works"))
        yield self.columns(
            _("Model"), _("Manifest"), _("Work"), _("Title"), _("Refusal"), _("Manifest lines"), _("Amount (KRW)")
        )
        count = total = 0
        violations = lines.filter(section=InvoiceSection.VIOLATION).order_by("model", "manifest_id", "work_id", "pk")
        for line in violations.iterator(chunk_size=2_000):
            count += line.lines
            total += line.amount_micro
            yield Row(
                RowKind.DATA,
                (
                    line.model,
                    line.manifest.manifest_id if line.manifest is not None else "",
                    _text(line.work_id),
                    line.work.title if line.work is not None else "",
                    _text(line.refusal_id),
                    line.lines,
                    won(line.amount_micro),
                ),
            )
        yield Row(RowKind.TOTAL, (str(_("Total violations")), None, None, None, None, count, won(total)))
        yield Row(RowKind.BLANK)

        adjustments = lines.filter(section=InvoiceSection.ADJUSTMENT).order_by("entry_id", "pk")
        if adjustments.exists():
            yield self.heading(_("Adjustments"))
            yield self.columns(_("Ledger entry"), _("Memo"), _("Amount (KRW)"))
            total = 0
            for line in adjustments:
                total += line.amount_micro
                memo = line.entry.memo if line.entry is not None else ""
                yield Row(RowKind.DATA, (_text(line.entry_id), memo, won(line.amount_micro)))
            yield Row(RowKind.TOTAL, (str(_("Total adjustments")), None, won(total)))
            yield Row(RowKind.BLANK)

        yield self.heading(_("Totals"))
        yield self.summary(_("Opening balance"), invoice.opening_micro)
        yield self.summary(_("Compensation"), invoice.compensation_micro)
        yield self.summary(_("Violations"), invoice.violations_micro)
        yield self.summary(_("Adjustments"), invoice.adjustments_micro)
        yield self.summary(_("Total for the period"), invoice.total_micro)
        yield self.summary(_("Closing balance"), invoice.closing_micro)
        yield Row(RowKind.SUMMARY, (str(_("Amount due (whole won)")), Decimal(invoice.amount_due_won)))


# --- Renderers --------------------------------------------------------------------------------------------


CONTENT_TYPES = {
    ExportFormat.CSV.value: "text/csv; charset=utf-8",
    ExportFormat.XLSX.value: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.PDF.value: "application/pdf",
}


def render_csv(rows: Iterable[Row], out: IO[bytes]) -> None:
    """UTF-8 with a byte-order mark, so that Excel opens Korean text correctly. Numbers are plain (no
    separators) so that spreadsheets and scripts read them as numbers; text that other parties chose (titles,
    manifest ids, model names) is quoted and never read as a formula (``core.spreadsheets``)."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="", write_through=True)
    writer = spreadsheets.csv_writer(text)
    for row in rows:
        writer.writerow(row.cells)
    text.flush()
    text.detach()


def _xlsx_number_format(value: Decimal) -> str:
    return "#,##0" if value == value.to_integral_value() else "#,##0.0#####"


def render_xlsx(rows: Iterable[Row], out: IO[bytes], *, sheet_title: str = "Export") -> None:
    """Write-only mode: rows stream to the file, so a large export does not build the sheet in memory."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])
    for index, width in enumerate((28, 16, 32, 22, 22, 16, 20, 18), start=1):
        sheet.column_dimensions[chr(ord("A") + index - 1)].width = width
    title_font, heading_font, bold = Font(bold=True, size=14), Font(bold=True, size=12), Font(bold=True)
    for row in rows:
        cells: list[Any] = []
        for cell_value in row.cells:
            # openpyxl writes Decimal as a number; its stubs only name float.
            value: Any = cell_value
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(cell_value, Decimal):
                cell.number_format = _xlsx_number_format(cell_value)
            elif isinstance(cell_value, int):
                cell.number_format = "#,##0"
            elif isinstance(cell_value, date):
                cell.number_format = "yyyy-mm-dd"
            else:
                # Text is stored as text, never as a formula or an error value, whoever wrote it.
                spreadsheets.xlsx_text_cell(cell)
            if row.kind == RowKind.TITLE:
                cell.font = title_font
            elif row.kind == RowKind.HEADING:
                cell.font = heading_font
            elif row.kind in (RowKind.COLUMNS, RowKind.TOTAL) or (row.kind == RowKind.META and not cells):
                cell.font = bold
            cells.append(cell)
        sheet.append(cells)
    workbook.save(out)


def pdf_fonts() -> tuple[str, str]:
    """The regular and bold font names for PDFs: the TrueType font of ``PDF_FONT_PATH`` embedded (so the text
    can be extracted and shows without any font installed), else reportlab's built-in Korean CID font."""
    return _pdf_fonts_registered(str(settings.PDF_FONT_PATH or ""))


@lru_cache(maxsize=4)
def _pdf_fonts_registered(font_path: str) -> tuple[str, str]:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    path = Path(font_path) if font_path else None
    if path is not None and path.is_file():
        regular = f"Registry-{path.stem}"
        pdfmetrics.registerFont(TTFont(regular, str(path)))
        bold_path = path.with_name(path.stem + "Bold" + path.suffix)
        if bold_path.is_file():
            pdfmetrics.registerFont(TTFont(f"{regular}-Bold", str(bold_path)))
            return regular, f"{regular}-Bold"
        return regular, regular
    pdfmetrics.registerFont(UnicodeCIDFont("HYSMyeongJo-Medium"))
    return "HYSMyeongJo-Medium", "HYSMyeongJo-Medium"


def _pdf_cell(value: Cell) -> str:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return format_krw(value)
    if isinstance(value, date):
        return value.isoformat()
    return _text(value)


# Rows per table: reportlab lays a table out as a whole, so long sections are cut into several.
_PDF_TABLE_ROWS = 400


def render_pdf(rows: Iterable[Row], out: IO[bytes], *, title: str = "") -> None:
    """A printable A4 layout: the registry's name, the header block, tables with right-aligned amounts."""
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_RIGHT
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = pdf_fonts()
    title_style = ParagraphStyle("title", fontName=bold, fontSize=16, leading=20, spaceAfter=4)
    heading_style = ParagraphStyle("heading", fontName=bold, fontSize=12, leading=16, spaceBefore=6, spaceAfter=4)
    cell_style = ParagraphStyle("cell", fontName=regular, fontSize=8, leading=10)
    number_style = ParagraphStyle("number", parent=cell_style, alignment=TA_RIGHT)

    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    story: list[Flowable] = []
    columns: list[str] = []
    table_rows: list[list[Any]] = []
    styles: list[tuple[Any, ...]] = []
    numeric: set[int] = set()
    meta_rows: list[list[Any]] = []
    summary_rows: list[list[str]] = []

    def flush_table() -> None:
        nonlocal table_rows, styles
        if not table_rows:
            return
        header = [
            Paragraph(escape(c), number_style if index in numeric else cell_style) for index, c in enumerate(columns)
        ]
        data = [header, *table_rows] if columns else table_rows
        table = Table(data, repeatRows=1 if columns else 0, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("FONTNAME", (0, 0), (-1, -1), regular),
                    ("FONTSIZE", (0, 0), (-1, -1), 8),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                    *(("ALIGN", (i, 0), (i, -1), "RIGHT") for i in sorted(numeric)),
                    *styles,
                ]
            )
        )
        story.append(table)
        table_rows, styles = [], []

    def flush_pairs() -> None:
        nonlocal meta_rows, summary_rows
        if meta_rows:
            table = Table(meta_rows, hAlign="LEFT", colWidths=[45 * mm, None])
            table.setStyle(
                TableStyle(
                    [
                        ("FONTNAME", (0, 0), (-1, -1), regular),
                        ("FONTNAME", (0, 0), (0, -1), bold),
                        ("FONTSIZE", (0, 0), (-1, -1), 9),
                    ]
                )
            )
            story.append(table)
            meta_rows = []
        if summary_rows:
            table = Table(summary_rows, hAlign="LEFT", colWidths=[70 * mm, 50 * mm])
            table.setStyle(
                TableStyle(
                    [
                        ("FONTNAME", (0, 0), (-1, -1), regular),
                        ("FONTSIZE", (0, 0), (-1, -1), 9),
                        ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                    ]
                )
            )
            story.append(table)
            summary_rows = []

    for row in rows:
        if row.kind not in (RowKind.DATA, RowKind.TOTAL):
            flush_table()
        if row.kind not in (RowKind.META, RowKind.SUMMARY):
            flush_pairs()
        texts = [_pdf_cell(cell) for cell in row.cells]
        if row.kind == RowKind.TITLE:
            story.append(Paragraph(escape(" ".join(texts)), title_style))
        elif row.kind == RowKind.HEADING:
            story.append(Paragraph(escape(" ".join(texts)), heading_style))
        elif row.kind == RowKind.META:
            meta_rows.append([texts[0], " ~ ".join(t for t in texts[1:] if t)])
        elif row.kind == RowKind.SUMMARY:
            summary_rows.append([texts[0], texts[1] if len(texts) > 1 else ""])
        elif row.kind == RowKind.COLUMNS:
            columns, numeric = texts, set()
        elif row.kind == RowKind.BLANK:
            story.append(Spacer(1, 4 * mm))
        else:
            for index, cell in enumerate(row.cells):
                if isinstance(cell, Decimal | int):
                    numeric.add(index)
            if row.kind == RowKind.TOTAL:
                styles.append(("FONTNAME", (0, len(table_rows) + 1), (-1, len(table_rows) + 1), bold))
                styles.append(("LINEABOVE", (0, len(table_rows) + 1), (-1, len(table_rows) + 1), 0.6, colors.black))
            table_rows.append([Paragraph(escape(t), cell_style) if len(t) > 30 else t for t in texts])
            if len(table_rows) >= _PDF_TABLE_ROWS:
                flush_table()
    flush_table()
    flush_pairs()

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.drawRightString(doc.pagesize[0] - 12 * mm, 8 * mm, f"{registry_name()} · {doc.page}")
        canvas.restoreState()

    document = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=14 * mm,
        title=title or registry_name(),
        author=registry_name(),
    )
    document.build(story, onFirstPage=footer, onLaterPages=footer)


def render(exporter: Exporter, fmt: str, out: IO[bytes]) -> None:
    """Render the exporter's rows in ``fmt`` (csv, xlsx or pdf) into ``out``, in the active language."""
    if fmt == ExportFormat.CSV:
        render_csv(exporter.rows(), out)
    elif fmt == ExportFormat.XLSX:
        render_xlsx(exporter.rows(), out, sheet_title=exporter.slug)
    elif fmt == ExportFormat.PDF:
        render_pdf(exporter.rows(), out, title=exporter.slug)
    else:
        raise InvalidInput(_("Choose csv, xlsx or pdf."), code="invalid_format", field="format")


def render_bytes(exporter: Exporter, fmt: str) -> bytes:
    buffer = io.BytesIO()
    render(exporter, fmt, buffer)
    return buffer.getvalue()


# --- Documents and formats ------------------------------------------------------------------------------


class ExportDocument(StrEnum):
    STATEMENT = "statement"
    INVOICE = "invoice"
    CONSOLIDATED = "consolidated"


def export_format_parse(value: str | None) -> str:
    fmt = (value or "").lower()
    if fmt not in ExportFormat.values:
        raise InvalidInput(_("Choose csv, xlsx or pdf."), code="invalid_format", field="format")
    return fmt
