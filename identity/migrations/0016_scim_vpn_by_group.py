"""Whether a SCIM client's VPN group decides a person's VPN access, marked on the person: it was read from the words
of the audit log (the reason of a ``vpn_access.approved`` / ``.revoked`` event with no actor), which nothing should
depend on. The people it marks are those the old reading found."""

from django.db import migrations, models
from django.db.models import Q

# The reasons the directory's VPN group wrote until now (identity.directory.people), as they were.
JOINED = "member of the directory's VPN group"
LEFT = "not in the directory's VPN group"


def mark_people_of_the_group(apps, schema_editor):
    User = apps.get_model("identity", "User")
    AuditEvent = apps.get_model("identity", "AuditEvent")
    by_group = Q(action__in=("vpn_access.approved", "vpn_access.revoked"), details__reason__in=(JOINED, LEFT))
    by_group |= Q(action__in=("directory.vpn_group_joined", "directory.vpn_group_left"))
    decided = AuditEvent.objects.filter(by_group, actor=None, subject__source="scim").values("subject_id")
    User.objects.filter(Q(scim_vpn_member=True) | Q(pk__in=decided), source="scim").update(scim_vpn_by_group=True)


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0015_upper_username_unique"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="scim_vpn_by_group",
            field=models.BooleanField(default=False, verbose_name="VPN access decided by the SCIM VPN group"),
        ),
        migrations.RunPython(mark_people_of_the_group, migrations.RunPython.noop),
    ]
