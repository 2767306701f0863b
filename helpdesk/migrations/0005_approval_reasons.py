from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0004_approval_ready"),
    ]

    operations = [
        migrations.AlterField(
            model_name="approvalrequest",
            name="why_approval",
            field=models.TextField(),
        ),
    ]
