"""Staff reports: match rate, escrow aging, violations, top works and holders, and the dashboard's series.

Each report is plain data (``Report``: tables of typed cells with their totals) read by a few grouped queries;
the admin pages show it and ``ReportExporter`` renders the very same rows as CSV, XLSX or PDF, so a download
carries the page's totals. A manifest line belongs to the month of its ledger entry's effective date (an
unpriced line, without an entry, to its manifest's): the dates settlement periods close by.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Case, Count, F, IntegerField, Sum, Value, When
from django.db.models.functions import Coalesce, TruncMonth
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compensation.documents.exports import Cell, Exporter, Row, RowKind, won
from compensation.models import USE_ROW, AccountKind, EntryKind, LedgerLine, ManifestLine, Outcome
from compensation.payments.selectors import overdue_by_band, overdue_invoices
from compensation.settlement.distribution import distributable_before
from core.actors import Actor
from registry.models import WorkKind

# Outcomes whose value went to owners or into escrow: the base of the match rate.
_RATED_OUTCOMES = (Outcome.MATCHED, Outcome.SHARE_UNCLAIMED, Outcome.UNMATCHED_HELD, Outcome.DISPUTED_HELD)
_HELD_OUTCOMES = (Outcome.SHARE_UNCLAIMED, Outcome.UNMATCHED_HELD, Outcome.DISPUTED_HELD)


@dataclass
class ReportTable:
    heading: str
    columns: list[str]
    rows: list[tuple[Cell, ...]] = field(default_factory=list)
    totals: tuple[Cell, ...] | None = None


@dataclass
class Report:
    slug: str
    title: str
    meta: list[tuple[str, str]]
    headline: list[tuple[str, Cell]] = field(default_factory=list)
    tables: list[ReportTable] = field(default_factory=list)


class ReportExporter(Exporter):
    """A staff report as rows: its headline figures, then each table with its totals."""

    def __init__(self, *, report: Report) -> None:
        self.report = report
        self.slug = report.slug

    def line_count(self) -> int:
        return sum(len(table.rows) for table in self.report.tables)

    def rows(self) -> Iterator[Row]:
        report = self.report
        yield from self.header(report.title, *(self.meta(label, value) for label, value in report.meta))
        for label, value in report.headline:
            yield Row(RowKind.SUMMARY, (label, value))
        if report.headline:
            yield Row(RowKind.BLANK)
        for table in report.tables:
            yield self.heading(table.heading)
            yield self.columns(*table.columns)
            for cells in table.rows:
                yield Row(RowKind.DATA, cells)
            if table.totals is not None:
                yield Row(RowKind.TOTAL, table.totals)
            yield Row(RowKind.BLANK)


# --- Periods --------------------------------------------------------------------------------------------


def month_start(moment: datetime) -> datetime:
    local = timezone.localtime(moment)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def report_period_default(*, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The twelve months up to and including the current one: ``[start, end)``."""
    current = month_start(now or timezone.now())
    end = (current + timedelta(days=32)).replace(day=1)
    start = current.replace(year=current.year - 1) + timedelta(days=32)
    return start.replace(day=1), end


def _period_meta(period_start: datetime, period_end: datetime) -> list[tuple[str, str]]:
    first = timezone.localtime(period_start).date()
    last = (timezone.localtime(period_end) - timedelta(microseconds=1)).date()
    return [(str(_("Period")), f"{first.isoformat()} ~ {last.isoformat()}")]


def _when_posted() -> Coalesce:
    return Coalesce(F("entry__effective_at"), F("manifest__created_at"))


def _lines_in_period(period_start: datetime, period_end: datetime) -> Any:
    return ManifestLine.objects.annotate(posted_at=_when_posted()).filter(
        posted_at__gte=period_start, posted_at__lt=period_end
    )


def _month_label(month: datetime) -> str:
    return f"{timezone.localtime(month):%Y-%m}"


def _percent(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"))


# --- Match rate -----------------------------------------------------------------------------------------


@dataclass
class MatchRateMonth:
    month: str
    matched_micro: int = 0
    unmatched_micro: int = 0
    unclaimed_micro: int = 0
    disputed_micro: int = 0
    matched_lines: int = 0
    held_lines: int = 0

    @property
    def held_micro(self) -> int:
        return self.unmatched_micro + self.unclaimed_micro + self.disputed_micro

    @property
    def rate_by_value(self) -> Decimal | None:
        return _percent(self.matched_micro, self.matched_micro + self.held_micro)

    @property
    def rate_by_lines(self) -> Decimal | None:
        return _percent(self.matched_lines, self.matched_lines + self.held_lines)


def match_rate_months(*, period_start: datetime, period_end: datetime) -> list[MatchRateMonth]:
    """Per month: what went to owners (matched) and what was held, by value and by line, at use.

    A matched line of a partly claimed work pays its owners and holds the unclaimed share: its value counts on
    both sides, its line as matched. A recording's use split with its musical work is one line, counted under its
    recording side's outcome (``USE_ROW``); both sides' values count. One grouped query.
    """
    months: dict[str, MatchRateMonth] = {}
    rows = (
        _lines_in_period(period_start, period_end)
        .filter(outcome__in=_RATED_OUTCOMES)
        .annotate(month=TruncMonth("posted_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("month", "outcome")
        .annotate(lines=Count("pk", filter=USE_ROW), paid=Sum("paid_micro"), held=Sum("held_micro"))
        .values_list("month", "outcome", "lines", "paid", "held")
    )
    for month, outcome, lines, paid, held in rows:
        label = _month_label(month)
        row = months.setdefault(label, MatchRateMonth(month=label))
        row.matched_micro += int(paid or 0)
        if outcome == Outcome.UNMATCHED_HELD:
            row.unmatched_micro += int(held or 0)
        elif outcome == Outcome.DISPUTED_HELD:
            row.disputed_micro += int(held or 0)
        else:
            row.unclaimed_micro += int(held or 0)
        if outcome == Outcome.MATCHED:
            row.matched_lines += lines
        else:
            row.held_lines += lines
    return [months[label] for label in sorted(months)]


def report_match_rate(*, period_start: datetime, period_end: datetime) -> Report:
    months = match_rate_months(period_start=period_start, period_end=period_end)
    total = MatchRateMonth(month=str(_("Total")))
    for row in months:
        total.matched_micro += row.matched_micro
        total.unmatched_micro += row.unmatched_micro
        total.unclaimed_micro += row.unclaimed_micro
        total.disputed_micro += row.disputed_micro
        total.matched_lines += row.matched_lines
        total.held_lines += row.held_lines

    def cells(row: MatchRateMonth) -> tuple[Cell, ...]:
        return (
            row.month,
            won(row.matched_micro),
            won(row.unmatched_micro),
            won(row.unclaimed_micro),
            won(row.disputed_micro),
            won(row.held_micro),
            row.rate_by_value,
            row.matched_lines,
            row.held_lines,
            row.rate_by_lines,
        )

    table = ReportTable(
        heading=str(_("Matched and held, by month")),
        columns=[
            str(_("Month")),
            str(_("Matched (KRW)")),
            str(_("Held: unmatched (KRW)")),
            str(_("Held: unclaimed share (KRW)")),
            str(_("Held: disputed (KRW)")),
            str(_("Held in all (KRW)")),
            str(_("Match rate by value (%)")),
            str(_("Matched lines")),
            str(_("Held lines")),
            str(_("Match rate by line (%)")),
        ],
        rows=[cells(row) for row in months],
        totals=cells(total),
    )
    return Report(
        slug="match-rate",
        title=str(_("Match rate")),
        meta=_period_meta(period_start, period_end),
        headline=[
            (str(_("Match rate by value (%)")), total.rate_by_value),
            (str(_("Match rate by line (%)")), total.rate_by_lines),
            (str(_("Matched (KRW)")), won(total.matched_micro)),
            (str(_("Held in all (KRW)")), won(total.held_micro)),
        ],
        tables=[table],
    )


# --- Escrow aging ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgeBucket:
    label: str
    # Held at least ``min_days`` and less than ``max_days`` (None: no upper bound) days ago.
    min_days: int
    max_days: int | None


def escrow_age_buckets() -> list[AgeBucket]:
    """0-6 months, 6-12 months, 1-2 years, 2 years to the hold period, and over the hold period. Bounds at or
    past the hold period are dropped, so a shorter hold period gives fewer buckets."""
    hold = settings.ESCROW_HOLD_PERIOD_DAYS
    named = [(183, _("0-6 months")), (365, _("6-12 months")), (730, _("1-2 years"))]
    buckets: list[AgeBucket] = []
    low = 0
    for bound, label in named:
        if bound >= hold:
            break
        buckets.append(AgeBucket(str(label), low, bound))
        low = bound
    if low < hold:
        rest = {
            0: _("Within the hold period"),
            183: _("6 months to the hold period"),
            365: _("1 year to the hold period"),
            730: _("2-3 years") if hold == 3 * 365 else _("2 years to the hold period"),
        }
        buckets.append(AgeBucket(str(rest[low]), low, hold))
    buckets.append(AgeBucket(str(_("Over the hold period")), hold, None))
    return buckets


@dataclass
class EscrowAging:
    at: datetime
    buckets: list[AgeBucket]
    schemes: list[str]
    # (bucket index, scheme) -> (open micro-won, lines)
    cells: dict[tuple[int, str], tuple[int, int]]
    by_kind: dict[str, int]
    eligible_micro: int
    eligible_lines: int
    eligible_by_month: list[tuple[str, int, int]]

    def bucket_total(self, index: int) -> tuple[int, int]:
        values = [self.cells.get((index, scheme), (0, 0)) for scheme in self.schemes]
        return sum(v[0] for v in values), sum(v[1] for v in values)

    def scheme_total(self, scheme: str) -> tuple[int, int]:
        values = [self.cells.get((index, scheme), (0, 0)) for index in range(len(self.buckets))]
        return sum(v[0] for v in values), sum(v[1] for v in values)

    @property
    def total(self) -> tuple[int, int]:
        values = list(self.cells.values())
        return sum(v[0] for v in values), sum(v[1] for v in values)


def escrow_aging(*, at: datetime | None = None) -> EscrowAging:
    """Escrow still open (held less released, on lines whose hold is open) by age and identifier scheme, and
    what market-share distribution may take now. Age counts from the accrual's effective date."""
    at = at or timezone.now()
    buckets = escrow_age_buckets()
    whens = [
        When(entry__effective_at__gt=at - timedelta(days=bucket.max_days), then=Value(index))
        for index, bucket in enumerate(buckets)
        if bucket.max_days is not None
    ]
    open_holds = ManifestLine.objects.filter(hold_open=True, entry__effective_at__lte=at)
    remaining = Sum(F("held_micro") - F("released_micro"))
    cells: dict[tuple[int, str], tuple[int, int]] = {}
    for bucket, scheme, amount, lines in (
        open_holds.annotate(bucket=Case(*whens, default=Value(len(buckets) - 1), output_field=IntegerField()))
        .order_by()
        .values("bucket", "scheme")
        .annotate(amount=remaining, lines=Count("pk"))
        .values_list("bucket", "scheme", "amount", "lines")
    ):
        cells[(bucket, scheme or "—")] = (int(amount or 0), lines)
    by_kind: dict[str, int] = defaultdict(int)
    for kind, amount in (
        open_holds.order_by()
        .values("held_account__kind")
        .annotate(amount=remaining)
        .values_list("held_account__kind", "amount")
    ):
        by_kind[kind or ""] += int(amount or 0)
    cutoff = distributable_before(at=at)
    eligible_by_month = [
        (_month_label(month), int(amount or 0), lines)
        for month, amount, lines in open_holds.filter(entry__effective_at__lt=cutoff)
        .annotate(month=TruncMonth("entry__effective_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("month")
        .annotate(amount=remaining, lines=Count("pk"))
        .order_by("month")
        .values_list("month", "amount", "lines")
    ]
    return EscrowAging(
        at=at,
        buckets=buckets,
        schemes=sorted({scheme for _bucket, scheme in cells}),
        cells=cells,
        by_kind=dict(by_kind),
        eligible_micro=sum(row[1] for row in eligible_by_month),
        eligible_lines=sum(row[2] for row in eligible_by_month),
        eligible_by_month=eligible_by_month,
    )


def report_escrow_aging(*, at: datetime | None = None) -> Report:
    aging = escrow_aging(at=at)
    kinds = dict(AccountKind.choices)
    by_age = ReportTable(
        heading=str(_("Open escrow by age and identifier scheme (KRW)")),
        columns=[str(_("Age")), *aging.schemes, str(_("Total (KRW)")), str(_("Lines"))],
    )
    for index, bucket in enumerate(aging.buckets):
        amount, lines = aging.bucket_total(index)
        by_age.rows.append(
            (
                bucket.label,
                *(won(aging.cells.get((index, scheme), (0, 0))[0]) for scheme in aging.schemes),
                won(amount),
                lines,
            )
        )
    total_amount, total_lines = aging.total
    by_age.totals = (
        str(_("Total")),
        *(won(aging.scheme_total(scheme)[0]) for scheme in aging.schemes),
        won(total_amount),
        total_lines,
    )
    by_kind = ReportTable(
        heading=str(_("Open escrow by account")),
        columns=[str(_("Account")), str(_("Open (KRW)"))],
        rows=[(str(kinds.get(kind, kind)), won(amount)) for kind, amount in sorted(aging.by_kind.items())],
        totals=(str(_("Total")), won(sum(aging.by_kind.values()))),
    )
    eligible = ReportTable(
        heading=str(_("Eligible for market-share distribution now, by hold month")),
        columns=[str(_("Hold month")), str(_("Open (KRW)")), str(_("Lines"))],
        rows=[(month, won(amount), lines) for month, amount, lines in aging.eligible_by_month],
        totals=(str(_("Total")), won(aging.eligible_micro), aging.eligible_lines),
    )
    return Report(
        slug="escrow-aging",
        title=str(_("Escrow aging")),
        meta=[
            (str(_("As of")), timezone.localtime(aging.at).strftime("%Y-%m-%d %H:%M")),
            (str(_("Hold period (days)")), str(settings.ESCROW_HOLD_PERIOD_DAYS)),
        ],
        headline=[
            (str(_("Open escrow (KRW)")), won(total_amount)),
            (str(_("Eligible for distribution now (KRW)")), won(aging.eligible_micro)),
        ],
        tables=[by_age, by_kind, eligible],
    )


# --- Violations -----------------------------------------------------------------------------------------


def report_violations(*, period_start: datetime, period_end: datetime) -> Report:
    """Uses of refused works by lab, model and work, with what they were billed as violations."""
    rows = list(
        _lines_in_period(period_start, period_end)
        .filter(outcome=Outcome.REFUSED_AT_USE)
        .order_by()
        .values("manifest__lab__name", "manifest__model", "work_id", "work__title")
        .annotate(lines=Count("pk"), amount=Sum("violation_micro"))
        .order_by("manifest__lab__name", "manifest__model", "-amount", "work_id")
        .values_list("manifest__lab__name", "manifest__model", "work_id", "work__title", "lines", "amount")
    )
    table = ReportTable(
        heading=str(_("Uses of refused works")),
        columns=[
            str(_("Lab")),
            str(_("Model")),
            str(_("Work")),
            str(_("Title")),
            str(_("Lines")),
            str(_("Amount (KRW)")),
        ],
        rows=[
            (lab, model, str(work or ""), title or "", lines, won(int(amount or 0)))
            for lab, model, work, title, lines, amount in rows
        ],
        totals=(
            str(_("Total")),
            None,
            None,
            None,
            sum(row[4] for row in rows),
            won(sum(int(row[5] or 0) for row in rows)),
        ),
    )
    by_lab: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for lab, _model, _work, _title, lines, amount in rows:
        by_lab[lab][0] += lines
        by_lab[lab][1] += int(amount or 0)
    labs = ReportTable(
        heading=str(_("By lab")),
        columns=[str(_("Lab")), str(_("Lines")), str(_("Amount (KRW)"))],
        rows=[(lab, lines, won(amount)) for lab, (lines, amount) in sorted(by_lab.items())],
        totals=table.totals and (str(_("Total")), table.totals[4], table.totals[5]),
    )
    return Report(
        slug="violations",
        title=str(_("Violations")),
        meta=_period_meta(period_start, period_end),
        headline=[(str(_("Violations (KRW)")), table.totals[5] if table.totals else None)],
        tables=[labs, table],
    )


# --- Top works and holders ------------------------------------------------------------------------------


def top_works(*, period_start: datetime, period_end: datetime, limit: int) -> list[tuple[int, str, str, int, int]]:
    """Works by what their uses paid to owners at accrual: (work, title, kind, lines, micro-won)."""
    return [
        (work, title, kind, lines, int(paid or 0))
        for work, title, kind, lines, paid in _lines_in_period(period_start, period_end)
        .filter(paid_micro__gt=0)
        .order_by()
        .values("work_id", "work__title", "work__kind")
        .annotate(lines=Count("pk"), paid=Sum("paid_micro"))
        .order_by("-paid", "work_id")
        .values_list("work_id", "work__title", "work__kind", "lines", "paid")[:limit]
    ]


def top_holders(*, period_start: datetime, period_end: datetime, limit: int) -> list[tuple[int, str, int]]:
    """Rights holders by accruals credited to their payable in the period: (party, name, micro-won)."""
    return [
        (party, name, -int(total or 0))
        for party, name, total in LedgerLine.objects.filter(
            account__kind=AccountKind.HOLDER_PAYABLE,
            entry__kind=EntryKind.ACCRUAL,
            entry__effective_at__gte=period_start,
            entry__effective_at__lt=period_end,
        )
        .order_by()
        .values("account__party_id", "account__party__name")
        .annotate(total=Sum("amount_micro"))
        .order_by("total", "account__party_id")
        .values_list("account__party_id", "account__party__name", "total")[:limit]
    ]


def report_top(*, period_start: datetime, period_end: datetime, limit: int = 20) -> Report:
    kinds = dict(WorkKind.choices)
    works = top_works(period_start=period_start, period_end=period_end, limit=limit)
    holders = top_holders(period_start=period_start, period_end=period_end, limit=limit)
    works_table = ReportTable(
        heading=str(_("Top works by accrual to owners")),
        columns=[
            str(_("Rank")),
            str(_("Work")),
            str(_("Title")),
            str(_("Kind")),
            str(_("Lines")),
            str(_("Accrued (KRW)")),
        ],
        rows=[
            (rank, str(work), title, str(kinds.get(kind, kind)), lines, won(paid))
            for rank, (work, title, kind, lines, paid) in enumerate(works, start=1)
        ],
        totals=(str(_("Total")), None, None, None, sum(w[3] for w in works), won(sum(w[4] for w in works))),
    )
    holders_table = ReportTable(
        heading=str(_("Top rights holders by accrual")),
        columns=[str(_("Rank")), str(_("Rights holder")), str(_("Accrued (KRW)"))],
        rows=[(rank, name, won(amount)) for rank, (_party, name, amount) in enumerate(holders, start=1)],
        totals=(str(_("Total")), None, won(sum(h[2] for h in holders))),
    )
    return Report(
        slug="top",
        title=str(_("Top works and rights holders")),
        meta=[*_period_meta(period_start, period_end), (str(_("Shown")), str(limit))],
        tables=[works_table, holders_table],
    )


# --- Dashboard series -----------------------------------------------------------------------------------


def accruals_by_month(*, period_start: datetime, period_end: datetime) -> list[tuple[str, int]]:
    """What labs' uses cost per month (to owners, held and violations together), in micro-won."""
    return [
        (_month_label(month), int(amount or 0))
        for month, amount in _lines_in_period(period_start, period_end)
        .filter(amount_micro__isnull=False)
        .annotate(month=TruncMonth("posted_at", tzinfo=timezone.get_current_timezone()))
        .order_by()
        .values("month")
        .annotate(amount=Sum("amount_micro"))
        .order_by("month")
        .values_list("month", "amount")
    ]


def accruals_by_kind(*, period_start: datetime, period_end: datetime) -> list[tuple[str, int]]:
    kinds = dict(WorkKind.choices)
    return [
        (str(kinds.get(kind, kind or _("Unknown"))), int(amount or 0))
        for kind, amount in _lines_in_period(period_start, period_end)
        .filter(amount_micro__isnull=False)
        .order_by()
        .values("kind")
        .annotate(amount=Sum("amount_micro"))
        .order_by("-amount", "kind")
        .values_list("kind", "amount")
    ]


# --- Charts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    x: float
    y: float
    width: float
    height: float
    label_x: float


@dataclass(frozen=True)
class BarChart:
    """A bar chart laid out for inline SVG: the template draws it, with a title and a description."""

    id: str
    title: str
    description: str
    width: int
    height: int
    baseline: int
    bars: list[Bar]
    max_text: str


def bar_chart(*, chart_id: str, title: str, points: list[tuple[str, Decimal | int | None]], unit: str = "") -> BarChart:
    width, height, top, bottom, left = 640, 240, 20, 40, 10
    plot_height = height - top - bottom
    values = [Decimal(value or 0) for _label, value in points]
    peak = max(values, default=Decimal(0)) or Decimal(1)
    slot = (width - 2 * left) / max(len(points), 1)
    bars = []
    for index, ((label, value), amount) in enumerate(zip(points, values, strict=True)):
        bar_height = float(amount / peak) * plot_height if amount > 0 else 0.0
        x = left + index * slot + slot * 0.15
        text = "—" if value is None else f"{format(value, ',f') if isinstance(value, Decimal) else f'{value:,}'}{unit}"
        bars.append(
            Bar(
                label=label,
                value_text=text,
                x=round(x, 1),
                y=round(top + plot_height - bar_height, 1),
                width=round(slot * 0.7, 1),
                height=round(bar_height, 1),
                label_x=round(x + slot * 0.35, 1),
            )
        )
    description = "; ".join(f"{bar.label}: {bar.value_text}" for bar in bars) or str(_("No data in the period."))
    return BarChart(
        id=chart_id,
        title=title,
        description=description,
        width=width,
        height=height,
        baseline=top + plot_height,
        bars=bars,
        max_text=f"{format(peak, ',f')}{unit}",
    )


def dashboard_charts(*, period_start: datetime, period_end: datetime) -> list[BarChart]:
    months = match_rate_months(period_start=period_start, period_end=period_end)
    return [
        bar_chart(
            chart_id="accruals-by-month",
            title=str(_("Accruals per month (KRW)")),
            points=[
                (month, won(amount))
                for month, amount in accruals_by_month(period_start=period_start, period_end=period_end)
            ],
        ),
        bar_chart(
            chart_id="accruals-by-kind",
            title=str(_("Accruals by work kind (KRW)")),
            points=[
                (kind, won(amount))
                for kind, amount in accruals_by_kind(period_start=period_start, period_end=period_end)
            ],
        ),
        bar_chart(
            chart_id="match-rate",
            title=str(_("Match rate by value per month (%)")),
            points=[(row.month, row.rate_by_value) for row in months],
            unit="%",
        ),
    ]


def day_bounds(*, first: date, last: date) -> tuple[datetime, datetime]:
    """A period of whole local days, half-open: ``[first 00:00, last + 1 day 00:00)``."""
    return day_start(first), day_start(last + timedelta(days=1))


# --- Overdue invoices -----------------------------------------------------------------------------------


def report_overdue(*, today: date | None = None) -> Report:
    """Invoices of settled periods with money overdue, by age past their due date, and each one by lab."""
    rows = overdue_invoices(actor=Actor.system(), today=today)
    bands = overdue_by_band(rows)
    total = sum(row["overdue_won"] for row in rows)
    by_age = ReportTable(
        heading=str(_("Overdue by days past the due date")),
        columns=[str(_("Days overdue")), str(_("Invoices")), str(_("Overdue (KRW)"))],
        rows=[(band["band"], band["invoices"], Decimal(band["overdue_won"])) for band in bands],
        totals=(str(_("Total")), len(rows), Decimal(total)),
    )
    invoices = ReportTable(
        heading=str(_("Overdue invoices")),
        columns=[
            str(_("Invoice")),
            str(_("Lab")),
            str(_("Due on")),
            str(_("Days overdue")),
            str(_("Amount due (KRW)")),
            str(_("Paid (KRW)")),
            str(_("Overdue (KRW)")),
        ],
        rows=[
            (
                row["invoice"].number,
                row["invoice"].lab.name,
                row["due_on"].isoformat(),
                row["days_overdue"],
                Decimal(row["invoice"].amount_due_won),
                Decimal(row["paid_won"]),
                Decimal(row["overdue_won"]),
            )
            for row in rows
        ],
        totals=(str(_("Total")), None, None, None, None, None, Decimal(total)),
    )
    return Report(
        slug="overdue",
        title=str(_("Overdue invoices")),
        meta=[(str(_("As of")), (today or timezone.localdate()).isoformat())],
        headline=[(str(_("Overdue (KRW)")), Decimal(total))],
        tables=[by_age, invoices],
    )
