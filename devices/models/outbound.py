"""The transactional outbox's rows: every email, text and call we send."""

from django.conf import settings
from django.db import models

from .registrations import mask_phone_number


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
    bulk = models.BooleanField(
        default=False,
        help_text="Sent on queues of its own (campaign reminders): a sign-in code never waits behind thousands.",
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
