"""The reports' URLs inside the staff admin site, which requires staff and a verified second factor first."""

from django.urls import path

from . import views
from .registry import EXPORT_FORMATS, REPORTS


def urls_for(site) -> list:
    """URL patterns for ``site`` (the OTP-required staff admin); mounted under its prefix in config/urls.py."""
    patterns = [
        path("", site.admin_view(views.index), {"site": site}, name="reports_index"),
        path("dashboard/", site.admin_view(views.dashboard_page), {"site": site}, name="reports_dashboard"),
        path("audit/verify/", site.admin_view(views.audit_verify), {"site": site}, name="reports_audit_verify"),
    ]
    for report in REPORTS.values():
        kwargs = {"site": site, "report": report}
        patterns.append(
            path(f"{report.slug}/", site.admin_view(views.report_page), kwargs, name=f"reports_{report.slug}")
        )
        for file_format, _ in EXPORT_FORMATS:
            patterns.append(
                path(
                    f"{report.slug}/export.{file_format}",
                    site.admin_view(views.report_export),
                    {**kwargs, "file_format": file_format},
                    name=f"reports_{report.slug}_{file_format}",
                )
            )
    patterns += [
        path(
            "campaigns/<int:campaign_id>/",
            site.admin_view(views.campaign_page),
            {"site": site},
            name="campaign_progress",
        ),
        path(
            "campaigns/<int:campaign_id>/nudge",
            site.admin_view(views.campaign_nudge),
            {"site": site},
            name="campaign_nudge",
        ),
    ]
    job = {"site": site}
    patterns += [
        path("exports/<uuid:job_id>/", site.admin_view(views.export_job), job, name="reports_export_job"),
        path(
            "exports/<uuid:job_id>/download",
            site.admin_view(views.export_download),
            job,
            name="reports_export_download",
        ),
    ]
    return patterns
