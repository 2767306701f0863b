"""The staff admin site: one OTP-required Django admin (SES-09) for the help desk, the VPN's integrations and the
auditors' reports.

It lives in the lowest app so that every app can register its model admins on it (``helpdesk/admin/``,
``vpn/admin.py``) and ``config/urls.py`` can mount the reports in it, while the arrows between apps stay one way: an
app that needs the site imports ``identity``, never a sibling.

From ``STAFF_PHISHING_RESISTANT_FROM`` it also requires the session to have been verified with a security key or a
passkey (WA-05, :mod:`identity.staff_factor`); before that date it reminds staff who signed in with a code.
"""

from django.conf import settings
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from two_factor.admin import AdminSiteOTPRequiredMixin

from . import staff_factor
from .web import client_ip


class StaffAdminSite(AdminSiteOTPRequiredMixin, AdminSite):
    """Django admin that requires a session verified with a second factor; sign-in goes through our own flow."""

    site_header = "Two-factor enrollment: help desk"
    site_title = "Help desk"
    index_title = "People, devices and audit"

    def has_permission(self, request):
        return super().has_permission(request) and not staff_factor.refuses(request.user)

    def login(self, request, extra_context=None):
        if request.user.is_authenticated and request.user.is_verified():
            if staff_factor.refuses(request.user):
                return self.phishing_resistant_required(request)
            # Fully signed in but not staff: sending them to sign in again would bounce straight back here.
            raise PermissionDenied
        return super().login(request, extra_context)

    def phishing_resistant_required(self, request):
        """Why a staff member who signed in with a code is turned away, and what to do now (WA-05). Audited.

        Every page of the admin sends them here (``has_permission`` refuses them, ``admin_view`` redirects to the
        login view). Adding a security key or passkey is self-service, outside the admin, so nobody is stuck.
        """
        asked_for = request.GET.get("next", request.path)
        staff_factor.record_admin_refusal(request.user, path=asked_for, ip=client_ip(request))
        context = {
            **self.each_context(request),
            "title": "Sign in with a security key or passkey",
            "subtitle": None,
            "start_words": staff_factor.start_words(),
            "signed_in_with": staff_factor.factor_words(staff_factor.session_device(request.user)),
            "keys": staff_factor.phishing_resistant_devices(request.user),
            "help_desk": settings.HELP_DESK_CONTACT,
        }
        return TemplateResponse(request, "admin/phishing_resistant_required.html", context, status=403)

    def each_context(self, request):
        context = super().each_context(request)
        if staff_factor.needs_nudge(request.user):
            context["staff_factor_nudge"] = {
                "start_words": staff_factor.start_words(),
                "has_key": bool(staff_factor.phishing_resistant_devices(request.user)),
                "help_desk": settings.HELP_DESK_CONTACT,
            }
        return context


site = StaffAdminSite(name="admin")
