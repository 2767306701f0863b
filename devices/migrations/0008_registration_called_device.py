from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0007_outbox_dispatch_bookkeeping"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="registration",
            options={"ordering": ["created_at"], "verbose_name": "device", "verbose_name_plural": "devices"},
        ),
    ]
