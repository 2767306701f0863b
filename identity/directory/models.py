"""The directory's own records (sync runs, SCIM clients)."""

from django.conf import settings
from django.db import models

from identity.networks import validate_networks


class ScimClient(models.Model):
    """A cloud directory (Entra ID, Okta, Google) allowed to provision people over SCIM (DIR-05).

    Its bearer token is random (256 bits) and kept only as a SHA-256 hash: it is shown once, when the client is
    created or the token rotated. A hash this fast is enough for a token this long (nobody can guess their way
    back to it), and lets every request find its client with one indexed lookup. ``allowed_networks`` empty means
    any client address. Every person a client changes is audited with ``{"scim_client": id}``.
    """

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    allowed_networks = models.TextField(
        blank=True, validators=[validate_networks], help_text="CIDRs, one per line; empty allows any address."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "SCIM client"

    def __str__(self) -> str:
        return self.name
