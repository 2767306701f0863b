"""What a person registered, in their words: the row reports and the admin read."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from phonenumber_field.modelfields import PhoneNumberField

from identity.phone_numbers import mask_phone_number

from .. import kinds


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
        "AuthenticatorAppDevice", null=True, blank=True, on_delete=models.PROTECT, related_name="registration"
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
        "AuthenticatorAppDevice",
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
        # What people and agents call it; "registration" is the table's word, not theirs.
        verbose_name = "device"
        verbose_name_plural = "devices"
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
    def credential_storage(self) -> str:
        """For a security key or passkey: synced (backed up) or bound to one device, as reported when it was
        registered (WA-04); "" for other kinds."""
        return self.security_key_device.storage_words if self.security_key_device is not None else ""

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


class WorkingRegistration(models.Model):
    """A registration that makes its person enrolled: the one rule, kept in the database as a view (migration 0012;
    0013 adds ``backup_eligible``) that the ORM's selectors (``devices.selectors.enrolled``) and the reports' SQL both
    read.

    In use (active, or mid-reactivation with the old phone still working) and its factor confirmed: an app, a phone
    (texts or calls), a security key or a passkey. Backup and bypass codes are no registration, so a person holding
    only those is not enrolled; a pending or retired registration signs no one in. ``strength`` ranks the
    registration's strongest confirmed factor. Read-only: Django creates, changes and empties nothing here.
    """

    class Strength(models.IntegerChoices):
        # A security key resists phishing, an app code does not, a code by text or call also travels over the phone
        # network. The view's CASE gives these numbers.
        PHONE = 1, "Text or voice call"
        APP = 2, "Authenticator app"
        SECURITY_KEY = 3, "Security key"

    registration = models.OneToOneField(
        Registration, primary_key=True, db_column="id", on_delete=models.DO_NOTHING, related_name="+"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, related_name="+")
    kind = models.CharField(max_length=16)  # a Registration.Kind
    strength = models.PositiveSmallIntegerField()  # a Strength
    activated_at = models.DateTimeField(null=True)
    # WA-04: its credential may be synced to the person's other devices (WebAuthn's backup eligibility, migration
    # 0013), so it is not bound to one device; false for every device that is no WebAuthn credential.
    backup_eligible = models.BooleanField()

    class Meta:
        managed = False
        db_table = "devices_working_registration"
        verbose_name = "working device"

    def __str__(self) -> str:
        return f"registration {self.pk}"
