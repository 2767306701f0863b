"""The auditors' pages in the staff admin. Thin: a form, a selector, an export writer, the audit service."""

import tempfile
from dataclasses import dataclass
from typing import Any

from django.http import FileResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from identity.views import client_ip

from . import selectors, services
from .access import auditor_required
from .exports import csv_chunks, write_xlsx
from .forms import AuditFilterForm, DeskFilterForm, EnrollmentFilterForm

PAGE_SIZE = 100
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_FORMATS = [("csv", "CSV"), ("xlsx", "Excel (XLSX)")]


@dataclass(frozen=True)
class Report:
    """One report: its filter form, its columns, and the selectors that count and stream its rows."""

    slug: str
    title: str
    template: str
    form: type
    columns: tuple
    rows: Any  # rows(filters, limit=None, offset=0) -> iterator of tuples
    count: Any  # count(filters) -> int
    summary: Any  # summary(filters) -> dict for the page's template, with the rows' "count"


def _enrollment_summary(totals) -> dict:
    return {"totals": totals, "count": totals.people}


def _desk_summary(summary) -> dict:
    return {**summary, "count": len(summary["per_agent"])}


ENROLLMENT = Report(
    slug="enrollment",
    title="Enrollment report",
    template="reports/enrollment.html",
    form=EnrollmentFilterForm,
    columns=selectors.ENROLLMENT_COLUMNS,
    rows=selectors.enrollment_rows,
    count=lambda filters: selectors.enrollment_totals(filters).people,
    summary=lambda filters: _enrollment_summary(selectors.enrollment_totals(filters)),
)
AUDIT_LOG = Report(
    slug="audit",
    title="Audit log report",
    template="reports/audit.html",
    form=AuditFilterForm,
    columns=selectors.AUDIT_COLUMNS,
    rows=selectors.audit_rows,
    count=selectors.audit_count,
    summary=lambda filters: {
        "count": selectors.audit_count(filters),
        "chain": selectors.audit_chain_status(filters),
    },
)
HELP_DESK = Report(
    slug="helpdesk",
    title="Help-desk activity",
    template="reports/helpdesk.html",
    form=DeskFilterForm,
    columns=selectors.DESK_COLUMNS,
    rows=selectors.desk_rows,
    count=lambda filters: len(selectors.desk_activity(filters)),
    summary=lambda filters: _desk_summary(selectors.desk_summary(filters)),
)
REPORTS = {report.slug: report for report in (ENROLLMENT, AUDIT_LOG, HELP_DESK)}


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@auditor_required
def index(request, site):
    return render(request, "reports/index.html", {**site.each_context(request), "title": "Reports"})


def _refused_filters(request, site, report: Report, form):
    context = {**site.each_context(request), "title": report.title, "report": report, "form": form}
    return render(request, report.template, context, status=400)


@auditor_required
def report_page(request, site, report: Report):
    form = report.form(request.GET)  # no filters is a valid query: everyone
    if not form.is_valid():
        return _refused_filters(request, site, report, form)
    filters = form.filters()
    summary = report.summary(filters)
    count = summary["count"]
    page = _page_number(request)
    rows = list(report.rows(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **site.each_context(request),
        **summary,
        "title": report.title,
        "report": report,
        "form": form,
        "columns": report.columns,
        "rows": rows,
        "filters": filters.as_dict(),
        "count": count,
        "page": page,
        "first_row": (page - 1) * PAGE_SIZE + 1,
        "last_row": (page - 1) * PAGE_SIZE + len(rows),
        "has_next": page * PAGE_SIZE < count,
        "query": query.urlencode(),
        "export_formats": EXPORT_FORMATS,
        "export_url_prefix": f"reports_{report.slug}_",
        "export_fields": [(name, value) for name in query for value in query.getlist(name)],
    }
    return render(request, report.template, context)


def _filename(report: Report, extension: str) -> str:
    return f"{report.slug}-{timezone.localtime():%Y%m%d-%H%M%S}.{extension}"


@auditor_required
def report_export(request, site, report: Report, file_format: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = report.form(request.POST)
    if not form.is_valid():
        return _refused_filters(request, site, report, form)
    filters = form.filters()
    services.record_export(
        request.user,
        report=report.slug,
        file_format=file_format,
        filters=filters.as_dict(),
        rows=report.count(filters),
        ip=client_ip(request),
    )
    rows = report.rows(filters)
    if file_format == "csv":
        response = StreamingHttpResponse(csv_chunks(report.columns, rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{_filename(report, "csv")}"'
        return response
    # XlsxWriter needs a seekable file to zip; constant_memory keeps only one row in memory meanwhile.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it once sent)
    write_xlsx(spool, report.columns, rows, sheet_name=report.title)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=_filename(report, "xlsx"), content_type=XLSX)
