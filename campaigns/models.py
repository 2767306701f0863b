"""Enrollment campaigns: who must set up two-step sign-in by when, and what a person not yet enrolled may do
meanwhile.

Who is in a campaign is decided by its cohort rule (everyone, departments, groups, a list of institution IDs), read
afresh whenever a door asks (:func:`campaigns.services.effective_policy`), so a person who joins the cohort later is
covered at once. ``Member`` keeps the same answer as rows, refreshed by :func:`campaigns.services.refresh_members`,
for the work done over a whole cohort (reminders, progress): 100,000 people are read by index, never by rule.
Whether a person has enrolled is never stored here: it is what ``devices`` says now (a stored copy would go stale).
"""

from datetime import time

from django.conf import settings
from django.db import models


def default_reminder_days() -> list[int]:
    return [14, 7, 3, 1]


def default_time_zone() -> str:
    return settings.TIME_ZONE


class Campaign(models.Model):
    """One rollout: a cohort, a start and a deadline, the reminders and their texts, and the policy for its people
    who have not enrolled yet, before and after the deadline."""

    class Cohort(models.TextChoices):
        EVERYONE = "everyone", "Everyone"
        GROUPS = "groups", "Groups"
        DEPARTMENTS = "departments", "Departments"
        LIST = "list", "A list of institution IDs"

    class Policy(models.TextChoices):
        # Duo's "new user policy": allow access without two-factor, or require enrollment.
        ALLOW_PASSWORD_ALONE = "allow_password_alone", "Allow the VPN with the password alone"
        REQUIRE_ENROLLMENT = "require_enrollment", "Require enrollment"

    name = models.CharField(max_length=200, unique=True)
    # The values the rule matches (group names, departments, institution IDs) are CohortEntry rows; "everyone"
    # has none.
    cohort = models.CharField(max_length=16, choices=Cohort.choices, default=Cohort.DEPARTMENTS)
    starts_at = models.DateTimeField()
    # None: no deadline (the policy before it applies for as long as the campaign runs; a deploy check warns when
    # that lets people in without a second factor).
    deadline = models.DateTimeField(null=True, blank=True)
    # Days before the deadline a reminder goes out, e.g. [14, 7, 3, 1]; sent in ``time_zone``, never between
    # ``quiet_from`` and ``quiet_until`` (a window that may cross midnight).
    reminder_days = models.JSONField(default=default_reminder_days, blank=True)
    time_zone = models.CharField(max_length=64, default=default_time_zone)
    quiet_from = models.TimeField(default=time(20, 0))
    quiet_until = models.TimeField(default=time(8, 0))
    email_subject = models.CharField(max_length=200)
    email_text = models.TextField()
    # Sent only to a number the person proved with a code; blank: no texts.
    sms_text = models.TextField(blank=True)
    policy_before_deadline = models.CharField(
        max_length=24, choices=Policy.choices, default=Policy.ALLOW_PASSWORD_ALONE
    )
    policy_after_deadline = models.CharField(max_length=24, choices=Policy.choices, default=Policy.REQUIRE_ENROLLMENT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Closed by staff: it no longer applies to anyone (kept for the audit log and progress).
    closed_at = models.DateTimeField(null=True, blank=True)
    # The week (its Monday, in the institution's time zone) of the last weekly summary sent to the owner: a second
    # run in the same week (beat twice, a retry) sends none.
    summary_week = models.DateField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["deadline", "name"]
        permissions = [("run_campaigns", "Can create, change and close enrollment campaigns")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(deadline__isnull=True) | models.Q(deadline__gt=models.F("starts_at")),
                name="campaigns_campaign_deadline_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name


class CohortEntry(models.Model):
    """One value of a campaign's cohort rule: a group name, a department or an institution ID (which one the
    campaign's ``cohort`` says). An institution ID need not exist yet: a person created later with it is in."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="cohort_entries")
    value = models.CharField(max_length=255)

    class Meta:
        verbose_name_plural = "cohort entries"
        constraints = [models.UniqueConstraint(fields=["campaign", "value"], name="campaigns_cohort_entry_once")]

    def __str__(self) -> str:
        return self.value


class Member(models.Model):
    """A person in a campaign's cohort, as of the last refresh, with when they last had one of its messages.

    ``last_reminded_at`` is when the latest welcome or reminder was queued for them (None: none yet, so the next one
    is the welcome). Which reminder is due is read from the campaign's schedule as it is now
    (:func:`campaigns.reminders.due_at`): a person is due a point of it when they have had nothing since that point,
    so a schedule changed by staff (reminder days, deadline) neither repeats a point nor skips one. Claimed once per
    point by ``UPDATE ... SET last_reminded_at = now WHERE last_reminded_at < point``.

    ``left_at``: the person is no longer in the cohort (moved, left, taken off the list), set by the refresh. The row
    stays, with what they had, so a person who comes back is not welcomed a second time.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaign_memberships")
    added_at = models.DateTimeField()
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "person"], name="campaigns_member_once")]
        indexes = [models.Index(fields=["campaign", "last_reminded_at", "person"], name="campaigns_member_reminded")]

    def __str__(self) -> str:
        return f"{self.person_id} in {self.campaign_id}"


class Nudge(models.Model):
    """A resilience nudge sent to a person of a campaign (:mod:`campaigns.nudges`): at most one per campaign and
    person, which the unique constraint holds however often the nudges are started."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="nudges")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaign_nudges")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "person"], name="campaigns_nudge_once")]

    def __str__(self) -> str:
        return f"nudge to {self.person_id} in {self.campaign_id}"
