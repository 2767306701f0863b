"""The staff admin site: one OTP-required Django admin (SES-09) for the help desk, the VPN's integrations and the
auditors' reports.

It lives in the lowest app so that every app can register its model admins on it (``helpdesk/admin/``,
``vpn/admin.py``) and ``config/urls.py`` can mount the reports in it, while the arrows between apps stay one way: an
app that needs the site imports ``identity``, never a sibling.
"""

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from two_factor.admin import AdminSiteOTPRequiredMixin


class StaffAdminSite(AdminSiteOTPRequiredMixin, AdminSite):
    """Django admin that requires a session verified with a second factor; sign-in goes through our own flow."""

    site_header = "Two-factor enrollment: help desk"
    site_title = "Help desk"
    index_title = "People, devices and audit"

    def login(self, request, extra_context=None):
        if request.user.is_authenticated and request.user.is_verified():
            # Fully signed in but not staff: sending them to sign in again would bounce straight back here.
            raise PermissionDenied
        return super().login(request, extra_context)


site = StaffAdminSite(name="admin")
