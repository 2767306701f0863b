"""What the VPN gate may know of a person: whether they may use the VPN, and their devices that take a code."""

import hashlib
import hmac
import string
from dataclasses import dataclass

from django.conf import settings
from django_otp import device_classes

from identity.models import User

_KEY_ALPHABET = string.ascii_uppercase + string.digits


def device_id(device) -> str:
    """An opaque, stable id in Duo's ``DP...`` shape; our database ids stay inside."""
    digest = hmac.new(settings.SECRET_KEY.encode(), device.persistent_id.encode(), hashlib.sha256).digest()
    return "DP" + "".join(_KEY_ALPHABET[b % len(_KEY_ALPHABET)] for b in digest[:18])


@dataclass
class Factors:
    """A person's confirmed devices that a VPN can use: those that take a typed code, and the phones among them."""

    typed: list
    phones: list

    @property
    def usable(self) -> bool:
        return bool(self.typed)


def vpn_factors(user: User) -> Factors:
    """The person's confirmed devices that take a typed code: every django-otp device model but those that say
    they do not (security keys), one query per model, as ``devices_for_user`` does it."""
    typed = [
        device
        for model in device_classes()
        if getattr(model, "accepts_typed_code", True)
        for device in model.objects.devices_for_user(user, confirmed=True)
    ]
    # App codes first: the common case on the hot path.
    typed.sort(key=lambda d: {"authenticator_app": 0, "phone": 1}.get(getattr(d, "factor_name", ""), 2))
    phones = [d for d in typed if getattr(d, "factor_name", "") == "phone"]
    return Factors(typed=typed, phones=phones)


# Backup and bypass codes in Duo's listing: a passcode box appears wherever one can work. Duo lists a hardware
# token as type "token"; some VPNs draw the box only for a device that can give a passcode ("mobile_otp"), so a
# person whose only way in is the help desk's bypass code would otherwise get "auth" and nowhere to type it.
_CODE_LIST_ENTRY = {
    "type": "token",
    "name": "Codes",
    "display_name": "A code from the help desk or your backup codes",
    "capabilities": ["mobile_otp"],
}


def devices_listing(factors: Factors) -> list[dict]:
    """Duo's ``devices`` for preauth: each app (``mobile_otp``), each phone (``sms``, ``phone``), and one entry for
    the person's backup and bypass codes, if any; every listed id is taken by ``auth``."""
    listing, code_sets = [], []
    for device in factors.typed:
        kind = getattr(device, "factor_name", "")
        if kind == "authenticator_app":
            capabilities = ["mobile_otp"]
            entry = {"type": "phone", "name": device.name, "display_name": f"{device.name} (app codes)"}
        elif kind == "phone":
            capabilities = ["sms", "phone"] if device.can_text else ["phone"]
            entry = {
                "type": "phone",
                "number": device.masked_number,
                "name": device.name,
                "display_name": f"{device.name} ({device.masked_number})",
            }
        else:
            code_sets.append(device)
            continue
        listing.append({"device": device_id(device), "capabilities": capabilities, **entry})
    if code_sets:
        listing.append({"device": device_id(code_sets[0]), **_CODE_LIST_ENTRY})
    return listing


def may_use_vpn(user: User | None) -> bool:
    return user is not None and user.vpn_access == User.VpnAccess.APPROVED and not user.is_locked
