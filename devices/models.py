from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.utils import timezone
from django.utils.formats import date_format
from django_otp.models import Device, DeviceManager, ThrottlingMixin, TimestampMixin
from phonenumber_field.modelfields import PhoneNumberField

from . import backup_codes, crypto, errors, kinds, phone_codes, totp, verification


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

    encrypted_secret = models.TextField(blank=True)
    last_t = models.BigIntegerField(default=-1, help_text="Last accepted time step; codes at or before it are refused.")

    class Meta:
        verbose_name = "authenticator app"

    @property
    def signin_label(self) -> str:
        """How the sign-in page names it: as the person named the device."""
        registration = _registration_of(self)
        return registration.display_name if registration else self.name

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
        return verification.verify(self, lambda locked: totp.consume(locked, str(token)), consumes=("last_t",))


class Registration(models.Model):
    """What a person registered, in their words, and the django-otp devices it owns.

    Reports and the admin read this table. Rows are never deleted: a removed
    device is ``retired`` (BND-04).
    """

    Kind = kinds.Kind
    Platform = kinds.Platform

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        REACTIVATING = "reactivating", "Reactivating"
        RETIRED = "retired", "Retired"

    # Statuses in which the registration's factors sign the person in (a reactivation keeps the old phone working).
    IN_USE = (Status.ACTIVE, Status.REACTIVATING)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="registrations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    platform = models.CharField(max_length=16, choices=Platform.choices, blank=True)
    phone_number = PhoneNumberField(blank=True)
    label = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    app_device = models.OneToOneField(
        AuthenticatorAppDevice, null=True, blank=True, on_delete=models.PROTECT, related_name="registration"
    )
    phone_device = models.OneToOneField(
        "PhoneDevice", null=True, blank=True, on_delete=models.PROTECT, related_name="registration"
    )
    phone_verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When a code sent to the number was entered: the number is proven."
    )
    security_key_device = models.OneToOneField(
        "SecurityKeyDevice", null=True, blank=True, on_delete=models.PROTECT, related_name="registration"
    )
    app_installed_at = models.DateTimeField(null=True, blank=True)
    # Reactivation after a phone upgrade (ACT-06): the new secret waits here until a code from it confirms it.
    pending_app_device = models.OneToOneField(
        AuthenticatorAppDevice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reactivating_registration",
    )
    reactivation_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When a pending registration stops being usable."
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.label or self.get_kind_display()

    @property
    def kind_noun(self) -> str:
        """How a sentence names the device: "tablet", "phone", "key"."""
        return kinds.kind_of(self).noun

    @property
    def platform_name(self) -> str:
        """The platform in the words of the device's kind ("iPad" for a tablet), or "" when none or "Other"."""
        chosen = kinds.kind_of(self).platform(self.platform)
        return chosen.label if chosen and chosen.value != self.Platform.OTHER else ""

    @property
    def is_pending_expired(self) -> bool:
        return self.status == self.Status.PENDING and self.expires_at is not None and timezone.now() >= self.expires_at

    @property
    def is_reactivation_expired(self) -> bool:
        return (
            self.status == self.Status.REACTIVATING
            and self.reactivation_expires_at is not None
            and timezone.now() >= self.reactivation_expires_at
        )

    @property
    def awaiting_app_device(self):
        """The app device waiting for its first code: a new setup's, or a reactivation's new secret."""
        if self.status == self.Status.REACTIVATING:
            return self.pending_app_device
        if self.status == self.Status.PENDING:
            return self.app_device
        return None

    @property
    def masked_phone_number(self) -> str:
        return mask_phone_number(str(self.phone_number)) if self.phone_number else ""

    @property
    def last_used_at(self):
        stamps = [
            device.last_used_at
            for device in (
                self.app_device if self.app_device_id else None,
                self.phone_device if self.phone_device_id else None,
                self.security_key_device if self.security_key_device_id else None,
            )
            if device is not None and device.last_used_at
        ]
        return max(stamps, default=None)

    @property
    def devices(self) -> list:
        """The django-otp devices this registration owns."""
        return [
            d
            for d in (
                self.app_device if self.app_device_id else None,
                self.phone_device if self.phone_device_id else None,
                self.security_key_device if self.security_key_device_id else None,
            )
            if d is not None
        ]


def _registration_of(device) -> "Registration | None":
    """The registration that owns ``device`` (the reverse one-to-one), or None for one no registration owns."""
    try:
        return device.registration
    except ObjectDoesNotExist:
        return None


def mask_phone_number(e164: str) -> str:
    """Show only the last two digits: +1 *** *** **67."""
    if len(e164) <= 4:
        return "*" * len(e164)
    return e164[:2] + "*" * (len(e164) - 4) + e164[-2:]


class PhoneDevice(ThrottlingMixin, TimestampMixin, Device):
    """Codes sent by text or voice call to a proven number, our own django-otp device.

    Replaces django-two-factor-auth's ``PhoneDevice``, which accepts one
    time-based code again and again for minutes. Here every challenge is a
    :class:`PhoneVerification` with its own random code, stored hashed,
    single-use and expiring (SMS-02). A landline is called, never texted.
    """

    factor_name = kinds.PHONE_FACTOR
    accepts_typed_code = True

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
    send_challenge = None

    def generate_challenge(self, channel: str = "sms", ip: str | None = None) -> str:
        """django-otp's challenge hook: queue a fresh code by ``channel``. The work is a service."""
        type(self).send_challenge(self, channel=channel, ip=ip)
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

    factor_name = kinds.SECURITY_KEY_FACTOR
    # The sign-in page offers a "use your security key" button for these, not a code field.
    accepts_typed_code = False

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

    class Meta:
        verbose_name = "security key"

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    def verify_token(self, token) -> bool:
        """``token`` is an assertion (``devices.services.security_keys.AssertionToken``), which knows how to
        check itself against a key; anything else is refused."""
        check = getattr(token, "check_against", None)
        if check is None:
            return False
        return verification.verify(self, check, consumes=("sign_count",))


class WebAuthnChallenge(models.Model):
    """One WebAuthn challenge: random, single-use, for one ceremony of one person in one session, expiring.

    The session is kept as the SHA-256 of its key, so a challenge fetched in
    one browser session cannot be answered from another.
    """

    class Ceremony(models.TextChoices):
        REGISTER = "register", "Register a key"
        AUTHENTICATE = "authenticate", "Sign in with a key"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    ceremony = models.CharField(max_length=16, choices=Ceremony.choices)
    registration = models.ForeignKey(Registration, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    challenge = models.BinaryField()
    session_binding = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "ceremony", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.get_ceremony_display()} #{self.pk} for {self.user_id}"

    @property
    def is_open(self) -> bool:
        return self.consumed_at is None and timezone.now() < self.expires_at


class ActivationLink(models.Model):
    """An emailed, single-use pointer to a pending secret (ACT-01). Only the token's hash is stored."""

    class Purpose(models.TextChoices):
        ACTIVATION = "activation", "Activation"
        REACTIVATION = "reactivation", "Reactivation"
        # Sent by the help desk after an identity check to a person with no working factor.
        RECOVERY = "recovery", "Recovery"

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="activation_links")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.ACTIVATION)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    password_failures = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} link #{self.pk} for {self.user_id}"

    @property
    def is_usable(self) -> bool:
        return self.consumed_at is None and self.revoked_at is None and timezone.now() < self.expires_at


class CodeSetMixin:
    """What a set of single-use codes (backup codes, bypass codes) shares; its codes are ``self.codes``."""

    accepts_typed_code = True

    @property
    def unused_count(self) -> int:
        return self.codes.filter(used_at=None).count()

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    def verify_token(self, token) -> bool:
        return verification.verify(self, lambda locked: backup_codes.consume(locked, str(token)))


class BackupCodeDevice(CodeSetMixin, ThrottlingMixin, TimestampMixin, Device):
    """A set of single-use backup codes, our own django-otp device.

    Replaces django-otp's ``StaticDevice``, whose tokens are 40-bit and stored
    in plain text. Each code here has 80 random bits and only its keyed hash is
    stored (BND-06). Generating a new set retires the old device, so old codes
    stop working and their history stays.
    """

    factor_name = kinds.BACKUP_CODE_FACTOR

    class Meta:
        verbose_name = "backup codes"


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"backup code #{self.pk} ({'used' if self.used_at else 'unused'})"


class OutboundMessage(models.Model):
    """Every email, SMS and voice call we send: the transactional outbox.

    The row is written in the transaction of the state change; a Celery task
    sends it. A body that holds a code or link is encrypted and erased once
    sent or expired; nothing here is ever shown in the admin but the masked
    recipient, channel, status and attempts.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"
        VOICE = "voice", "Voice call"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="outbound_messages"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    recipient = models.CharField(max_length=254)
    template = models.CharField(max_length=64)
    subject = models.CharField(max_length=200, blank=True)
    encrypted_body = models.TextField(blank=True)
    holds_secret = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_id = models.CharField(max_length=128, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not before: set by a retry's backoff.")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker took it for sending.")
    dispatch_failed_at = models.DateTimeField(
        null=True, blank=True, help_text="The broker refused the task; the sweep will dispatch it again."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    last_dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When a task for it last went to the broker (or is due, after a retry)."
    )
    sweep_dispatches = models.PositiveSmallIntegerField(
        default=0, help_text="How often the sweep dispatched it again; each time it waits twice as long."
    )
    unknown_outcome_at = models.DateTimeField(
        null=True, blank=True, help_text="The provider's answer was lost; the next attempt asks the provider first."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.masked_recipient} ({self.status})"

    @property
    def masked_recipient(self) -> str:
        if self.channel == self.Channel.EMAIL:
            local, _, domain = self.recipient.partition("@")
            return f"{local[:1]}***@{domain}"
        return mask_phone_number(self.recipient)


class BypassCodeDeviceManager(DeviceManager):
    def devices_for_user(self, user, confirmed=None):
        # Offered at sign-in (and to the VPN) only while its codes are valid: an expired set is no device.
        devices = super().devices_for_user(user, confirmed=confirmed)
        if confirmed:
            devices = devices.filter(valid_until__gt=timezone.now())
        return devices


class BypassCodeDevice(CodeSetMixin, ThrottlingMixin, TimestampMixin, Device):
    """Help-desk bypass codes: a few single-use codes valid for at most an hour (BND-10), our own django-otp device.

    Issued by the desk after an identity check, read out to the person, then only keyed hashes are kept. A
    new set retires the old one. The codes verify through ``identity.services.verify_second_factor`` like any
    factor, so they count toward the lockout (OTP-01) and are accepted only after the password step.
    """

    factor_name = kinds.BYPASS_CODE_FACTOR

    valid_until = models.DateTimeField()
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    objects = BypassCodeDeviceManager()

    class Meta:
        verbose_name = "bypass codes"

    @property
    def is_valid(self) -> bool:
        return self.confirmed and timezone.now() < self.valid_until

    def verify_token(self, token) -> bool:
        if not self.is_valid:
            return False
        return super().verify_token(token)

    def sign_in_notice(self) -> str:
        left = self.unused_count
        return (
            f"You signed in with a bypass code from the help desk. It cannot be used again; {left} "
            f"{'code is' if left == 1 else 'codes are'} left until {timezone.localtime(self.valid_until):%H:%M}."
        )


class BypassCode(models.Model):
    device = models.ForeignKey(BypassCodeDevice, on_delete=models.PROTECT, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"bypass code #{self.pk} ({'used' if self.used_at else 'unused'})"
