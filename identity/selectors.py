"""Read-only questions about people that several apps ask."""

from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django_otp.models import Device

from .models import AuditEvent, User

STAFF_GROUPS = ("Help desk", "Auditor")


def is_staff_account(person: User) -> bool:
    """Staff flag, superuser, or a member of a staff group: desk actions on it need a second agent (BND-08)."""
    return person.is_staff or person.is_superuser or person.groups.filter(name__in=STAFF_GROUPS).exists()


def email_changed_recently(person: User) -> bool:
    """Whether the email changed within RECENT_EMAIL_CHANGE_HOURS: a recovery link to it needs a second agent."""
    since = timezone.now() - timedelta(hours=settings.RECENT_EMAIL_CHANGE_HOURS)
    return AuditEvent.objects.filter(subject=person, action="person.email_changed", created_at__gte=since).exists()


def confirmed_device(user: User, persistent_id: str | None):
    """The person's confirmed device with django-otp's ``persistent_id`` ("app_label.model/pk"), read in one
    query, or None. The device's own manager decides what counts as confirmed (an expired set of codes does not).
    """
    label, _, pk = (persistent_id or "").rpartition("/")
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return None
    if not issubclass(model, Device) or not pk.isascii() or not pk.isdigit():
        return None
    return model.objects.devices_for_user(user, confirmed=True).filter(pk=int(pk)).first()
