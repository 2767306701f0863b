"""The directory's own records (sync runs, SCIM clients)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

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

    @property
    def token_issued_at(self):
        """When the token in use was issued: at its last rotation, or with the client."""
        return self.token_rotated_at or self.created_at


class DirectorySyncRun(models.Model):
    """One run of the LDAP sync (identity/directory/sync.py): what it read, what it changed, and for a run held by
    the mass-deactivation guard (DIR-03), who it would deactivate and who applied or discarded it."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        APPLIED = "applied", "Applied"
        HELD = "held", "Held: waiting for a superuser"
        DISCARDED = "discarded", "Discarded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        BEAT = "beat", "Schedule"
        COMMAND = "command", "Command"
        USER = "user", "A person in the admin"

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    dry_run = models.BooleanField(default=False)
    # A run for one institution ID (``--person``); empty for a full run.
    only_person = models.CharField(max_length=150, blank=True)
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    read = models.PositiveIntegerField("entries read", default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deactivated = models.PositiveIntegerField(default=0)
    reactivated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    error_text = models.TextField(blank=True)
    # A held run: [{"id": pk, "username": ..., "reason": ...}] of the people it would deactivate.
    would_deactivate = models.JSONField(default=list, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "directory sync run"
        ordering = ["-started_at", "-pk"]
        # The help desk's "Sync from the directory" on a person's page (one person, never a full run).
        permissions = [("sync_person", "Can sync one person from the directory")]

    def __str__(self) -> str:
        what = f"for {self.only_person}" if self.only_person else "of everyone"
        return f"Sync {what} at {self.started_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}


COUNTS = ("created", "updated", "deactivated", "reactivated", "unchanged", "errors")
