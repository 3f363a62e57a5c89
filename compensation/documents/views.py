"""Staff report pages on the admin site: the dashboard, match rate, escrow aging, violations, top works and
holders. Each page reads one ``Report`` from ``compensation.documents.reports``; ``?format=csv|xlsx|pdf`` downloads it
through the same exporter classes as statements and invoices.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from compensation.documents import exports, reports
from compensation.models import Settlement
from core.dates import date_in_range
from core.errors import RegistryError


def _period(request: HttpRequest) -> tuple[datetime, datetime, dict[str, str]]:
    """The period asked for: ``?settlement=<id>``, or ``?first=YYYY-MM-DD&last=YYYY-MM-DD``, else the last
    twelve months. Malformed dates fall back to the default rather than fail the page."""
    settlement_id = request.GET.get("settlement", "")
    if settlement_id.isdigit():
        settlement = Settlement.objects.filter(pk=int(settlement_id)).first()
        if settlement is not None:
            return settlement.period_start, settlement.period_end, {"settlement": settlement_id}
    try:
        first = date.fromisoformat(request.GET.get("first", ""))
        last = date.fromisoformat(request.GET.get("last", ""))
    except ValueError:
        start, end = reports.report_period_default()
        return start, end, {}
    if not (date_in_range(first) and date_in_range(last)):
        # Year 1 or 9999 would overflow the period's bounds: treated like any malformed date.
        start, end = reports.report_period_default()
        return start, end, {}
    if last < first:
        first, last = last, first
    start, end = reports.day_bounds(first=first, last=last)
    return start, end, {"first": first.isoformat(), "last": last.isoformat()}


def _cell(value: exports.Cell) -> dict[str, object]:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return {"text": exports.format_krw(value), "numeric": True}
    text = value.isoformat() if isinstance(value, date) else value
    return {"text": "" if text is None else text, "numeric": False}


def _display(report: reports.Report) -> list[dict[str, object]]:
    """The report's tables with each cell as the page shows it (KRW with thousands separators)."""
    return [
        {
            "heading": table.heading,
            "columns": table.columns,
            "rows": [[_cell(value) for value in row] for row in table.rows],
            "totals": [_cell(value) for value in table.totals] if table.totals is not None else None,
        }
        for table in report.tables
    ]


def _download_or_page(request: HttpRequest, report: reports.Report, template: str, **context: object) -> HttpResponse:
    fmt = request.GET.get("format", "")
    if fmt:
        try:
            fmt = exports.export_format_parse(fmt)
        except RegistryError as exc:
            return HttpResponseBadRequest(str(exc.message))
        exporter = reports.ReportExporter(report=report)
        response = HttpResponse(exports.render_bytes(exporter, fmt), content_type=exports.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{exporter.filename(fmt)}"'
        return response
    return TemplateResponse(
        request,
        template,
        {
            **admin.site.each_context(request),
            "title": report.title,
            "report": report,
            "headline": [(label, _cell(value)) for label, value in report.headline],
            "tables": _display(report),
            "formats": ["csv", "xlsx", "pdf"],
            "settlements": Settlement.objects.order_by("-period_start")[:24],
            **context,
        },
    )


def _query(params: dict[str, str]) -> str:
    return "&".join(f"{key}={value}" for key, value in params.items())


def dashboard_view(request: HttpRequest) -> HttpResponse:
    start, end, params = _period(request)
    report = reports.report_match_rate(period_start=start, period_end=end)
    report.title = str(_("Reports"))
    return _download_or_page(
        request,
        report,
        "admin/compensation/reports/dashboard.html",
        charts=reports.dashboard_charts(period_start=start, period_end=end),
        query=_query(params),
    )


def match_rate_view(request: HttpRequest) -> HttpResponse:
    start, end, params = _period(request)
    report = reports.report_match_rate(period_start=start, period_end=end)
    months = reports.match_rate_months(period_start=start, period_end=end)
    chart = reports.bar_chart(
        chart_id="match-rate",
        title=str(_("Match rate by value per month (%)")),
        points=[(row.month, row.rate_by_value) for row in months],
        unit="%",
    )
    return _download_or_page(
        request, report, "admin/compensation/reports/report.html", charts=[chart], query=_query(params)
    )


def escrow_aging_view(request: HttpRequest) -> HttpResponse:
    report = reports.report_escrow_aging()
    by_age = report.tables[0]
    chart = reports.bar_chart(
        chart_id="escrow-aging",
        title=str(_("Open escrow by age (KRW)")),
        points=[(str(row[0]), row[-2] if isinstance(row[-2], Decimal) else None) for row in by_age.rows],
    )
    return _download_or_page(
        request, report, "admin/compensation/reports/report.html", charts=[chart], query="", no_period=True
    )


def violations_view(request: HttpRequest) -> HttpResponse:
    start, end, params = _period(request)
    report = reports.report_violations(period_start=start, period_end=end)
    return _download_or_page(request, report, "admin/compensation/reports/report.html", query=_query(params))


def top_view(request: HttpRequest) -> HttpResponse:
    start, end, params = _period(request)
    report = reports.report_top(period_start=start, period_end=end)
    return _download_or_page(request, report, "admin/compensation/reports/report.html", query=_query(params))


def overdue_view(request: HttpRequest) -> HttpResponse:
    report = reports.report_overdue()
    return _download_or_page(request, report, "admin/compensation/reports/report.html", query="", no_period=True)


_PAGES: list[tuple[str, str, Callable[[HttpRequest], HttpResponse]]] = [
    ("", "dashboard", dashboard_view),
    ("match-rate/", "match-rate", match_rate_view),
    ("escrow-aging/", "escrow-aging", escrow_aging_view),
    ("violations/", "violations", violations_view),
    ("top/", "top", top_view),
    ("overdue/", "overdue", overdue_view),
]


# The pages as the admin's index lists them, in the order of the reports' own navigation.
_TITLES: dict[str, Any] = {
    "dashboard": _("Dashboard"),
    "match-rate": _("Match rate"),
    "escrow-aging": _("Escrow aging"),
    "violations": _("Violations"),
    "top": _("Top works and rights holders"),
    "overdue": _("Overdue invoices"),
}


def reports_app_entry() -> dict[str, Any]:
    """The reports as one more application in the admin's index and navigation, a page per row (they are
    pages, not models: each row is a view link only)."""
    pages = [
        {
            "name": _TITLES[name],
            "object_name": f"report-{name}",
            "admin_url": reverse(f"admin:compensation-reports-{name}"),
            "add_url": None,
            "view_only": True,
            "perms": {"add": False, "change": False, "delete": False, "view": True},
        }
        for _route, name, _view in _PAGES
    ]
    return {
        "name": _("Reports"),
        "app_label": "compensation_reports",
        "app_url": reverse("admin:compensation-reports-dashboard"),
        "has_module_perms": True,
        "models": pages,
    }


def report_urls() -> list[URLPattern]:
    """The pages, under /admin/compensation/reports/, behind the admin's staff login."""
    return [
        path(f"compensation/reports/{route}", admin.site.admin_view(view), name=f"compensation-reports-{name}")
        for route, name, view in _PAGES
    ]
