"""Sets of single-use codes as django-otp devices: the person's backup codes and the help desk's bypass codes."""

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, DeviceManager, ThrottlingMixin, TimestampMixin

from .. import backup_codes, kinds, verification


class CodeSetMixin:
    """What a set of single-use codes (backup codes, bypass codes) shares; its codes are ``self.codes``."""

    accepts_typed_code = True
    phishing_resistant = False  # a typed code works on a look-alike site too
    codes: Any  # the related manager of the code model's foreign key, which each device model names "codes"

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
