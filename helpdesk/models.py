"""The help desk's own records: identity checks, support cases, four-eyes requests."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from . import errors

# One permission per desk action (AC-03): the Help desk group holds these, never model change rights.
DESK_PERMISSIONS = (
    ("record_identity_check", "Can record an identity check of a caller"),
    ("unlock_account", "Can unlock an account or lift a setup hold"),
    ("retire_device", "Can retire a device or report it lost for the person"),
    ("send_recovery_link", "Can send a reactivation link"),
    ("issue_bypass_codes", "Can issue bypass codes"),
    ("sign_out_everywhere", "Can sign a person out everywhere"),
    ("set_vpn_access", "Can approve or revoke VPN access"),
    ("edit_person_details", "Can change a person's email, names or department"),
    ("register_security_key", "Can register a security key at the desk"),
    ("approve_request", "Can approve another agent's request on a staff account"),
    ("work_cases", "Can open support cases and add notes"),
)


class IdentityCheck(models.Model):
    """How an agent made sure who they were talking to (BND-07); valid for that agent and person for a while."""

    class Method(models.TextChoices):
        PHOTO_ID_IN_PERSON = "photo_id_in_person", "Photo ID checked in person"
        VIDEO_CALL = "video_call_with_photo_id", "Photo ID checked on a video call"
        CALLBACK = "callback_to_number_on_file", "Called back on the number in the HR record"
        MANAGER = "manager_confirmation", "Confirmed by the person's manager, in writing"

    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="identity_checks")
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=40, choices=Method.choices)
    reference = models.CharField(max_length=100)
    case = models.ForeignKey("Case", null=True, blank=True, on_delete=models.PROTECT, related_name="identity_checks")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        default_permissions = ("view",)
        permissions = DESK_PERMISSIONS
        indexes = [models.Index(fields=["person", "agent", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.get_method_display()} ({self.reference})"

    @property
    def valid_until(self):
        return self.created_at + timedelta(minutes=settings.IDENTITY_CHECK_VALID_MINUTES)

    @property
    def is_current(self) -> bool:
        return timezone.now() < self.valid_until

    def clean(self) -> None:
        """A method from the fixed list (knowledge questions are not on it) and a reference to find it by."""
        if self.method not in self.Method.values:
            raise ValidationError(errors.IDENTITY_CHECK_METHOD, code="identity_check")
        if not (self.reference or "").strip():
            raise ValidationError(errors.IDENTITY_CHECK_REFERENCE, code="identity_check")


class Case(models.Model):
    class Category(models.TextChoices):
        LOST_DEVICE = "lost_device", "Lost device"
        PHONE_UPGRADE = "phone_upgrade", "Phone upgrade"
        SECURITY_KEY = "security_key", "Security key"
        LOCKOUT = "lockout", "Lockout"
        VPN_ACCESS = "vpn_access", "VPN access"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WAITING = "waiting", "Waiting on the person"
        CLOSED = "closed", "Closed"

    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="support_cases")
    category = models.CharField(max_length=20, choices=Category.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        default_permissions = ("view",)
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "assignee", "created_at"])]

    def __str__(self) -> str:
        return f"Case {self.pk}: {self.get_category_display()}"


class CaseNote(models.Model):
    """Append-only: notes are added, never edited or removed."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        default_permissions = ("view",)
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"note #{self.pk} on case {self.case_id}"


class ApprovalRequest(models.Model):
    """A desk action on a staff account (or a recovery link to a fresh email) waiting for a second agent (BND-08).

    ``params`` holds the action's plain inputs (a reason, a count): never a secret. An action read out to the
    caller (bypass codes) is not run at approval: the request is ``READY`` until the requester finishes it, with
    the caller on the line and a current identity check, before ``expires_at``.
    """

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for approval"
        READY = "ready", "Approved: the requester finishes it with the caller"
        APPROVED = "approved", "Approved and done"
        DECLINED = "declined", "Declined"
        FAILED = "failed", "Approved, but the action was refused"

    action = models.CharField(max_length=40)
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    identity_check = models.ForeignKey(IdentityCheck, on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    params = models.JSONField(default=dict, blank=True)
    # Every reason a second agent is needed, a sentence a line, as they stood when it was asked (AC-04, BND-08).
    why_approval = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True)

    class Meta:
        default_permissions = ("view",)
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"Approval request {self.pk}"

    @property
    def reasons(self) -> list[str]:
        return [line for line in self.why_approval.splitlines() if line.strip()]

    @property
    def reasons_in_short(self) -> list[str]:
        """Each reason's first sentence: what makes a second agent needed, for a list."""
        return [reason.split(". ", 1)[0].rstrip(".") + "." for reason in self.reasons]

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.WAITING and timezone.now() < self.expires_at

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY and timezone.now() < self.expires_at
