"""The django-otp devices of the factors a registration owns: an authenticator app, a phone, a security key.

Their ``verify_token`` (django-otp's hook) calls down into :func:`devices.verification.verify`; nothing here
imports a service.
"""

from collections.abc import Callable
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.utils import timezone
from django.utils.formats import date_format
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from phonenumber_field.modelfields import PhoneNumberField

from .. import crypto, errors, kinds, phone_codes, totp, verification
from .registrations import Registration, mask_phone_number


def _registration_of(device) -> "Registration | None":
    """The registration that owns ``device`` (the reverse one-to-one), or None for one no registration owns."""
    try:
        return device.registration
    except ObjectDoesNotExist:
        return None


class AuthenticatorAppDevice(ThrottlingMixin, TimestampMixin, Device):
    """A TOTP authenticator app (RFC 6238), our own django-otp device.

    Replaces django-otp's stock ``TOTPDevice`` because that one stores the seed
    in plain text and verifies without a row lock. Here the seed is encrypted
    at rest with a key from the environment (OTP-08), and ``verify_token``
    consumes the time step under ``select_for_update`` (OTP-04). A retired
    device keeps its row (BND-04) but loses its seed.
    """

    factor_name = kinds.APP_FACTOR
    accepts_typed_code = True
    phishing_resistant = False  # a typed code works on a look-alike site too

    encrypted_secret = models.TextField(blank=True)
    last_t = models.BigIntegerField(default=-1, help_text="Last accepted time step; codes at or before it are refused.")

    class Meta:
        verbose_name = "authenticator app"

    @property
    def signin_label(self) -> str:
        """How the sign-in page names it: as the person named the device, and which of its factors this is when
        the device has codes by text or call too (listed beside it as "iPhone: texts or calls to ...")."""
        registration = _registration_of(self)
        if registration is None:
            return self.name
        if registration.phone_device_id:
            return f"{registration.display_name}: authenticator app"
        return registration.display_name

    @property
    def replaced_note(self) -> str:
        """Said after a wrong code when this app replaced an older one ("I got a new phone"), whose codes now fail."""
        registration = _registration_of(self)
        if registration is None or registration.activated_at is None or self.created_at <= registration.activated_at:
            return ""
        return errors.APP_REPLACED.format(
            noun=registration.kind_noun, date=date_format(timezone.localtime(self.created_at), "j M Y")
        )

    def secret_bytes(self) -> bytes:
        return crypto.decrypt(self.encrypted_secret)

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    @property
    def awaiting_first_code(self) -> bool:
        """A new secret that a setup or a phone change has not bound yet (a retired one has no secret left)."""
        return not self.confirmed and bool(self.encrypted_secret)

    def verify_token(self, token) -> bool:
        return verification.verify(self, _consumes(token), consumes=("last_t",))

    def verify_token_on_locked_row(self, token) -> bool:
        """:meth:`verify_token` when this instance is the device's row, read under a lock the caller holds."""
        return verification.verify_locked_row(self, _consumes(token), consumes=("last_t",))


def _consumes(token):
    """The app's code check: the code of a step after the last one accepted, which it then becomes (OTP-04)."""
    return lambda locked: totp.consume(locked, str(token))


class PhoneDevice(ThrottlingMixin, TimestampMixin, Device):
    """Codes sent by text or voice call to a proven number, our own django-otp device.

    Replaces django-two-factor-auth's ``PhoneDevice``, which accepts one
    time-based code again and again for minutes. Here every challenge is a
    :class:`PhoneVerification` with its own random code, stored hashed,
    single-use and expiring (SMS-02). A landline is called, never texted.
    """

    factor_name = kinds.PHONE_FACTOR
    accepts_typed_code = True
    phishing_resistant = False  # a typed code works on a look-alike site too

    number = PhoneNumberField()
    can_text = models.BooleanField(default=True)

    class Meta:
        verbose_name = "phone (text or call)"

    @property
    def challenge_channels(self) -> tuple[str, ...]:
        return ("sms", "voice") if self.can_text else ("voice",)

    @property
    def masked_number(self) -> str:
        return mask_phone_number(str(self.number))

    @property
    def signin_label(self) -> str:
        """How the sign-in page names it: the person's name for the device, and where codes go."""
        registration = _registration_of(self)
        how = "texts or calls" if self.can_text else "calls"
        return f"{registration.display_name if registration else self.name}: {how} to {self.masked_number}"

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    # The service that sends a sign-in code (``devices.services.send_signin_code``), set when the app is ready:
    # the models import nothing above them.
    send_challenge: ClassVar[Callable[..., object] | None] = None

    def generate_challenge(self, channel: str = "sms", ip: str | None = None) -> str:
        """django-otp's challenge hook: queue a fresh code by ``channel``. The work is a service."""
        send = type(self).send_challenge
        assert send is not None, "set by DevicesConfig.ready()"
        send(self, channel=channel, ip=ip)
        return "sent"

    def verify_token(self, token) -> bool:
        return verification.verify(self, lambda locked: locked.consume_signin_code(str(token)))

    def consume_signin_code(self, raw_code: str) -> bool:
        """Check a code against this device's newest open sign-in challenge and consume it; a wrong one counts
        an attempt on that challenge (SMS-02). Call on the locked row."""
        challenge = (
            self.verifications.select_for_update()
            .filter(purpose=PhoneVerification.Purpose.SIGNIN, consumed_at=None, superseded_at=None)
            .order_by("-created_at")
            .first()
        )
        if challenge is None or not challenge.is_open:
            return False
        if phone_codes.code_matches(challenge, raw_code):
            challenge.consumed_at = timezone.now()
            challenge.save(update_fields=["consumed_at"])
            return True
        challenge.attempts += 1
        challenge.save(update_fields=["attempts"])
        return False


class PhoneVerification(models.Model):
    """One code sent to one number for one purpose. Only the code's keyed hash is stored (SMS-02)."""

    class Purpose(models.TextChoices):
        OWNERSHIP = "ownership", "Ownership check in the wizard"
        ENABLE = "enable", "Turn on codes by text or call"
        SIGNIN = "signin", "Sign-in"

    class Channel(models.TextChoices):
        SMS = "sms", "Text message"
        VOICE = "voice", "Voice call"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    registration = models.ForeignKey(
        Registration, null=True, blank=True, on_delete=models.PROTECT, related_name="phone_verifications"
    )
    device = models.ForeignKey(
        PhoneDevice, null=True, blank=True, on_delete=models.PROTECT, related_name="verifications"
    )
    number = PhoneNumberField(db_index=True)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    message = models.OneToOneField(
        "OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="verification"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} by {self.channel} to {mask_phone_number(str(self.number))}"

    @property
    def is_open(self) -> bool:
        return (
            self.consumed_at is None
            and self.superseded_at is None
            and timezone.now() < self.expires_at
            and self.attempts < settings.PHONE_CODE_MAX_ATTEMPTS
        )


class SecurityKeyDevice(ThrottlingMixin, TimestampMixin, Device):
    """A FIDO2/WebAuthn security key, our own django-otp device on py_webauthn.

    Not django-two-factor-auth's ``WebauthnDevice``: its forms keep the
    challenge in the session of its own setup wizard and login view, take the
    relying party and origin from the Host header by default, and let a
    credential id be registered twice. Here the RP ID and origins come from
    settings, every challenge is a :class:`WebAuthnChallenge` row (random,
    single-use, bound to the session and the ceremony, expiring), a credential
    id is unique across all people, and a sign counter that goes backwards is
    refused and audited. ``verify_token`` takes an assertion, not a typed code
    (see :mod:`devices.services.security_keys`). A retired key keeps its row (BND-04).
    """

    # The sign-in page offers a "use your security key" button for these, not a code field.
    accepts_typed_code = False
    # The one place that says which factor resists phishing (NIST SP 800-63B-4): the browser binds every WebAuthn
    # assertion to our origin, so a look-alike site gets nothing it can replay. Every credential of this model counts,
    # a roaming security key and a passkey alike; the staff admin (WA-05) and the assurance counts in the reports
    # read this attribute.
    phishing_resistant = True

    class Form(models.TextChoices):
        # Every form is a WebAuthn credential, phishing-resistant alike; they differ in how the person holds it.
        SECURITY_KEY = "security_key", "Security key (roaming)"
        PASSKEY = "passkey", "Passkey on a phone or computer"

    credential_id = models.CharField(max_length=1400, unique=True, help_text="base64url; unique across all people.")
    public_key = models.BinaryField(help_text="COSE public key of the credential.")
    sign_count = models.PositiveBigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    aaguid = models.CharField(max_length=36, blank=True)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The help-desk member who registered it at the desk; empty when the person did.",
    )
    form = models.CharField(max_length=16, choices=Form.choices, default=Form.SECURITY_KEY)
    # What the authenticator reported at registration (WA-01, WA-04); the flags are signed authenticator data.
    discoverable = models.BooleanField(
        default=False, help_text="A resident (discoverable) credential: it can sign in without a typed ID."
    )
    user_verified = models.BooleanField(
        default=False, help_text="The authenticator verified the person (PIN, fingerprint, face) at registration."
    )
    backup_eligible = models.BooleanField(default=False, help_text="The credential may be synced to other devices.")
    backed_up = models.BooleanField(default=False, help_text="The credential was synced (backed up) at registration.")

    class Meta:
        verbose_name = "security key or passkey"

    # The names ``factor_name`` gives, by form: a device's factor is known only per row.
    factor_names = (kinds.SECURITY_KEY_FACTOR, kinds.PASSKEY_FACTOR)

    @property
    def factor_name(self) -> str:
        return kinds.PASSKEY_FACTOR if self.form == self.Form.PASSKEY else kinds.SECURITY_KEY_FACTOR

    @property
    def is_passkey(self) -> bool:
        return self.form == self.Form.PASSKEY

    @property
    def storage_words(self) -> str:
        """Where the credential lives, for the help desk and auditors (WA-04)."""
        if self.backed_up:
            return "Synced (backed up to the person's account)"
        if self.backup_eligible:
            return "May be synced (not backed up at registration)"
        return "Bound to one device"

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    def verify_token(self, token) -> bool:
        """``token`` is an assertion (``devices.services.security_keys.AssertionToken``), which knows how to
        check itself against a key; anything else is refused."""
        check = getattr(token, "check_against", None)
        if check is None:
            return False
        return verification.verify(self, check, consumes=("sign_count",))
