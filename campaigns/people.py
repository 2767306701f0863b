"""Who a campaign's messages are for, as query expressions over a row holding a person's id: enrolled or not, a
proven number, and the three ways an enrolled person is one lost phone away from the help desk.

"Enrolled" is ``devices.selectors.enrolled``, the one rule the reminders, the VPN's campaign policy, the progress
page and the reports share. It is read from ``devices`` each time, never stored here.
"""

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from devices.kinds import KINDS, SMS
from devices.models import BackupCode, Registration, WorkingRegistration
from devices.selectors import enrolled
from devices.selectors import working_registrations as _working_devices

# Kinds whose number takes texts: a landline proven by a call never gets a reminder by text.
_TEXTABLE_KINDS = [kind.key for kind in KINDS.values() if SMS in kind.phone_channels]


def proven_number(person_field: str = "person_id") -> Subquery:
    """A number of the person's that takes texts and that a code sent to it proved, or NULL; the latest proven first.

    The reminders read it for people not enrolled, whose proven number is on a setup they never finished: the
    ownership check of the wizard passed, the app not yet confirmed (pending, or retired unfinished). A device
    that once worked and was then retired is not asked: it may have been reported lost or handed on, and its
    number may no longer reach the person. Nor is the directory's mobile number: nobody proved it.
    """
    return Subquery(
        Registration.objects.filter(
            user_id=OuterRef(person_field), kind__in=_TEXTABLE_KINDS, phone_verified_at__isnull=False
        )
        .exclude(phone_number="")
        .exclude(status=Registration.Status.RETIRED, activated_at__isnull=False)
        .order_by("-phone_verified_at")
        .values("phone_number")[:1]
    )


def text_only(person_field: str = "person_id"):
    """Enrolled, and every working factor is a code by text or call."""
    return enrolled(person_field) & ~Exists(
        _working_devices(person_field).filter(strength__gt=WorkingRegistration.Strength.PHONE)
    )


def device_count(person_field: str = "person_id"):
    """How many devices in use with a working factor the person has."""
    return Coalesce(
        Subquery(
            _working_devices(person_field).order_by().values("user_id").annotate(n=Count("pk")).values("n")[:1],
            output_field=IntegerField(),
        ),
        Value(0),
    )


def has_backup_codes(person_field: str = "person_id") -> Exists:
    """Whether the person holds an unused code of a confirmed backup-code set."""
    return Exists(
        BackupCode.objects.filter(device__user_id=OuterRef(person_field), device__confirmed=True, used_at__isnull=True)
    )


def at_risk_annotations(person_field: str = "person_id") -> dict:
    """The three flags the nudges and the progress page read, as annotations for ``.annotate(**...)``."""
    return {
        "is_enrolled": enrolled(person_field),
        "text_only": text_only(person_field),
        "devices": device_count(person_field),
        "backup_codes": has_backup_codes(person_field),
    }


AT_RISK = Q(is_enrolled=True) & (Q(text_only=True) | Q(devices=1) | Q(backup_codes=False))
