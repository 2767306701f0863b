"""Read-only questions about people that several apps ask."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import AuditEvent, User

STAFF_GROUPS = ("Help desk", "Auditor")


def is_staff_account(person: User) -> bool:
    """Staff flag, superuser, or a member of a staff group: desk actions on it need a second agent (BND-08)."""
    return person.is_staff or person.is_superuser or person.groups.filter(name__in=STAFF_GROUPS).exists()


def email_changed_recently(person: User) -> bool:
    """Whether the email changed within RECENT_EMAIL_CHANGE_HOURS: a recovery link to it needs a second agent."""
    since = timezone.now() - timedelta(hours=settings.RECENT_EMAIL_CHANGE_HOURS)
    return AuditEvent.objects.filter(subject=person, action="person.email_changed", created_at__gte=since).exists()
