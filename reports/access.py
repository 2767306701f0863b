"""Who may read the reports: the Auditor group and superusers (AC-03). The help desk does not need them. A
campaign's progress page is also for the staff who run campaigns."""

from functools import wraps

from django.core.exceptions import PermissionDenied

AUDITOR_GROUP = "Auditor"
RUN_CAMPAIGNS = "campaigns.run_campaigns"


def can_read_reports(user) -> bool:
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name=AUDITOR_GROUP).exists()


def _requiring(check):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def auditor_required(view):
    """Refuse anyone but auditors and superusers; the admin site's ``admin_view`` has already required a
    verified second factor and staff status."""
    return _requiring(can_read_reports)(view)


def can_see_campaigns(user) -> bool:
    """Auditors, superusers, and the staff who run campaigns (their own permission) see a campaign's progress."""
    if not (user.is_active and user.is_staff):
        return False
    return can_read_reports(user) or user.has_perm(RUN_CAMPAIGNS)


def campaign_viewer_required(view):
    """As :func:`auditor_required`, for :func:`can_see_campaigns`."""
    return _requiring(can_see_campaigns)(view)
