"""A member's place in the reminders becomes a time (when they last had a message) instead of a position in the
schedule, which a change of reminder days or deadline made point elsewhere; and a member who leaves the cohort keeps
their row (``left_at``)."""

from django.db import migrations, models
from django.utils import timezone


def steps_to_times(apps, schema_editor):
    # ``last_reminded_at`` is the old ``last_step_at`` renamed: the time the latest step was queued, where it was
    # recorded. A person with a step but no time had something: say now, so nothing they had comes again.
    members = apps.get_model("campaigns", "Member").objects.using(schema_editor.connection.alias)
    members.filter(last_step__gt=0, last_reminded_at__isnull=True).update(last_reminded_at=timezone.now())
    members.filter(last_step=0).update(last_reminded_at=None)


def times_to_steps(apps, schema_editor):
    # Back to positions, best effort: whoever had a message counts as having had the welcome.
    members = apps.get_model("campaigns", "Member").objects.using(schema_editor.connection.alias)
    members.filter(last_reminded_at__isnull=False).update(last_step=1)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_campaign_summary_week"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="member", name="campaigns_member_step"),
        migrations.RenameField(model_name="member", old_name="last_step_at", new_name="last_reminded_at"),
        migrations.RunPython(steps_to_times, times_to_steps),
        migrations.RemoveField(model_name="member", name="last_step"),
        migrations.AddField(
            model_name="member",
            name="left_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="member",
            index=models.Index(fields=["campaign", "last_reminded_at", "person"], name="campaigns_member_reminded"),
        ),
    ]
