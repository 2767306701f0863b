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
DEVICE_TYPE = "device_type"  # the first page of every setup: which kind of device


@dataclass(frozen=True)
class Platform:
    """One answer to "What kind of tablet is it?": the value stored, the words shown, the name a device gets."""

    value: str
    label: str
    default_name: str


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
    # The platforms offered on the platform page, in this kind's words (an iPad, not an iPhone, for a tablet).
    platforms: tuple[Platform, ...] = ()

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

    @property
    def noun(self) -> str:
        """How a sentence names this kind: "tablet", "phone"."""
        return self.label.split()[-1].lower()

    def platform(self, value: str) -> Platform | None:
        return next((p for p in self.platforms if p.value == value), None)

    def default_name(self, platform: str = "") -> str:
        """The name a device of this kind gets until the person names it: "iPad", "Android phone", "Landline"."""
        chosen = self.platform(platform)
        return chosen.default_name if chosen else self.label

    def steps_seen(self, *, number_check: bool) -> tuple[str, ...]:
        """The pages a person sees setting up this kind, in order, for "Step n of N".

        The device-type choice comes first; the number check counts only when this setup has one
        (``number_check``, from ``services.phone_check_required``).
        """
        return (DEVICE_TYPE,) + tuple(step for step in self.steps if step != VERIFY_PHONE or number_check)


KINDS: dict[str, DeviceKind] = {
    Registration.Kind.MOBILE: DeviceKind(
        key=Registration.Kind.MOBILE,
        label="Mobile phone",
        hint="Recommended. An authenticator app on your smartphone.",
        steps=(PHONE, VERIFY_PHONE, PLATFORM, INSTALL, ACTIVATE),
        factors=("authenticator_app", "sms", "voice"),
        phone_check="if_on_record",
        platforms=(
            Platform(Registration.Platform.IPHONE, "iPhone", "iPhone"),
            Platform(Registration.Platform.ANDROID, "Android phone", "Android phone"),
            Platform(Registration.Platform.OTHER, "Other", "Phone"),
        ),
    ),
    Registration.Kind.TABLET: DeviceKind(
        key=Registration.Kind.TABLET,
        label="Tablet",
        hint="An authenticator app on an iPad or Android tablet.",
        steps=(PLATFORM, INSTALL, ACTIVATE),
        factors=("authenticator_app",),
        platforms=(
            Platform(Registration.Platform.IPHONE, "iPad", "iPad"),
            Platform(Registration.Platform.ANDROID, "Android tablet", "Android tablet"),
            Platform(Registration.Platform.OTHER, "Other", "Tablet"),
        ),
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
