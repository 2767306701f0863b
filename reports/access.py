"""Who may read the reports: the Auditor group and superusers (AC-03). The help desk does not need them."""

from functools import wraps

from django.core.exceptions import PermissionDenied

AUDITOR_GROUP = "Auditor"


def can_read_reports(user) -> bool:
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name=AUDITOR_GROUP).exists()


def auditor_required(view):
    """Refuse anyone but auditors and superusers; the admin site's ``admin_view`` has already required a
    verified second factor and staff status."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not can_read_reports(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped
