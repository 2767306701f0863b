"""The staff roles as groups with exactly the permissions their work needs (AC-03)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Help desk": [
        ("identity", "user", ["view", "change"]),
        ("identity", "auditevent", ["view"]),
        ("devices", "registration", ["view"]),
        ("devices", "outboundmessage", ["view"]),
    ],
    "Auditor": [
        ("identity", "user", ["view"]),
        ("identity", "auditevent", ["view"]),
        ("devices", "registration", ["view"]),
        ("devices", "outboundmessage", ["view"]),
    ],
}


def create_roles(apps, schema_editor):
    # Permissions are normally made after all migrations; make them now so the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        codenames = []
        for app_label, model, actions in grants:
            for action in actions:
                codenames.append((app_label, f"{action}_{model}"))
        permissions = [
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in codenames
        ]
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0001_initial"),
        ("devices", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
