from django.contrib.admin import AdminSite
from two_factor.admin import AdminSiteOTPRequiredMixin


class StaffAdminSite(AdminSiteOTPRequiredMixin, AdminSite):
    """Django admin that requires a session verified with a second factor; sign-in goes through our own flow."""

    site_header = "Two-factor enrollment: help desk"
    site_title = "Help desk"
    index_title = "People, devices and audit"


site = StaffAdminSite(name="admin")
