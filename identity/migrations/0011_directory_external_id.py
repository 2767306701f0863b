from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0010_directory_mobile"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="directory_external_id",
            field=models.CharField(blank=True, max_length=255),
        ),
    ]
