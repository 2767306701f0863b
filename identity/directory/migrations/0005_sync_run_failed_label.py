"""A failed run's status reads "Failed": a run stopped partway through applying may have changed people already (its
error text says how many)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("directory", "0004_sync_run_roles")]

    operations = [
        migrations.AlterField(
            model_name="directorysyncrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "Running"),
                    ("applied", "Applied"),
                    ("held", "Held: waiting for a superuser"),
                    ("discarded", "Discarded"),
                    ("failed", "Failed"),
                ],
                default="running",
                max_length=12,
            ),
        ),
    ]
