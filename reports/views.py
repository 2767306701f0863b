"""The auditors' pages in the staff admin. Thin: a form, a selector, an export writer, the audit service."""

import tempfile

from django.http import FileResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from identity.views import client_ip

from . import selectors, services
from .access import auditor_required
from .exports import csv_chunks, write_xlsx
from .forms import EnrollmentFilterForm

PAGE_SIZE = 100
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@auditor_required
def index(request, site):
    return render(request, "reports/index.html", {**site.each_context(request), "title": "Reports"})


@auditor_required
def enrollment_report(request, site):
    form = EnrollmentFilterForm(request.GET or None)
    context = {**site.each_context(request), "title": "Enrollment report", "form": form}
    if form.is_bound and not form.is_valid():
        return render(request, "reports/enrollment.html", context, status=400)
    filters = form.filters() if form.is_bound else selectors.EnrollmentFilters()
    page = _page_number(request)
    totals = selectors.enrollment_totals(filters)
    rows = list(selectors.enrollment_rows(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE))
    query = request.GET.copy()
    query.pop("page", None)
    context.update(
        columns=selectors.ENROLLMENT_COLUMNS,
        rows=rows,
        totals=totals,
        factor_labels=selectors.FACTOR_LABELS,
        filters=filters.as_dict(),
        page=page,
        first_row=(page - 1) * PAGE_SIZE + 1,
        last_row=(page - 1) * PAGE_SIZE + len(rows),
        export_formats=[("csv", "CSV"), ("xlsx", "Excel (XLSX)")],
        export_url_prefix="reports_enrollment_",
        export_fields=[(name, value) for name in query for value in query.getlist(name)],
        has_next=page * PAGE_SIZE < totals.people,
        query=query.urlencode(),
    )
    return render(request, "reports/enrollment.html", context)


def _filename(report: str, extension: str) -> str:
    return f"{report}-{timezone.localtime():%Y%m%d-%H%M%S}.{extension}"


@auditor_required
def enrollment_export(request, site, file_format):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = EnrollmentFilterForm(request.POST)
    if not form.is_valid():
        context = {**site.each_context(request), "title": "Enrollment report", "form": form}
        return render(request, "reports/enrollment.html", context, status=400)
    filters = form.filters()
    rows_expected = selectors.enrollment_totals(filters).people
    services.record_export(
        request.user,
        report="enrollment",
        file_format=file_format,
        filters=filters.as_dict(),
        rows=rows_expected,
        ip=client_ip(request),
    )
    rows = selectors.enrollment_rows(filters)
    if file_format == "csv":
        response = StreamingHttpResponse(
            csv_chunks(selectors.ENROLLMENT_COLUMNS, rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{_filename("enrollment", "csv")}"'
        return response
    # XlsxWriter needs a seekable file to zip; constant_memory keeps only one row in memory meanwhile.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it once sent)
    write_xlsx(spool, selectors.ENROLLMENT_COLUMNS, rows, sheet_name="Enrollment")
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=_filename("enrollment", "xlsx"), content_type=XLSX)
