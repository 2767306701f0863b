"""The auditors' pages in the staff admin. Thin: a form, a selector, an export writer, the audit service."""

import tempfile
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from campaigns.background import start_nudges
from campaigns.models import Campaign
from campaigns.progress import campaign_progress
from identity import staff_factor
from identity.web import client_ip

from . import background, dashboard, selectors, services
from .access import RUN_CAMPAIGNS, auditor_required, campaign_viewer_required, can_read_reports
from .exports import write_xlsx
from .forms import filter_words
from .models import ExportJob
from .registry import EXPORT_FORMATS, REPORTS, Report, csv_file

PAGE_SIZE = 100
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@auditor_required
def dashboard_page(request, site):
    summary = dashboard.headline()
    totals = summary["totals"]
    weeks = dashboard.enrolled_per_week()
    departments = dashboard.enrolled_by_department()
    desk_weeks = dashboard.desk_actions_per_week()
    context = {
        **site.each_context(request),
        **summary,
        "title": "Enrollment dashboard",
        "weeks": weeks,
        "weeks_chart": dashboard.chart(
            [(week, cumulative) for week, _, cumulative in weeks], axis="People enrolled so far"
        ),
        "departments": departments,
        "departments_chart": dashboard.chart(
            [(name, percent) for name, _, _, percent in departments],
            axis="Percent of the department enrolled",
            percent=True,
        ),
        "kinds": totals.devices_by_kind,
        "kinds_chart": dashboard.chart(totals.devices_by_kind, axis="Devices in use"),
        "desk_chart": dashboard.chart(desk_weeks, axis="Help-desk actions"),
        "desk_weeks": desk_weeks,
        "staff_phishing_resistant_from": staff_factor.start_words(),
    }
    return render(request, "reports/dashboard.html", context)


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
    rows = [report.shown(row) for row in report.rows(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)]
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
        "filters": filter_words(form),
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


@auditor_required
def audit_verify(request, site):
    """The audit report's "verify again": every event of the range, read and hashed now, whatever was verified
    before; then back to the report with the same filters."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    report = REPORTS["audit"]
    form = report.form(request.POST)
    if not form.is_valid():
        return _refused_filters(request, site, report, form)
    status = selectors.audit_chain_status(form.filters(), in_full=True)
    (messages.success if status.verifies else messages.error)(request, f"Verified again now: {status.words}")
    query = urlencode({name: request.POST[name] for name in form.fields if request.POST.get(name)})
    return redirect(f"{reverse(f'reports_{report.slug}')}?{query}")


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
    count = report.count(filters)
    if count > settings.REPORTS_BACKGROUND_EXPORT_ROWS:
        job = background.start_background_export(
            request.user,
            report=report.slug,
            file_format=file_format,
            form_data={name: request.POST.get(name) for name in form.fields if request.POST.get(name)},
            filters=filters.as_dict(),
            rows=count,
            ip=client_ip(request),
        )
        return redirect("reports_export_job", job_id=job.pk)
    services.record_export(
        request.user,
        report=report.slug,
        file_format=file_format,
        filters=filters.as_dict(),
        rows=count,
        ip=client_ip(request),
    )
    if file_format == "csv":
        response = StreamingHttpResponse(csv_file(report, filters), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{_filename(report, "csv")}"'
        return response
    # XlsxWriter needs a seekable file to zip; constant_memory keeps only one row in memory meanwhile.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it once sent)
    write_xlsx(spool, report.columns, report.rows(filters), sheet_name=report.title)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=_filename(report, "xlsx"), content_type=XLSX)


def _own_job(request, job_id) -> ExportJob:
    # Another auditor's export does not exist, as far as this auditor can tell.
    job = ExportJob.objects.filter(pk=job_id, requested_by=request.user).first()
    if job is None:
        raise Http404
    return job


@auditor_required
def export_job(request, site, job_id):
    job = _own_job(request, job_id)
    context = {
        **site.each_context(request),
        "title": "Export",
        "job": job,
        "report": REPORTS[job.report],
        "percent": int(100 * job.rows_written / job.rows_expected) if job.rows_expected else 100,
        "usable": job.status == ExportJob.Status.DONE and not job.downloaded_at and job.expires_at > timezone.now(),
    }
    return render(request, "reports/export_job.html", context)


@auditor_required
def export_download(request, site, job_id):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        job, handle = services.open_export_download(job_id, actor=request.user, ip=client_ip(request))
    except ExportJob.DoesNotExist:
        raise Http404 from None
    except ValidationError as refusal:
        messages.error(request, refusal.messages[0])
        return redirect("reports_export_job", job_id=job_id)
    report = REPORTS[job.report]
    content_type = XLSX if job.file_format == "xlsx" else "text/csv; charset=utf-8"
    return FileResponse(
        handle,
        as_attachment=True,
        filename=_filename(report, job.file_format),
        content_type=content_type,
    )


def _campaign(campaign_id) -> Campaign:
    campaign = Campaign.objects.select_related("owner").filter(pk=campaign_id).first()
    if campaign is None:
        raise Http404
    return campaign


@campaign_viewer_required
def campaign_page(request, site, campaign_id):
    campaign = _campaign(campaign_id)
    progress = campaign_progress(campaign)
    export = {"campaign": str(campaign.pk)}
    context = {
        **site.each_context(request),
        "title": f"Campaign: {campaign.name}",
        "campaign": campaign,
        "progress": progress,
        "burn_down_chart": dashboard.chart(progress.burn_down, axis="People still to enroll"),
        "departments_chart": dashboard.chart(
            [(name, percent) for name, *_, percent in progress.departments],
            axis="Percent of the department enrolled",
            percent=True,
        ),
        "strengths_chart": dashboard.chart(progress.strengths, axis="People"),
        "export_formats": EXPORT_FORMATS,
        "export_url_prefix": "reports_campaign-people_",
        "export_fields": list(export.items()),
        "people_url": f"{reverse('reports_campaign-people')}?{urlencode(export)}",
        "may_nudge": request.user.has_perm(RUN_CAMPAIGNS) and campaign.closed_at is None,
        "may_export": can_read_reports(request.user),
    }
    return render(request, "reports/campaign.html", context)


@campaign_viewer_required
def campaign_nudge(request, site, campaign_id):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    campaign = _campaign(campaign_id)
    if not request.user.has_perm(RUN_CAMPAIGNS) or campaign.closed_at is not None:
        raise PermissionDenied
    start_nudges(campaign, actor=request.user, ip=client_ip(request))
    messages.success(request, "The people at risk are being nudged; each gets one email, in the coming minutes.")
    return redirect("campaign_progress", campaign.pk)
