"""What each kind of device is: its wizard steps and the factors it owns.

Views and services read this table instead of branching on kinds. A kind that
is not ``available`` is shown in the wizard but cannot be chosen yet.
"""

from dataclasses import dataclass

from django.db import models

# Imports nothing from this app: the models read their choices here, and the wizard's step rules below work on the
# registration they are given.


# The factors, by the names the models' ``factor_name``, audit events, reports and the VPN gate all use.
APP_FACTOR = "authenticator_app"
PHONE_FACTOR = "phone"  # codes by text or call; which of the two is the kind's ``phone_channels``
SECURITY_KEY_FACTOR = "security_key"
PASSKEY_FACTOR = "passkey"  # a WebAuthn credential on the person's own phone or computer
BACKUP_CODE_FACTOR = "backup_code"
BYPASS_CODE_FACTOR = "bypass_code"
FACTORS = (APP_FACTOR, PHONE_FACTOR, SECURITY_KEY_FACTOR, PASSKEY_FACTOR, BACKUP_CODE_FACTOR, BYPASS_CODE_FACTOR)

# How a code reaches a phone.
SMS = "sms"
VOICE = "voice"


class Kind(models.TextChoices):
    MOBILE = "mobile", "Mobile phone"
    TABLET = "tablet", "Tablet"
    LANDLINE = "landline", "Landline"
    SECURITY_KEY = "security_key", "Security key"
    PASSKEY = "passkey", "This phone or computer (passkey)"


class Platform(models.TextChoices):
    IPHONE = "iphone", "iPhone"
    ANDROID = "android", "Android"
    OTHER = "other", "Other"


PHONE = "phone"
VERIFY_PHONE = "verify_phone"
PLATFORM = "platform"
INSTALL = "install"
ACTIVATE = "activate"
SECURITY_KEY = "security_key"  # name the key, touch it
PASSKEY = "passkey"  # name the device, unlock it (face, fingerprint, PIN)
DEVICE_TYPE = "device_type"  # the first page of every setup: which kind of device


@dataclass(frozen=True)
class PlatformChoice:
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
    # How codes reach this kind's number: texts and calls, calls only, or not at all.
    phone_channels: tuple[str, ...] = ()
    available: bool = True
    # When the wizard checks ownership of the number: "always", "if_on_record" (used here before), or "never".
    phone_check: str = "never"
    # The platforms offered on the platform page, in this kind's words (an iPad, not an iPhone, for a tablet).
    platforms: tuple[PlatformChoice, ...] = ()
    # How a sentence names it when the label's last word will not do ("passkey").
    short_name: str = ""

    @property
    def needs_phone_number(self) -> bool:
        return PHONE in self.steps

    @property
    def has_app(self) -> bool:
        return APP_FACTOR in self.factors

    @property
    def noun(self) -> str:
        """How a sentence names this kind: "tablet", "phone"."""
        return self.short_name or self.label.split()[-1].lower()

    def platform(self, value: str) -> PlatformChoice | None:
        return next((p for p in self.platforms if p.value == value), None)

    def default_name(self, platform: str = "") -> str:
        """The name a device of this kind gets until the person names it: "iPad", "Android phone", "Landline"."""
        chosen = self.platform(platform)
        return chosen.default_name if chosen else self.label

    def steps_seen(self, *, number_check: bool) -> tuple[str, ...]:
        """The pages a person sees setting up this kind, in order, for "Step n of N".

        The device-type choice comes first; the number check counts only when this setup has one
        (``number_check``, from :func:`phone_check_required`).
        """
        return (DEVICE_TYPE,) + tuple(step for step in self.steps if step != VERIFY_PHONE or number_check)


KINDS: dict[str, DeviceKind] = {
    Kind.MOBILE: DeviceKind(
        key=Kind.MOBILE,
        label="Mobile phone",
        hint="Recommended. An authenticator app on your smartphone.",
        steps=(PHONE, VERIFY_PHONE, PLATFORM, INSTALL, ACTIVATE),
        factors=(APP_FACTOR, PHONE_FACTOR),
        phone_channels=(SMS, VOICE),
        phone_check="if_on_record",
        platforms=(
            PlatformChoice(Platform.IPHONE, "iPhone", "iPhone"),
            PlatformChoice(Platform.ANDROID, "Android phone", "Android phone"),
            PlatformChoice(Platform.OTHER, "Other", "Phone"),
        ),
    ),
    Kind.TABLET: DeviceKind(
        key=Kind.TABLET,
        label="Tablet",
        hint="An authenticator app on an iPad or Android tablet.",
        steps=(PLATFORM, INSTALL, ACTIVATE),
        factors=(APP_FACTOR,),
        platforms=(
            PlatformChoice(Platform.IPHONE, "iPad", "iPad"),
            PlatformChoice(Platform.ANDROID, "Android tablet", "Android tablet"),
            PlatformChoice(Platform.OTHER, "Other", "Tablet"),
        ),
    ),
    Kind.LANDLINE: DeviceKind(
        key=Kind.LANDLINE,
        label="Landline",
        hint="We call a desk or home phone and read you a code.",
        steps=(PHONE, VERIFY_PHONE),
        factors=(PHONE_FACTOR,),
        phone_channels=(VOICE,),
        phone_check="always",
    ),
    Kind.SECURITY_KEY: DeviceKind(
        key=Kind.SECURITY_KEY,
        label="Security key",
        hint="A hardware key (USB or NFC, such as a YubiKey) that you touch to sign in.",
        steps=(SECURITY_KEY,),
        factors=(SECURITY_KEY_FACTOR,),
    ),
    Kind.PASSKEY: DeviceKind(
        key=Kind.PASSKEY,
        label="This phone or computer (passkey)",
        hint=(
            "Sign in with Face ID or Touch ID, Windows Hello, or your phone's screen lock. "
            "No code to type, and it also works without your password."
        ),
        steps=(PASSKEY,),
        factors=(PASSKEY_FACTOR,),
        short_name="passkey",
    ),
}


def kind_of(registration) -> DeviceKind:
    return KINDS[registration.kind]


def phone_check_required(registration, *, number=None) -> bool:
    """Whether the wizard makes the person prove the number (seed step 4): ``number``, or the registration's.

    Always for a landline; for a mobile, when the number is on record here already, for anyone, now or in the
    past: proven by a code sent to it, or the number of a device that was set up (bound). A number only typed into
    a setup never finished is not on record, so nobody can put a check in another's way by typing their number
    and leaving.
    """
    check = kind_of(registration).phone_check
    if check == "always":
        return True
    number = number if number is not None else registration.phone_number
    if check == "if_on_record" and number:
        proven_or_bound = (
            models.Q(phone_verified_at__isnull=False)
            | models.Q(phone_device__confirmed=True)
            | models.Q(activated_at__isnull=False)
        )
        return (
            type(registration).objects.filter(proven_or_bound, phone_number=number).exclude(pk=registration.pk).exists()
        )
    return False


def step_done(registration, step: str) -> bool:
    """Whether the wizard step ``step`` of the registration's kind is behind the person."""
    if step == VERIFY_PHONE:
        return bool(registration.phone_verified_at) or not phone_check_required(registration)
    return {
        PHONE: lambda: bool(registration.phone_number),
        PLATFORM: lambda: bool(registration.platform),
        INSTALL: lambda: registration.app_device_id is not None,
        ACTIVATE: lambda: registration.status == registration.Status.ACTIVE,
        SECURITY_KEY: lambda: registration.status == registration.Status.ACTIVE,
        PASSKEY: lambda: registration.status == registration.Status.ACTIVE,
    }[step]()


def next_missing_step(registration, *, before: str | None = None) -> str | None:
    """The first wizard step not yet done, or None when every step is (the setup is finished).

    With ``before``, only the steps ahead of that one count: the step a page must send the person back to.
    """
    steps = kind_of(registration).steps
    if before is not None:
        steps = steps[: steps.index(before)]
    return next((step for step in steps if not step_done(registration, step)), None)


def available_kinds() -> list[DeviceKind]:
    return [kind for kind in KINDS.values() if kind.available]


PLATFORM_APPS = {
    Platform.IPHONE: [
        ("Google Authenticator", "https://apps.apple.com/app/google-authenticator/id388497605"),
        ("Microsoft Authenticator", "https://apps.apple.com/app/microsoft-authenticator/id983156458"),
        ("Duo Mobile", "https://apps.apple.com/app/duo-mobile/id422663827"),
    ],
    Platform.ANDROID: [
        (
            "Google Authenticator",
            "https://play.google.com/store/apps/details?id=com.google.android.apps.authenticator2",
        ),
        ("Microsoft Authenticator", "https://play.google.com/store/apps/details?id=com.azure.authenticator"),
        ("Duo Mobile", "https://play.google.com/store/apps/details?id=com.duosecurity.duomobile"),
    ],
    Platform.OTHER: [
        ("FreeOTP", "https://freeotp.github.io/"),
        ("Aegis (Android, F-Droid)", "https://getaegis.app/"),
        ("2FAS", "https://2fas.com/"),
    ],
}
