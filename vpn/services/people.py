"""What the VPN gate may know of a person: whether they may use the VPN, and their devices that take a code."""

import hashlib
import hmac
import string
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeGuard

from django.conf import settings
from django_otp import device_classes

from devices import kinds
from devices.models import SecurityKeyDevice
from identity.models import User

_KEY_ALPHABET = string.ascii_uppercase + string.digits


def device_id(device: Any) -> str:
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
    typed.sort(key=lambda d: {kinds.APP_FACTOR: 0, kinds.PHONE_FACTOR: 1}.get(getattr(d, "factor_name", ""), 2))
    phones = [d for d in typed if getattr(d, "factor_name", "") == kinds.PHONE_FACTOR]
    return Factors(typed=typed, phones=phones)


# Duo lists a hardware token as type "token"; some VPNs draw the passcode box only for a device that can give a
# passcode ("mobile_otp"). Our phones give passcodes too (texted or read out by a call), and so do backup and
# bypass codes, none of which Duo lists that way: without this entry a person whose only way in is the help desk's
# bypass code got "auth" with nothing to type it into, and one with only a landline a call and no box.
_PASSCODE_ENTRY = {"type": "token", "name": "Passcode", "capabilities": ["mobile_otp"]}


def devices_listing(factors: Factors) -> list[dict]:
    """Duo's ``devices`` for preauth: each app (``mobile_otp``), each phone (``sms``, ``phone``), and one passcode
    entry (``mobile_otp``) when the person has backup or bypass codes or no app. Every listed id is taken by
    ``auth``; a passcode is checked against all of the person's devices that take one, whichever id comes with it."""
    listing, code_sets, phones = [], [], []
    for device in factors.typed:
        kind = getattr(device, "factor_name", "")
        if kind == kinds.APP_FACTOR:
            capabilities = ["mobile_otp"]
            entry = {"type": "phone", "name": device.name, "display_name": f"{device.name} (app codes)"}
        elif kind == kinds.PHONE_FACTOR:
            phones.append(device)
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
    has_app = len(listing) > len(phones)
    if code_sets or not has_app:
        sources = (["texted or read to you"] if phones and not has_app else []) + (
            ["from the help desk or your backup codes"] if code_sets else []
        )
        # The id of a code set, or else one of its own beside the phone's: no two entries share an id.
        anchor = code_sets[0] if code_sets else SimpleNamespace(persistent_id=f"{phones[0].persistent_id}/passcode")
        entry = {**_PASSCODE_ENTRY, "display_name": f"A code {' or '.join(sources)}"}
        listing.append({"device": device_id(anchor), **entry})
    return listing


# Said to a person whose only devices cannot give a passcode (a VPN client has only a passcode box).
WEB_ONLY_MSG = {
    SecurityKeyDevice.Form.PASSKEY: "Use your authenticator app or a text: passkeys work on the web only.",
    SecurityKeyDevice.Form.SECURITY_KEY: "Use your authenticator app or a text: security keys work on the web only.",
}


def web_only_message(user: User) -> str:
    """For a person with no device that takes a code: why their passkey (or security key) will not do, or ""."""
    forms = set(SecurityKeyDevice.objects.filter(user=user, confirmed=True).values_list("form", flat=True))
    for form in (SecurityKeyDevice.Form.PASSKEY, SecurityKeyDevice.Form.SECURITY_KEY):
        if form in forms:
            return WEB_ONLY_MSG[form]
    return ""


def may_use_vpn(user: User | None) -> TypeGuard[User]:
    return user is not None and user.vpn_access == User.VpnAccess.APPROVED and not user.is_locked
