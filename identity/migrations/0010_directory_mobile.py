from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0009_directory_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="directory_mobile",
            field=models.CharField(blank=True, max_length=16),
        ),
    ]
