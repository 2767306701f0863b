"""Read-only questions about people that several apps ask."""

from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_otp.models import Device

from .models import AuditEvent, User

STAFF_GROUPS = ("Help desk", "Auditor")


def is_staff_account(person: User) -> bool:
    """Staff flag, superuser, or a member of a staff group: desk actions on it need a second agent (BND-08)."""
    return person.is_staff or person.is_superuser or person.groups.filter(name__in=STAFF_GROUPS).exists()


def _email_key(account) -> str:
    return (getattr(account, "email", "") or "").strip().casefold()


def same_person(a, b) -> bool:
    """Whether two accounts belong to one person (AC-12): the same row, the same email address (whatever its
    case), or the same directory identity (``directory_id`` from the same ``source``). The own-account and
    four-eyes rules compare people with this, never account rows alone: an agent's second account is still theirs.
    """
    if a is None or b is None:
        return False
    if a.pk is not None and a.pk == b.pk:
        return True
    if _email_key(a) and _email_key(a) == _email_key(b):
        return True
    directory_id = getattr(a, "directory_id", "")
    return bool(directory_id) and (a.source, directory_id) == (getattr(b, "source", None), b.directory_id)


def other_accounts(person: User):
    """The person's other accounts (AC-12): same email address (case-insensitive) or same directory identity."""
    condition = Q(pk__in=[])
    if _email_key(person):
        condition |= Q(email__iexact=person.email.strip())
    if person.directory_id:
        condition |= Q(source=person.source, directory_id=person.directory_id)
    return User.objects.filter(condition).exclude(pk=person.pk)


def staff_accounts_of(person: User) -> list[User]:
    """The person's staff accounts, this one first if it is one: any of them makes them staff (BND-08, AC-12)."""
    mine = [person] if is_staff_account(person) else []
    staff = Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name__in=STAFF_GROUPS)
    return mine + list(other_accounts(person).filter(staff).distinct().order_by("pk"))


def recent_email_change(person: User) -> AuditEvent | None:
    """The newest ``person.email_changed`` event within RECENT_EMAIL_CHANGE_HOURS, or None."""
    since = timezone.now() - timedelta(hours=settings.RECENT_EMAIL_CHANGE_HOURS)
    changes = AuditEvent.objects.filter(subject=person, action="person.email_changed", created_at__gte=since)
    return changes.order_by("-sequence").first()


def email_changed_recently(person: User) -> bool:
    """Whether the email changed within RECENT_EMAIL_CHANGE_HOURS: a recovery link to it needs a second agent."""
    return recent_email_change(person) is not None


def vpn_access_from_directory(person: User) -> bool:
    """Whether the directory decides ``person``'s VPN access, so nobody here changes it: every sync or SCIM call
    would undo them. An LDAP person's, when LDAP_VPN_GROUP is set (the sync then approves its members and revokes
    everyone else); a SCIM person's, once a SCIM client has given or taken it through its VPN group (marked on the
    person, ``scim_vpn_by_group``, by ``identity.directory.people.apply_group_change``)."""
    if person.source == User.Source.LDAP:
        return bool(settings.LDAP_VPN_GROUP)
    return person.source == User.Source.SCIM and (person.scim_vpn_member or person.scim_vpn_by_group)


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
