from django import template

from reports.access import can_read_reports

register = template.Library()


@register.filter
def reads_reports(user) -> bool:
    """Whether to offer ``user`` the reports (auditors and superusers)."""
    return can_read_reports(user)
