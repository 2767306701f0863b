"""The staff admin site: one OTP-required Django admin (SES-09) for the help desk, the VPN's integrations and the
auditors' reports.

It lives in the lowest app so that every app can register its model admins on it (``helpdesk/admin/``,
``vpn/admin.py``) and ``config/urls.py`` can mount the reports in it, while the arrows between apps stay one way: an
app that needs the site imports ``identity``, never a sibling.

From ``STAFF_PHISHING_RESISTANT_FROM`` it also requires the session to have been verified with a security key or a
passkey (WA-05, :mod:`identity.staff_factor`); before that date it reminds staff who signed in with a code.
"""

from django.conf import settings
from django.contrib.admin import AdminSite, ModelAdmin, SimpleListFilter
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models.constants import LOOKUP_SEP
from django.template.response import TemplateResponse
from two_factor.admin import AdminSiteOTPRequiredMixin

from . import staff_factor
from .web import client_ip

# What Django's own field filters and date hierarchy put in a list's query string after a field's name.
FILTER_LOOKUPS = frozenset({"exact", "iexact", "isnull", "in", "gte", "lt", "year", "month", "day"})


class StaffModelAdmin(ModelAdmin):
    """The base of every ModelAdmin on the staff site (the site refuses any other).

    Django's admin lets a list's query string filter on any field (``?password__startswith=pbkdf2``), which answers
    "is there a row whose secret starts so?" one character at a time. Here a list takes only the filters it
    declares: its ``list_filter`` (a filter class's parameter, or a field's own lookups) and its
    ``date_hierarchy``.
    """

    def allowed_lookups(self, request) -> tuple[set[str], set[str]]:
        """The query-string parameters this list accepts as they are, and the fields it accepts with a filter's
        lookup after them (``FILTER_LOOKUPS``)."""
        names: set[str] = set()
        fields: set[str] = set()
        list_filter = self.get_list_filter(request) if request is not None else self.list_filter
        for item in list_filter:
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                names.add(str(item.parameter_name))
            elif isinstance(item, list | tuple) and isinstance(item[0], str):
                fields.add(item[0])
            elif isinstance(item, str):
                fields.add(item)
        if self.date_hierarchy:
            fields.add(self.date_hierarchy)
        return names, fields

    def lookup_allowed(self, lookup, value, request=None):
        names, fields = self.allowed_lookups(request)
        field, _, rest = lookup.rpartition(LOOKUP_SEP)
        allowed = lookup in names or lookup in fields or (field in fields and rest in FILTER_LOOKUPS)
        return allowed and super().lookup_allowed(lookup, value, request)


class StaffAdminSite(AdminSiteOTPRequiredMixin, AdminSite):
    """Django admin that requires a session verified with a second factor; sign-in goes through our own flow."""

    site_header = "Two-factor enrollment: help desk"
    site_title = "Help desk"
    index_title = "People, devices and audit"

    def has_permission(self, request):
        return super().has_permission(request) and not staff_factor.refuses(request.user)

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or StaffModelAdmin
        if not issubclass(admin_class, StaffModelAdmin):
            # Its lists would filter on any field, secrets included.
            raise ImproperlyConfigured(f"{admin_class.__qualname__} must be a StaffModelAdmin on the staff site.")
        super().register(model_or_iterable, admin_class, **options)

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
