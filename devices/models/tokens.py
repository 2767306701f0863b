"""Single-use things handed out for one ceremony: WebAuthn challenges and emailed activation links."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .registrations import Registration


class WebAuthnChallenge(models.Model):
    """One WebAuthn challenge: random, single-use, for one ceremony of one person in one session, expiring.

    The session is kept as the SHA-256 of its key, so a challenge fetched in
    one browser session cannot be answered from another.
    """

    class Ceremony(models.TextChoices):
        REGISTER = "register", "Register a key"
        AUTHENTICATE = "authenticate", "Sign in with a key"
        # Nobody is known yet: the passkey's answer says who it is (WA-02).
        PASSWORDLESS = "passwordless", "Sign in with a passkey alone"

    # Empty only for a passwordless challenge.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ceremony = models.CharField(max_length=16, choices=Ceremony.choices)
    registration = models.ForeignKey(Registration, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    challenge = models.BinaryField()
    session_binding = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    # Set for a passwordless challenge only: anyone may ask for one, so they are counted per address. An IPv6
    # address is kept as its /64's first address (identity.networks.client_network), the block the count is over.
    client_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "ceremony", "expires_at"]),
            models.Index(fields=["client_address", "created_at"], name="devices_webauthn_addr_idx"),
            # A session's own passwordless challenges, counted on every sign-in page load (passwordless_refusal).
            models.Index(fields=["session_binding", "created_at"], name="devices_webauthn_session_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_ceremony_display()} #{self.pk} for {self.user_id}"

    @property
    def is_open(self) -> bool:
        return self.consumed_at is None and timezone.now() < self.expires_at


class WebAuthnUserHandle(models.Model):
    """A person's WebAuthn user handle: random (256 bits), made once, meaningless anywhere else (WA-03).

    Every credential registered from now on carries it, and a passkey's answer at a passwordless sign-in names
    it; it is never the institution ID or anything derived from one.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="webauthn_handle")
    handle = models.BinaryField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"WebAuthn user handle of {self.user_id}"


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
