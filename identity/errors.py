"""The texts people see when identity operations refuse something. One place, so they stay consistent."""

import math

from django.utils import timezone

SIGN_IN_FAILED = "That institution ID and password do not match. Check both and try again."
SIGN_IN_EXPIRED = "Your sign-in took too long and has expired. Please enter your ID and password again."
LAST_FACTOR_LOST = (
    "Your last sign-in device was reported lost, so a password alone cannot set up a new one. "
    "Contact {help_desk}: after checking who you are they will reopen the setup for you."
)
# The VPN's doors say the same (a RADIUS Reply-Message holds 253 bytes: keep it short).
LAST_FACTOR_LOST_VPN = (
    "Your last sign-in device was reported lost, so a password alone cannot get you onto the VPN. "
    "Contact {help_desk}: after checking who you are they will help you set up a new device."
)
# A deactivated account (a leaver from the directory, DIR-02).
ACCOUNT_INACTIVE = "Your account is not active. Contact {help_desk}."
ACCOUNT_LOCKED = "This account is locked after too many wrong codes. Contact {help_desk} to unlock it."
WRONG_CODE = (
    "That code is not right, or it was already used. Check it and try again: an app shows a new code every "
    "30 seconds, and each backup code works once."
)
# The one message for django-otp's back-off (it starts after the first wrong try): how long, never "too many".
CODE_THROTTLED = "Please wait {wait}, then try again. After each wrong try we wait a little longer."
NO_SUCH_DEVICE = "Choose one of your devices."
SIGN_IN_THROTTLED = "Too many sign-in attempts. Wait {wait}, then try again, or contact the help desk."
# The directory's answers (identity/directory/backends.py): {help_desk}, {change_at} (LDAP_PASSWORD_CHANGE_AT).
DIRECTORY_DISABLED = "Your institution account is disabled in the directory, so it cannot sign in. Contact {help_desk}."
DIRECTORY_LOCKED = (
    "The directory has locked your institution account after too many wrong passwords. Wait a while and try again, "
    "or contact {help_desk} to unlock it."
)
DIRECTORY_PASSWORD_EXPIRED = (
    "Your institution password has expired. Change it at {change_at}, then sign in here with the new one."
)
DIRECTORY_MUST_CHANGE = (
    "Your institution password must be changed before you can use it. Change it at {change_at}, then sign in here "
    "with the new one."
)
# A person a SCIM client provisioned, on a site with no LDAP directory to check their password against.
DIRECTORY_NO_PASSWORD = (
    "Your account comes from your institution's directory, and this site has no way to check its password. Sign in "
    "with a passkey if one is set up for you; if not, contact {help_desk}, who can set one up with you."
)
DIRECTORY_UNREACHABLE = (
    "We cannot check passwords right now. Please try again in a few minutes; if it goes on, contact {help_desk}."
)

# VPN access (identity.services): the person's own request, and a help-desk agent's approval or revocation.
VPN_ALREADY_ASKED = "You have already asked for VPN access."
UNLOCK_OWN_ACCOUNT = "Nobody unlocks their own account: a colleague at the help desk does it."
UNLOCK_REASON_REQUIRED = "Say why the account is unlocked: the ticket and how the person's identity was checked."
VPN_OWN_ACCESS = "Nobody changes their own VPN access."
VPN_REQUEST_FROM_DIRECTORY = (
    "Your VPN access comes from your institution's directory: you have it while you are in its VPN group. Ask "
    "{help_desk} to have you added to that group."
)
VPN_ACCESS_FROM_DIRECTORY = (
    "This person's VPN access comes from the institution's directory: they have it while they are in its VPN "
    "group. Add them to that group in the directory, or take them out, and its next update brings the change here. "
    "To stop a compromised account at once, report its devices lost: the VPN then refuses it."
)
VPN_ACCOUNT_INACTIVE = "This account is not active: it cannot be given VPN access."


def code_throttled(device) -> str:
    """CODE_THROTTLED with how long ``device`` still waits (django-otp's back-off), in whole seconds."""
    _, data = device.verify_is_allowed()
    until = (data or {}).get("locked_until")
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds())) if until else 1
    return CODE_THROTTLED.format(wait=_how_long(seconds))


def _how_long(seconds: int) -> str:
    """ "1 second", "40 seconds", "3 minutes": seconds up to two minutes, whole minutes (rounded up) beyond."""
    if seconds < 120:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    return f"{math.ceil(seconds / 60)} minutes"
