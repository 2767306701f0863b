from django.db import migrations, models


class Migration(migrations.Migration):
    """Passwordless challenges keep the address that asked, so they can be counted (and bounded) per address."""

    dependencies = [
        ("devices", "0010_outbound_bulk"),
    ]

    operations = [
        migrations.AddField(
            model_name="webauthnchallenge",
            name="client_address",
            field=models.GenericIPAddressField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="webauthnchallenge",
            index=models.Index(fields=["client_address", "created_at"], name="devices_webauthn_addr_idx"),
        ),
    ]
