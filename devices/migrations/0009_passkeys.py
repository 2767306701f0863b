import secrets

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def give_key_holders_random_handles(apps, schema_editor):
    """Security keys registered so far were given a handle derived from the person's database id; from now on
    each person has a random one (WA-03). Those keys were not discoverable, so nothing on them needs the old one."""
    SecurityKeyDevice = apps.get_model("devices", "SecurityKeyDevice")
    WebAuthnUserHandle = apps.get_model("devices", "WebAuthnUserHandle")
    holders = SecurityKeyDevice.objects.values_list("user_id", flat=True).distinct().order_by("user_id")
    WebAuthnUserHandle.objects.bulk_create(
        [WebAuthnUserHandle(user_id=user_id, handle=secrets.token_bytes(32)) for user_id in holders],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0008_registration_called_device"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="securitykeydevice",
            options={"verbose_name": "security key or passkey"},
        ),
        migrations.AddField(
            model_name="securitykeydevice",
            name="backed_up",
            field=models.BooleanField(
                default=False, help_text="The credential was synced (backed up) at registration."
            ),
        ),
        migrations.AddField(
            model_name="securitykeydevice",
            name="backup_eligible",
            field=models.BooleanField(default=False, help_text="The credential may be synced to other devices."),
        ),
        migrations.AddField(
            model_name="securitykeydevice",
            name="discoverable",
            field=models.BooleanField(
                default=False, help_text="A resident (discoverable) credential: it can sign in without a typed ID."
            ),
        ),
        migrations.AddField(
            model_name="securitykeydevice",
            name="form",
            field=models.CharField(
                choices=[("security_key", "Security key (roaming)"), ("passkey", "Passkey on a phone or computer")],
                default="security_key",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="securitykeydevice",
            name="user_verified",
            field=models.BooleanField(
                default=False,
                help_text="The authenticator verified the person (PIN, fingerprint, face) at registration.",
            ),
        ),
        migrations.AlterField(
            model_name="registration",
            name="kind",
            field=models.CharField(
                choices=[
                    ("mobile", "Mobile phone"),
                    ("tablet", "Tablet"),
                    ("landline", "Landline"),
                    ("security_key", "Security key"),
                    ("passkey", "This phone or computer (passkey)"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="webauthnchallenge",
            name="ceremony",
            field=models.CharField(
                choices=[
                    ("register", "Register a key"),
                    ("authenticate", "Sign in with a key"),
                    ("passwordless", "Sign in with a passkey alone"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="webauthnchallenge",
            name="user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.CreateModel(
            name="WebAuthnUserHandle",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("handle", models.BinaryField(unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="webauthn_handle",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.RunPython(give_key_holders_random_handles, migrations.RunPython.noop),
    ]
