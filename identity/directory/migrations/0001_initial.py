from django.db import migrations


class Migration(migrations.Migration):
    """The app's first migration, so that its models' migrations share one root."""

    initial = True
    dependencies = [("identity", "0009_directory_source")]
    operations = []
