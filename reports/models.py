import uuid

from django.conf import settings
from django.db import models


class ExportJob(models.Model):
    """A big export written in the background, for the auditor who asked, downloadable once for a limited time.

    The file lives in Django's default storage under ``file_name``; the id in
    the link is random, and only ``requested_by`` may use it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Writing"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    report = models.CharField(max_length=32)
    file_format = models.CharField(max_length=8)
    form_data = models.JSONField(default=dict, help_text="The filters as submitted, to rebuild them in the worker.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    rows_expected = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    error_text = models.TextField(blank=True, help_text="Why it failed, in a sentence for the auditor.")

    class Meta:
        ordering = ["-created_at"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.report} {self.file_format} export {self.id}"
