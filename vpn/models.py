"""Who may ask us about a person (integrations, RADIUS clients) and the short-lived state of those questions."""

from django.conf import settings
from django.db import models

from identity.networks import parse_networks, validate_networks  # noqa: F401 (migrations name vpn.models.validate_networks)


class Integration(models.Model):
    """A VPN or proxy allowed to call the Auth API (Duo's "integration").

    The secret key is encrypted at rest with the factor keys (API-03) and shown once, when created or rotated.
    ``allowed_networks`` empty means any client address.
    """

    name = models.CharField(max_length=100, unique=True)
    integration_key = models.CharField(max_length=20, unique=True, editable=False)
    encrypted_secret = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    allowed_networks = models.TextField(
        blank=True, validators=[validate_networks], help_text="CIDRs, one per line; empty allows any address."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"{self.name} ({self.integration_key})"


class RadiusClient(models.Model):
    """A RADIUS client (a VPN concentrator) by network, with its shared secret encrypted at rest (API-03).

    A request is answered by the enabled client with the most specific network holding its source address; two
    enabled clients may not have the same network (which one answered would be chance).
    """

    class MessageAuthenticator(models.TextChoices):
        # FreeRADIUS 3.2.5's choices after Blast-RADIUS (API-08).
        REQUIRE = "require", "Required on every request (recommended)"
        LIMIT_PROXY_STATE = "limit_proxy_state", "Accepted without it only when the request carries no Proxy-State"

    name = models.CharField(max_length=100, unique=True)
    network = models.CharField(
        max_length=64,
        validators=[validate_networks],
        help_text="e.g. 10.0.0.5/32. A request is answered by the client with the most specific network holding its "
        "address; two enabled clients may not have the same network.",
    )
    encrypted_secret = models.TextField(editable=False)
    enabled = models.BooleanField(default=True)
    message_authenticator = models.CharField(
        max_length=20,
        choices=MessageAuthenticator.choices,
        default=MessageAuthenticator.REQUIRE,
        help_text="Keep it required unless the VPN cannot send one (OpenVPN's radiusplugin cannot): without it, a "
        "request is accepted only when it carries no Proxy-State, which weakens the Blast-RADIUS defence. Every "
        "reply carries a Message-Authenticator either way.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "RADIUS client"

    def __str__(self) -> str:
        return f"{self.name} ({self.network})"

    @property
    def message_authenticator_required(self) -> bool:
        return self.message_authenticator == self.MessageAuthenticator.REQUIRE


class SeenSignature(models.Model):
    """A signed request's signature, kept while its date is acceptable, so a replay is refused (API-02, REL-07)."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["integration", "digest"], name="vpn_signature_once")]

    def __str__(self) -> str:
        return f"signature seen {self.seen_at:%Y-%m-%d %H:%M:%S}"


class AuthTransaction(models.Model):
    """The outcome of an ``auth`` call made with ``async=1``, read back by ``auth_status`` with its txid."""

    txid = models.CharField(max_length=64, unique=True)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    result = models.CharField(max_length=8)
    status = models.CharField(max_length=32)
    status_msg = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"async auth {self.result}"


class RadiusChallenge(models.Model):
    """The State of an Access-Challenge: random, single-use, bound to the person and the client (API-05)."""

    state_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(RadiusClient, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"RADIUS challenge until {self.expires_at:%H:%M:%S}"
