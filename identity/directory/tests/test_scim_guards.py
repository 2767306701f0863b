"""SCIM's share of the directory's guards (DIR-03): a Group change that would take people out of a group en masse
is refused and audited, not applied; and the mobile number a SCIM client gives, kept and answered back."""

import pytest

from helpdesk.tests.conftest import superuser  # noqa: F401 (a fixture)
from identity.models import AuditEvent, User
from testsupport import details_of

from .test_scim import admin_client, created, entra_user, patch  # noqa: F401 (admin_client: a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _vpn_members(scim, *names) -> list[str]:
    ids = [created(scim, name)["id"] for name in names]
    status, _ = scim(
        "PUT",
        "/Groups/vpn",
        {"schemas": [GROUP_SCHEMA], "displayName": "VPN", "members": [{"value": scim_id} for scim_id in ids]},
    )
    assert status == 200
    assert User.objects.filter(vpn_access=User.VpnAccess.APPROVED).count() == len(ids)
    return ids


def _refusals():
    return AuditEvent.objects.filter(action="directory.scim_group_change_refused")


def test_dir_03_a_scim_group_change_removing_more_than_the_limit_is_refused_and_audited(scim, scim_client, settings):
    settings.SCIM_MAX_GROUP_REMOVALS = 2
    ids = _vpn_members(scim, "p1", "p2", "p3", "p4")
    newcomer = created(scim, "p5")["id"]
    before = AuditEvent.objects.exclude(action="directory.scim_group_change_refused").count()

    # A PUT keeping one of four (and adding one) would remove three: refused whole, the newcomer included.
    status, error = scim(
        "PUT",
        "/Groups/vpn",
        {"schemas": [GROUP_SCHEMA], "displayName": "VPN", "members": [{"value": ids[0]}, {"value": newcomer}]},
    )
    assert status == 409 and error["status"] == "409"
    assert "3 people" in error["detail"] and "SCIM_MAX_GROUP_REMOVALS" in error["detail"]
    # A PATCH naming three to remove, as Entra ID sends it, likewise.
    status, error = scim(
        "PATCH",
        "/Groups/vpn",
        patch({"op": "Remove", "path": "members", "value": [{"value": scim_id} for scim_id in ids[1:]]}),
    )
    assert status == 409
    assert User.objects.filter(vpn_access=User.VpnAccess.APPROVED).count() == 4
    assert User.objects.get(directory_id=newcomer).vpn_access == User.VpnAccess.NONE
    assert AuditEvent.objects.exclude(action="directory.scim_group_change_refused").count() == before
    refused = _refusals().order_by("sequence").first()
    assert details_of(refused) == {
        "scim_client": scim_client.pk,
        "group": "VPN",
        "would_remove": 3,
        "members": 4,
        "limit": 2,
    }

    # At the limit it goes through.
    status, _ = scim(
        "PATCH",
        "/Groups/vpn",
        patch({"op": "Remove", "path": "members", "value": [{"value": scim_id} for scim_id in ids[2:]]}),
    )
    assert status == 204
    assert set(User.objects.filter(vpn_access=User.VpnAccess.APPROVED).values_list("directory_id", flat=True)) == set(
        ids[:2]
    )


def test_dir_03_an_empty_member_list_never_empties_a_scim_group(scim, scim_client):
    ids = _vpn_members(scim, "p1", "p2")
    for method, path, body in [
        ("PUT", "/Groups/vpn", {"schemas": [GROUP_SCHEMA], "displayName": "VPN", "members": []}),
        ("PATCH", "/Groups/vpn", patch({"op": "remove", "path": "members"})),
        ("PATCH", "/Groups/vpn", patch({"op": "replace", "path": "members", "value": []})),
        ("POST", "/Groups", {"schemas": [GROUP_SCHEMA], "displayName": "VPN", "members": []}),
    ]:
        status, error = scim(method, path, body)
        assert status == 409, (method, body, error)
        assert "empty member list" in error["detail"]
    assert User.objects.filter(vpn_access=User.VpnAccess.APPROVED).count() == 2
    assert _refusals().count() == 4

    # Removing people by name still works, down to the last one; a group of one may be emptied.
    assert scim("PATCH", "/Groups/vpn", patch({"op": "remove", "path": f'members[value eq "{ids[0]}"]'}))[0] == 204
    assert scim("PATCH", "/Groups/vpn", patch({"op": "remove", "path": "members"}))[0] == 204
    assert not User.objects.filter(vpn_access=User.VpnAccess.APPROVED).exists()


def test_a_role_group_is_guarded_too(scim, settings):
    settings.SCIM_MAX_GROUP_REMOVALS = 1
    ids = [created(scim, name)["id"] for name in ("p1", "p2")]
    assert (
        scim(
            "PATCH",
            "/Groups/help-desk",
            patch({"op": "add", "path": "members", "value": [{"value": scim_id} for scim_id in ids]}),
        )[0]
        == 204
    )
    status, error = scim(
        "PATCH",
        "/Groups/help-desk",
        patch({"op": "Remove", "path": "members", "value": [{"value": scim_id} for scim_id in ids]}),
    )
    assert status == 409 and "Help desk" in error["detail"]
    assert User.objects.filter(groups__name="Help desk").count() == 2


# --- The mobile number ------------------------------------------------------------------------------------------


def test_the_mobile_number_is_kept_in_e164_answered_as_a_mobile_and_audited_masked(scim):
    scim_id = created(scim)["id"]
    person = User.objects.get(directory_id=scim_id)
    assert person.directory_mobile == "+12025550100"
    status, read = scim("GET", f"/Users/{scim_id}")
    assert read["phoneNumbers"] == [{"type": "mobile", "value": "+12025550100"}]
    made = AuditEvent.objects.get(action="directory.person_created", subject=person)
    assert made.details["values"]["directory_mobile"] == "+1********00"

    # A PATCH that does not mention it keeps it; a group change keeps it.
    scim("PATCH", f"/Users/{scim_id}", patch({"op": "replace", "path": "name.familyName", "value": "Smyth"}))
    scim("PATCH", "/Groups/vpn", patch({"op": "add", "path": "members", "value": [{"value": scim_id}]}))
    person.refresh_from_db()
    assert person.directory_mobile == "+12025550100" and person.vpn_access == User.VpnAccess.APPROVED

    status, _ = scim(
        "PATCH",
        f"/Users/{scim_id}",
        patch({"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 202 555 0199"}),
    )
    assert status == 200
    person.refresh_from_db()
    assert person.directory_mobile == "+12025550199"
    moved = AuditEvent.objects.filter(action="directory.person_updated", subject=person).order_by("sequence").last()
    assert moved.details["changes"] == {"directory_mobile": {"from": "+1********00", "to": "+1********99"}}

    # A PUT without it: the directory has none any more.
    status, body = scim("PUT", f"/Users/{scim_id}", entra_user(phoneNumbers=[]))
    assert status == 200 and not body.get("phoneNumbers")
    person.refresh_from_db()
    assert person.directory_mobile == ""


def test_a_mobile_that_is_no_number_is_refused_and_changes_nothing(scim):
    status, error = scim("POST", "/Users", entra_user(phoneNumbers=[{"type": "mobile", "value": "front desk"}]))
    assert status == 400 and error["scimType"] == "invalidValue" and "country code" in error["detail"]
    assert not User.objects.filter(username="asmith").exists()


def test_dir_03_a_scim_client_deactivating_past_its_hourly_limit_is_refused_until_a_superuser_lifts_it(
    scim,
    scim_client,
    settings,
    admin_client,  # noqa: F811
):
    from django.urls import reverse

    settings.SCIM_MAX_DEACTIVATIONS_PER_HOUR = 2
    ids = [created(scim, name)["id"] for name in ("p1", "p2", "p3", "p4", "p5")]
    # An Entra ID scoping mistake: active false (Entra's PATCH) or DELETE, one person at a time.
    assert scim("PATCH", f"/Users/{ids[0]}", patch({"op": "Replace", "path": "active", "value": "False"}))[0] == 200
    assert scim("DELETE", f"/Users/{ids[1]}")[0] == 204
    status, error = scim("PATCH", f"/Users/{ids[2]}", patch({"op": "Replace", "path": "active", "value": "False"}))
    assert status == 429 and error["status"] == "429" and "SCIM_MAX_DEACTIVATIONS_PER_HOUR" in error["detail"]
    assert scim("DELETE", f"/Users/{ids[3]}")[0] == 429
    assert scim("PUT", f"/Users/{ids[4]}", entra_user("p5", active=False))[0] == 429
    assert User.objects.filter(is_active=False).count() == 2
    # Other changes go on; so does a DELETE of someone already deactivated (nobody more is deactivated).
    assert (
        scim("PATCH", f"/Users/{ids[2]}", patch({"op": "replace", "path": "name.familyName", "value": "Y"}))[0] == 200
    )
    assert scim("DELETE", f"/Users/{ids[0]}")[0] == 204
    refused = AuditEvent.objects.filter(action="directory.scim_deactivation_refused").order_by("sequence")
    assert [event.subject.username for event in refused] == ["p3", "p4", "p5"]
    assert details_of(refused[0]) == {"scim_client": scim_client.pk, "deactivated": 2, "limit": 2}
    # Another client's limit is its own; a superuser lifts this one's in the admin.
    response = admin_client.post(
        reverse("admin:directory_scimclient_changelist"),
        {"action": "lift_deactivation_limit", "_selected_action": [scim_client.pk]},
    )
    assert response.status_code == 302
    lifted = AuditEvent.objects.get(action="directory.scim_deactivation_limit_lifted")
    assert lifted.actor.is_superuser and details_of(lifted) == {"scim_client": scim_client.pk, "deactivated": 2}
    assert scim("DELETE", f"/Users/{ids[3]}")[0] == 204
    assert scim("PUT", f"/Users/{ids[4]}", entra_user("p5", active=False))[0] == 200
    assert scim("PATCH", f"/Users/{ids[2]}", patch({"op": "Replace", "path": "active", "value": "False"}))[0] == 429
    assert User.objects.filter(is_active=False).count() == 4


def test_dir_03_a_scim_clients_deactivations_count_within_the_hour_only(scim, scim_client, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.SCIM_MAX_DEACTIVATIONS_PER_HOUR = 1
    first, second = created(scim, "p1")["id"], created(scim, "p2")["id"]
    assert scim("DELETE", f"/Users/{first}")[0] == 204
    assert scim("DELETE", f"/Users/{second}")[0] == 429
    # An hour on (the audit log is append-only: the clock moves instead).
    later = timezone.now() + timedelta(hours=1, seconds=1)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(timezone, "now", lambda: later)
        assert scim("DELETE", f"/Users/{second}")[0] == 204
