"""The reports' URLs inside the staff admin site, which requires staff and a verified second factor first."""

from django.urls import path

from . import views


def urls_for(site) -> list:
    """URL patterns for ``site`` (the OTP-required staff admin); mounted under its prefix in config/urls.py."""
    return [
        path("", site.admin_view(views.index), {"site": site}, name="reports_index"),
        path("enrollment/", site.admin_view(views.enrollment_report), {"site": site}, name="reports_enrollment"),
        *(
            path(
                f"enrollment/export.{file_format}",
                site.admin_view(views.enrollment_export),
                {"site": site, "file_format": file_format},
                name=f"reports_enrollment_{file_format}",
            )
            for file_format in ("csv", "xlsx")
        ),
    ]
