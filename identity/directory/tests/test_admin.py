"""The desk's view of a person from the directory: which kind of account it is, and details it cannot change."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from helpdesk import errors as desk_errors
from helpdesk import services as desk_services
from helpdesk.actions import actions_for
from identity.directory import people
from identity.models import AuditEvent, User

from .conftest import SYNC

pytestmark = pytest.mark.django_db


def test_the_person_page_says_which_kind_of_account_it_is(desk_client, record, make_user):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    page = desk_client.get(reverse("admin:identity_user_change", args=[person.pk])).content.decode()
    assert "Directory (LDAP / Active Directory)" in page and 'name="email"' not in page
    local = make_user("local1")
    page = desk_client.get(reverse("admin:identity_user_change", args=[local.pk])).content.decode()
    assert "Local account" in page


def test_the_desk_cannot_change_what_the_directory_owns(desk_client, staff_member, check_for, record):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    check_for(person, staff_member)
    # Not offered: the directory owns every detail the action changes.
    assert "change_details" not in [action.key for action in actions_for(person, staff_member)]
    page = desk_client.get(reverse("admin:identity_user_change", args=[person.pk])).content.decode()
    assert "Change email, names or department" not in page
    url = reverse("admin:helpdesk_action", args=[person.pk, "change_details"])
    response = desk_client.post(
        url,
        {
            "email": "evil@example.com",
            "first_name": "Alice",
            "last_name": "Smith",
            "department": "Radiology",
            "reason": "INC-1",
        },
    )
    assert escape(desk_errors.ACTION_DOES_NOT_APPLY) in desk_client.get(response["Location"]).content.decode()
    with pytest.raises(ValidationError) as refused:
        desk_services.change_person_details(person, actor=staff_member, reason="INC-1", department="Lab")
    assert refused.value.messages == [desk_errors.DETAILS_FROM_DIRECTORY]
    person.refresh_from_db()
    assert person.email == "asmith@example.edu"
    assert not AuditEvent.objects.filter(subject=person, action="person.details_changed").exists()


# --- AC-04: VPN access the directory's VPN group gives is changed there, not at the desk ---------------------------

VPN_GROUP = "cn=VPN Users,ou=groups,dc=example,dc=edu"


def _vpn_events(person, action):
    return AuditEvent.objects.filter(subject=person, action=action)


def test_ac04_the_desk_cannot_revoke_vpn_access_the_ldap_vpn_group_gives(
    desk_client, staff_member, check_for, record, settings, enroll
):
    """The desk's revocation would hold only until the next sync, which approves the person again and emails them:
    it is refused with where to change it, and what stops a compromised account still works."""
    from identity import errors as identity_errors

    settings.LDAP_VPN_GROUP = VPN_GROUP
    people.apply_record(record(vpn_access=True), origin=SYNC)
    person = User.objects.get(username="asmith")
    assert person.vpn_access == User.VpnAccess.APPROVED
    phone = enroll(person)
    check_for(person, staff_member)

    response = desk_client.post(
        reverse("admin:helpdesk_action", args=[person.pk, "revoke_vpn"]), {"reason": "INC-7 account compromised"}
    )

    assert response.status_code == 200
    assert escape(identity_errors.VPN_ACCESS_FROM_DIRECTORY) in response.content.decode()
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.APPROVED and person.vpn_access_changed_by is None
    assert not _vpn_events(person, "vpn_access.revoked").exists()
    assert not AuditEvent.objects.filter(subject=person, action="helpdesk.action").exists()
    # A compromised account is still stopped from the desk: its device reported lost (the VPN then refuses it).
    response = desk_client.post(
        reverse("admin:helpdesk_action", args=[person.pk, "report_lost"]), {"registration": str(phone.pk)}
    )
    assert response.status_code == 302
    phone.refresh_from_db()
    assert phone.status == phone.Status.RETIRED


def test_ac04_the_desk_cannot_approve_vpn_access_the_ldap_vpn_group_withholds(
    desk_client, staff_member, check_for, record, settings
):
    from identity import errors as identity_errors

    settings.LDAP_VPN_GROUP = VPN_GROUP
    people.apply_record(record(vpn_access=False), origin=SYNC)
    person = User.objects.get(username="asmith")
    check_for(person, staff_member)

    response = desk_client.post(
        reverse("admin:helpdesk_action", args=[person.pk, "approve_vpn"]), {"reason": "INC-8 manager asked"}
    )

    assert escape(identity_errors.VPN_ACCESS_FROM_DIRECTORY) in response.content.decode()
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.NONE
    assert not _vpn_events(person, "vpn_access.approved").exists()


def test_ac04_without_a_vpn_group_the_desk_decides_an_ldap_persons_vpn_access(
    desk_client, staff_member, check_for, record, settings
):
    settings.LDAP_VPN_GROUP = ""
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    check_for(person, staff_member)

    response = desk_client.post(
        reverse("admin:helpdesk_action", args=[person.pk, "approve_vpn"]), {"reason": "INC-8 manager asked"}
    )

    assert response.status_code == 302
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.APPROVED and person.vpn_access_changed_by == staff_member


def test_ac04_the_desk_cannot_revoke_vpn_access_a_scim_vpn_group_gives(scim, staff_member, check_for, sign_in):
    from django.test import Client

    from identity import errors as identity_errors

    from .test_scim import created, patch

    in_group = created(scim)["id"]
    never_in_group = created(scim, "bjones", externalId="bjones")["id"]
    status, _ = scim("PATCH", "/Groups/vpn", patch({"op": "Add", "path": "members", "value": [{"value": in_group}]}))
    assert status == 204
    member, other = User.objects.get(directory_id=in_group), User.objects.get(directory_id=never_in_group)
    assert member.vpn_access == User.VpnAccess.APPROVED
    desk = Client()
    sign_in(desk, staff_member)
    check_for(member, staff_member)
    check_for(other, staff_member)

    response = desk.post(
        reverse("admin:helpdesk_action", args=[member.pk, "revoke_vpn"]), {"reason": "INC-9 left the project"}
    )

    assert escape(identity_errors.VPN_ACCESS_FROM_DIRECTORY) in response.content.decode()
    member.refresh_from_db()
    assert member.vpn_access == User.VpnAccess.APPROVED
    # A SCIM person whose VPN access no client has given or taken: the desk's to decide.
    response = desk.post(
        reverse("admin:helpdesk_action", args=[other.pk, "approve_vpn"]), {"reason": "INC-10 manager asked"}
    )
    assert response.status_code == 302
    other.refresh_from_db()
    assert other.vpn_access == User.VpnAccess.APPROVED


def test_ac04_a_person_whose_vpn_access_the_directory_gives_cannot_ask_for_it(record, settings):
    """Their request would wait for ever: the desk cannot decide it. They hear where it comes from instead."""
    from django.core.exceptions import ValidationError

    from identity import errors as identity_errors
    from identity import services as identity_services

    settings.LDAP_VPN_GROUP = VPN_GROUP
    people.apply_record(record(vpn_access=False), origin=SYNC)
    person = User.objects.get(username="asmith")

    with pytest.raises(ValidationError) as refused:
        identity_services.request_vpn_access(person, reason="on call from home")

    assert refused.value.messages == [
        identity_errors.VPN_REQUEST_FROM_DIRECTORY.format(help_desk=settings.HELP_DESK_CONTACT)
    ]
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.NONE
    assert not _vpn_events(person, "vpn_access.requested").exists()


def test_ac04_a_deactivated_scim_person_put_in_the_vpn_group_has_vpn_access_the_directory_decides(scim):
    """Put in the VPN group while deactivated (no access changes then, the membership is kept): the desk may not
    decide their VPN access either, or reactivation would undo it."""
    from identity.selectors import vpn_access_from_directory

    from .test_scim import INACTIVE, created, patch

    scim_id = created(scim)["id"]
    person = User.objects.get(directory_id=scim_id)
    assert not vpn_access_from_directory(person)
    status, _ = scim("PATCH", f"/Users/{scim_id}", INACTIVE)
    assert status == 200
    status, _ = scim("PATCH", "/Groups/vpn", patch({"op": "Add", "path": "members", "value": [{"value": scim_id}]}))
    assert status == 204
    person.refresh_from_db()
    assert not person.is_active and person.vpn_access != User.VpnAccess.APPROVED and person.scim_vpn_member
    assert vpn_access_from_directory(person)


def test_ac04_the_group_decides_a_scim_persons_vpn_access_whatever_words_its_events_give(scim, monkeypatch):
    """Taken out of the VPN group (their access revoked by it), a SCIM person's VPN access is still the group's: the
    mark on the person says so, not the reasons written in the audit log, which are words for people and may be
    reworded."""
    from identity.selectors import vpn_access_from_directory

    from .test_scim import created, patch

    monkeypatch.setattr(people, "VPN_GROUP_JOINED", "in the VPN group of the directory")
    monkeypatch.setattr(people, "VPN_GROUP_LEFT", "out of the VPN group of the directory")
    scim_id = created(scim)["id"]
    for op, path in (("Add", "members"), ("Remove", f'members[value eq "{scim_id}"]')):
        value = [{"value": scim_id}] if op == "Add" else None
        change = {"op": op, "path": path, **({"value": value} if value else {})}
        assert scim("PATCH", "/Groups/vpn", patch(change))[0] == 204
    person = User.objects.get(directory_id=scim_id)
    assert person.vpn_access == User.VpnAccess.REVOKED and not person.scim_vpn_member
    assert vpn_access_from_directory(person)


def test_people_whose_vpn_access_a_scim_group_decided_before_the_mark_are_marked(make_user):
    """The migration that brought the mark finds the people the audit log's words named: approved or revoked by the
    group with no actor, or put in or taken out of it while deactivated; not someone a desk agent approved."""
    from importlib import import_module

    from django.apps import apps

    from identity import audit

    migration = import_module("identity.migrations.0016_scim_vpn_by_group")
    agent = make_user("agent7")
    left, joined, by_hand, member = (
        User.objects.create(username=name, source=User.Source.SCIM, directory_id=name)
        for name in ("left1", "joined1", "byhand1", "member1")
    )
    audit.record("vpn_access.revoked", subject=left, details={"reason": migration.LEFT, "scim_client": 1})
    audit.record("directory.vpn_group_joined", subject=joined, details={"scim_client": 1})
    audit.record("vpn_access.approved", actor=agent, subject=by_hand, details={"reason": "asked at the desk"})
    User.objects.filter(pk=member.pk).update(scim_vpn_member=True)
    migration.mark_people_of_the_group(apps, None)
    marked = set(User.objects.filter(scim_vpn_by_group=True).values_list("username", flat=True))
    assert marked == {"left1", "joined1", "member1"}
