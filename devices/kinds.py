"""What each kind of device is: its wizard steps and the factors it owns.

Views and services read this table instead of branching on kinds. A kind that
is not ``available`` is shown in the wizard but cannot be chosen yet.
"""

from dataclasses import dataclass

from .models import Registration

PHONE = "phone"
VERIFY_PHONE = "verify_phone"
PLATFORM = "platform"
INSTALL = "install"
ACTIVATE = "activate"
SECURITY_KEY = "security_key"  # name the key, touch it


@dataclass(frozen=True)
class DeviceKind:
    key: str
    label: str
    hint: str
    steps: tuple[str, ...]
    factors: tuple[str, ...]
    available: bool = True
    # When the wizard checks ownership of the number: "always", "if_on_record" (used here before), or "never".
    phone_check: str = "never"

    @property
    def needs_phone_number(self) -> bool:
        return PHONE in self.steps

    @property
    def has_app(self) -> bool:
        return "authenticator_app" in self.factors

    @property
    def phone_channels(self) -> tuple[str, ...]:
        """How codes reach this kind's number: texts and calls, calls only, or not at all."""
        return tuple(channel for channel in ("sms", "voice") if channel in self.factors)


KINDS: dict[str, DeviceKind] = {
    Registration.Kind.MOBILE: DeviceKind(
        key=Registration.Kind.MOBILE,
        label="Mobile phone",
        hint="Recommended. An authenticator app on your smartphone.",
        steps=(PHONE, VERIFY_PHONE, PLATFORM, INSTALL, ACTIVATE),
        factors=("authenticator_app", "sms", "voice"),
        phone_check="if_on_record",
    ),
    Registration.Kind.TABLET: DeviceKind(
        key=Registration.Kind.TABLET,
        label="Tablet",
        hint="An authenticator app on an iPad or Android tablet.",
        steps=(PLATFORM, INSTALL, ACTIVATE),
        factors=("authenticator_app",),
    ),
    Registration.Kind.LANDLINE: DeviceKind(
        key=Registration.Kind.LANDLINE,
        label="Landline",
        hint="We call a desk or home phone and read you a code.",
        steps=(PHONE, VERIFY_PHONE),
        factors=("voice",),
        phone_check="always",
    ),
    Registration.Kind.SECURITY_KEY: DeviceKind(
        key=Registration.Kind.SECURITY_KEY,
        label="Security key",
        hint="A hardware key (USB or NFC, such as a YubiKey) that you touch to sign in.",
        steps=(SECURITY_KEY,),
        factors=("webauthn",),
    ),
}


def kind_of(registration: Registration) -> DeviceKind:
    return KINDS[registration.kind]


def available_kinds() -> list[DeviceKind]:
    return [kind for kind in KINDS.values() if kind.available]


PLATFORM_APPS = {
    Registration.Platform.IPHONE: [
        ("Google Authenticator", "https://apps.apple.com/app/google-authenticator/id388497605"),
        ("Microsoft Authenticator", "https://apps.apple.com/app/microsoft-authenticator/id983156458"),
        ("Duo Mobile", "https://apps.apple.com/app/duo-mobile/id422663827"),
    ],
    Registration.Platform.ANDROID: [
        (
            "Google Authenticator",
            "https://play.google.com/store/apps/details?id=com.google.android.apps.authenticator2",
        ),
        ("Microsoft Authenticator", "https://play.google.com/store/apps/details?id=com.azure.authenticator"),
        ("Duo Mobile", "https://play.google.com/store/apps/details?id=com.duosecurity.duomobile"),
    ],
    Registration.Platform.OTHER: [
        ("FreeOTP", "https://freeotp.github.io/"),
        ("Aegis (Android, F-Droid)", "https://getaegis.app/"),
        ("2FAS", "https://2fas.com/"),
    ],
}
