"""The help desk's roles (AC-03): per-action permissions instead of change rights on people; auditors view only."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DESK_ACTIONS = [
    "record_identity_check",
    "unlock_account",
    "retire_device",
    "send_recovery_link",
    "issue_bypass_codes",
    "sign_out_everywhere",
    "set_vpn_access",
    "edit_person_details",
    "register_security_key",
    "approve_request",
    "work_cases",
]
DESK_RECORDS = ["identitycheck", "case", "casenote", "approvalrequest"]


def _permission(apps, app_label, codename):
    return apps.get_model("auth", "Permission").objects.get(content_type__app_label=app_label, codename=codename)


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    desk = Group.objects.get(name="Help desk")
    auditor = Group.objects.get(name="Auditor")
    desk.permissions.remove(_permission(apps, "identity", "change_user"))
    views = [_permission(apps, "helpdesk", f"view_{model}") for model in DESK_RECORDS]
    desk.permissions.add(*views, *[_permission(apps, "helpdesk", codename) for codename in DESK_ACTIONS])
    auditor.permissions.add(*views)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    helpdesk = Permission.objects.filter(content_type__app_label="helpdesk")
    for group in Group.objects.filter(name__in=["Help desk", "Auditor"]):
        group.permissions.remove(*helpdesk)
    Group.objects.get(name="Help desk").permissions.add(_permission(apps, "identity", "change_user"))


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0001_desk_records"),
        ("identity", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
