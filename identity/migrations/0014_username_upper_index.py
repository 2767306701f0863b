from django.db import migrations, models
from django.db.models.functions import Upper


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0013_scim_vpn_member"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="user",
            index=models.Index(Upper("username"), name="identity_user_username_upper"),
        ),
    ]
