"""What a person from the directory gains or loses here: the hooks of :mod:`identity.directory.hooks`.

Registered from ``DevicesConfig.ready()`` (:func:`register_hooks`), so that ``identity`` never imports this app.
Each runs inside the people service's transaction (the retirement of leavers' devices takes one per person), and
returns counts for its audit event.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from identity.directory import hooks
from identity.models import User

from ..models import ActivationLink, BypassCodeDevice, Registration
from .lifecycle import retire_all_devices
from .notices import email_person, notify_person


def revoke_person_links(user: User) -> int:
    """Revoke every open activation, reactivation or recovery link of the person (all went to their address)."""
    return ActivationLink.objects.filter(user=user, consumed_at=None, revoked_at=None).update(revoked_at=timezone.now())


def welcome_joiner(user: User) -> dict[str, int]:
    """Email a directory joiner where to set up their first device (DIRECTORY_WELCOME_EMAIL)."""
    if not user.email:
        return {"welcomed": False}
    email_person(
        user,
        template="directory_welcome",
        subject="set up two-step verification",
        context={"url": settings.SITE_URL + reverse("devices:start")},
    )
    return {"welcomed": True}


def tell_email_changed(user: User, *, old: str, new: str) -> dict[str, int]:
    """DIR-06: both addresses are told, and links mailed to the old one stop working."""
    if old:
        notify_person(user, event="person.email_changed", to=old)
    if new:
        notify_person(user, event="person.email_changed", to=new)
    return {"links_revoked": revoke_person_links(user)}


def void_leaver_access(user: User) -> dict[str, int]:
    """DIR-02: a leaver's pending links and help-desk bypass codes stop working. Their devices stay until
    DIRECTORY_RETAIN_DAYS has passed (:func:`retire_leaver_devices`)."""
    return {
        "links_revoked": revoke_person_links(user),
        "bypass_sets_voided": BypassCodeDevice.objects.filter(user=user, confirmed=True).update(confirmed=False),
    }


def count_devices_back(user: User) -> dict[str, int]:
    return {"devices_in_use": Registration.objects.filter(user=user, status__in=Registration.IN_USE).count()}


def retire_leaver_devices(leavers: QuerySet[User], *, reason: str) -> dict[str, int]:
    """Retire the devices of the people in ``leavers`` (a queryset whose filter is identity's retention rule)."""
    retired = 0
    candidates = Registration.objects.filter(user__in=leavers).exclude(status=Registration.Status.RETIRED)
    for user_id in candidates.values_list("user_id", flat=True).distinct().order_by("user_id"):
        with transaction.atomic():
            person = leavers.select_for_update().filter(pk=user_id).first()
            if person is not None:  # else reactivated meanwhile
                retired += len(retire_all_devices(person, reason=reason))
    return {"devices_retired": retired}


def register_hooks() -> None:
    hooks.register("person_joined", welcome_joiner)
    hooks.register("email_changed", tell_email_changed)
    hooks.register("person_deactivated", void_leaver_access)
    hooks.register("person_reactivated", count_devices_back)
    hooks.register("retire_devices", retire_leaver_devices)
