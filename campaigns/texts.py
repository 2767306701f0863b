"""What a person not yet enrolled is told at the doors and on the web: one place for the words."""

import zoneinfo

from django.conf import settings
from django.urls import reverse

from identity import errors

from .services import PersonPolicy


def enrollment_address() -> str:
    """Where a person sets up two-step sign-in (the wizard's first page), as a full address."""
    return settings.SITE_URL + reverse("devices:start", urlconf=settings.SITE_URLCONF)


def deadline_text(policy: PersonPolicy) -> str:
    """The deadline as people read it, in the campaign's time zone: "14 December 2026, 17:00"."""
    assert policy.deadline is not None, "only a policy with a deadline has a date to say"
    local = policy.deadline.astimezone(zoneinfo.ZoneInfo(policy.time_zone))
    return f"{local.day} {local:%B %Y, %H:%M}"


def set_up_by(policy: PersonPolicy) -> str:
    """ "Set up two-step sign-in by <date>"; once the date has passed (a campaign that still lets the password alone
    in after it) "Set up two-step sign-in now (the deadline was <date>)"; without a deadline "Set up two-step sign-in
    soon"."""
    if policy.deadline is None:
        return "Set up two-step sign-in soon"
    if policy.past_deadline:
        return f"Set up two-step sign-in now (the deadline was {deadline_text(policy)})"
    return f"Set up two-step sign-in by {deadline_text(policy)}"


def allowed_for_now(policy: PersonPolicy) -> str:
    """What the VPN tells someone it lets in with the password alone: the date and where to go."""
    return f"{set_up_by(policy)}: {enrollment_address()}"


def enroll_first(policy: PersonPolicy) -> str:
    """What the VPN tells someone it refuses until they enroll: where to go (and the deadline, once past)."""
    if policy.past_deadline:
        return (
            f"The deadline for two-step sign-in was {deadline_text(policy)}. "
            f"Set it up to use the VPN: {enrollment_address()}"
        )
    return f"Set up two-step sign-in to use the VPN: {enrollment_address()}"


def held_at_the_vpn() -> str:
    """What the VPN tells someone whose last device was reported lost (BND-02): call the help desk."""
    return errors.LAST_FACTOR_LOST_VPN.format(help_desk=settings.HELP_DESK_CONTACT)
