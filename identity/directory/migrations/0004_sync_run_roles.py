"""The help desk may sync one person from the directory; both staff roles see the runs (auditors read only)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def _permissions(apps, *codenames):
    app_config = apps.get_app_config("directory")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return list(Permission.objects.filter(content_type__app_label="directory", codename__in=codenames))


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    view = _permissions(apps, "view_directorysyncrun")
    for desk in Group.objects.filter(name="Help desk"):
        desk.permissions.add(*view, *_permissions(apps, "sync_person"))
    for auditor in Group.objects.filter(name="Auditor"):
        auditor.permissions.add(*view)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    ours = Permission.objects.filter(content_type__app_label="directory")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=["Help desk", "Auditor"]):
        group.permissions.remove(*ours)


class Migration(migrations.Migration):
    dependencies = [("directory", "0003_sync_runs"), ("identity", "0002_roles")]

    operations = [migrations.RunPython(grant, revoke)]
