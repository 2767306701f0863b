from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0003_desk_search_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="approvalrequest",
            name="status",
            field=models.CharField(
                choices=[
                    ("waiting", "Waiting for approval"),
                    ("ready", "Approved: the requester finishes it with the caller"),
                    ("approved", "Approved and done"),
                    ("declined", "Declined"),
                    ("failed", "Approved, but the action was refused"),
                ],
                default="waiting",
                max_length=10,
            ),
        ),
    ]
