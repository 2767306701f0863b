import datetime

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import campaigns.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Campaign",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200, unique=True)),
                (
                    "cohort",
                    models.CharField(
                        choices=[
                            ("everyone", "Everyone"),
                            ("groups", "Groups"),
                            ("departments", "Departments"),
                            ("list", "A list of institution IDs"),
                        ],
                        default="departments",
                        max_length=16,
                    ),
                ),
                ("starts_at", models.DateTimeField()),
                ("deadline", models.DateTimeField(blank=True, null=True)),
                ("reminder_days", models.JSONField(blank=True, default=campaigns.models.default_reminder_days)),
                ("time_zone", models.CharField(default=campaigns.models.default_time_zone, max_length=64)),
                ("quiet_from", models.TimeField(default=datetime.time(20, 0))),
                ("quiet_until", models.TimeField(default=datetime.time(8, 0))),
                ("email_subject", models.CharField(max_length=200)),
                ("email_text", models.TextField()),
                ("sms_text", models.TextField(blank=True)),
                (
                    "policy_before_deadline",
                    models.CharField(
                        choices=[
                            ("allow_password_alone", "Allow the VPN with the password alone"),
                            ("require_enrollment", "Require enrollment"),
                        ],
                        default="allow_password_alone",
                        max_length=24,
                    ),
                ),
                (
                    "policy_after_deadline",
                    models.CharField(
                        choices=[
                            ("allow_password_alone", "Allow the VPN with the password alone"),
                            ("require_enrollment", "Require enrollment"),
                        ],
                        default="require_enrollment",
                        max_length=24,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("closed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "owner",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["deadline", "name"],
                "permissions": [("run_campaigns", "Can create, change and close enrollment campaigns")],
            },
        ),
        migrations.CreateModel(
            name="CohortEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("value", models.CharField(max_length=255)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="cohort_entries",
                        to="campaigns.campaign",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "cohort entries",
            },
        ),
        migrations.CreateModel(
            name="Member",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("added_at", models.DateTimeField()),
                ("last_step", models.PositiveSmallIntegerField(default=0)),
                ("last_step_at", models.DateTimeField(blank=True, null=True)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="members", to="campaigns.campaign"
                    ),
                ),
                (
                    "person",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="campaign_memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("deadline__isnull", True), ("deadline__gt", models.F("starts_at")), _connector="OR"
                ),
                name="campaigns_campaign_deadline_after_start",
            ),
        ),
        migrations.AddConstraint(
            model_name="cohortentry",
            constraint=models.UniqueConstraint(fields=("campaign", "value"), name="campaigns_cohort_entry_once"),
        ),
        migrations.AddIndex(
            model_name="member",
            index=models.Index(fields=["campaign", "last_step", "person"], name="campaigns_member_step"),
        ),
        migrations.AddConstraint(
            model_name="member",
            constraint=models.UniqueConstraint(fields=("campaign", "person"), name="campaigns_member_once"),
        ),
    ]
