"""The reports' URLs inside the staff admin site, which requires staff and a verified second factor first."""

from django.urls import path

from . import views


def urls_for(site) -> list:
    """URL patterns for ``site`` (the OTP-required staff admin); mounted under its prefix in config/urls.py."""
    patterns = [path("", site.admin_view(views.index), {"site": site}, name="reports_index")]
    for report in views.REPORTS.values():
        kwargs = {"site": site, "report": report}
        patterns.append(
            path(f"{report.slug}/", site.admin_view(views.report_page), kwargs, name=f"reports_{report.slug}")
        )
        for file_format, _ in views.EXPORT_FORMATS:
            patterns.append(
                path(
                    f"{report.slug}/export.{file_format}",
                    site.admin_view(views.report_export),
                    {**kwargs, "file_format": file_format},
                    name=f"reports_{report.slug}_{file_format}",
                )
            )
    return patterns
