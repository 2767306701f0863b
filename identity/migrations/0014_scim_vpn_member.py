from django.db import migrations, models


def members_so_far(apps, schema_editor):
    # Until now a SCIM client's VPN group was read from VPN access itself: the SCIM people with VPN access approved
    # are its members. (Someone deactivated before this lost that trace with their access: a client that adds them
    # to the group again records it.)
    # Only those whose access came from the group (approved by no person: a client's group change); someone a desk
    # agent approved by hand is not in it.
    User = apps.get_model("identity", "User")
    AuditEvent = apps.get_model("identity", "AuditEvent")
    members = []
    for pk in User.objects.filter(source="scim", vpn_access="approved").values_list("pk", flat=True).iterator():
        approval = AuditEvent.objects.filter(subject_id=pk, action="vpn_access.approved").order_by("-sequence").first()
        if approval is not None and approval.actor_id is None:
            members.append(pk)
    User.objects.filter(pk__in=members).update(scim_vpn_member=True)


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0013_fewer_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="scim_vpn_member",
            field=models.BooleanField(default=False, verbose_name="in the SCIM VPN group"),
        ),
        migrations.RunPython(members_so_far, migrations.RunPython.noop),
    ]
