from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0009_passkeys"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboundmessage",
            name="bulk",
            field=models.BooleanField(
                default=False,
                help_text="Sent on queues of its own (campaign reminders): a sign-in code never waits behind thousands.",
            ),
        ),
    ]
