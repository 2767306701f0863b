"""The people service with DirectoryRecord values: joiners, movers, leavers, reactivation, links (no LDAP needed)."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.models import OutboundMessage
from identity.directory import hooks, people
from identity.models import AuditEvent, User

from .conftest import SYNC

pytestmark = pytest.mark.django_db


def events(person, action):
    return list(AuditEvent.objects.filter(subject=person, action=action).order_by("sequence"))


def test_a_joiner_has_no_usable_password_and_no_device(record):
    assert people.apply_record(record(), origin=SYNC) == "created"
    person = User.objects.get(username="asmith")
    assert (person.source, person.directory_id, person.directory_dn) == (
        "ldap",
        "guid-asmith",
        "uid=asmith,ou=people,dc=example,dc=edu",
    )
    assert (person.first_name, person.last_name, person.email, person.department) == (
        "Alice",
        "Smith",
        "asmith@example.edu",
        "Radiology",
    )
    assert not person.has_usable_password()
    assert person.is_active and person.from_directory and not person.is_staff and not person.is_superuser
    assert not person.registrations.exists()
    (created,) = events(person, "directory.person_created")
    assert created.details["sync_run"] == 7 and created.details["values"]["email"] == "asmith@example.edu"
    # Welcome emails are off by default.
    assert not OutboundMessage.objects.filter(user=person).exists()
    # The same record again changes nothing and writes nothing.
    count = AuditEvent.objects.count()
    assert people.apply_record(record(), origin=SYNC) == "unchanged"
    assert AuditEvent.objects.count() == count


def test_a_joiner_is_welcomed_with_the_enrollment_address_when_the_setting_says_so(record, settings):
    settings.DIRECTORY_WELCOME_EMAIL = True
    people.apply_record(record(), origin=SYNC)
    (message,) = OutboundMessage.objects.filter(user__username="asmith")
    assert message.recipient == "asmith@example.edu" and message.template == "directory_welcome"


def test_joiners_in_bulk_as_one_by_one(record, make_user, settings):
    settings.DIRECTORY_WELCOME_EMAIL = True
    people.apply_record(record(), origin=SYNC)
    make_user("local1")
    records = [
        record(directory_id="guid-b1", institution_id="b1", email="b1@example.edu", roles=frozenset({"Auditor"})),
        record(directory_id="guid-b2", institution_id="b2", email="b2@example.edu", vpn_access=True),
        record(department="Oncology"),  # asmith, a mover
        record(directory_id="guid-l1", institution_id="local1"),  # a local account: refused
        record(directory_id="guid-off", institution_id="off", active=False),  # disabled, never seen
    ]
    outcomes = people.create_people(records, origin=SYNC)
    assert [(r.institution_id, type(e)) for r, e in outcomes.pop("conflicts")] == [("local1", people.DirectoryConflict)]
    assert outcomes == {"created": 2, "updated": 1, "unchanged": 1}
    b1, b2 = User.objects.get(username="b1"), User.objects.get(username="b2")
    assert not b1.has_usable_password() and b1.source == "ldap" and b1.is_staff
    assert list(b1.groups.values_list("name", flat=True)) == ["Auditor"]
    assert b2.vpn_access == User.VpnAccess.APPROVED
    created = AuditEvent.objects.get(action="directory.person_created", subject=b1)
    assert created.details == {
        **SYNC,
        "values": {
            "first_name": "Alice",
            "last_name": "Smith",
            "email": "b1@example.edu",
            "department": "Radiology",
            "directory_mobile": "",
        },
    }
    assert OutboundMessage.objects.filter(recipient="b2@example.edu").exists()  # welcomed
    assert User.objects.get(username="asmith").department == "Oncology"


def test_a_disabled_entry_never_seen_creates_nobody(record):
    assert people.apply_record(record(active=False), origin=SYNC) == "unchanged"
    assert not User.objects.filter(username="asmith").exists()


def test_a_mover_gets_the_new_values_audited_with_the_old(record):
    people.apply_record(record(), origin=SYNC)
    moved = record(last_name="Jones", department="Cardiology", dn="uid=asmith,ou=staff,dc=example,dc=edu")
    assert people.apply_record(moved, origin={"scim_client": 3}) == "updated"
    person = User.objects.get(username="asmith")
    assert (person.last_name, person.department) == ("Jones", "Cardiology")
    assert person.directory_dn == "uid=asmith,ou=staff,dc=example,dc=edu"
    (updated,) = events(person, "directory.person_updated")
    assert updated.details == {
        "scim_client": 3,
        "changes": {
            "last_name": {"from": "Smith", "to": "Jones"},
            "department": {"from": "Radiology", "to": "Cardiology"},
            "directory_dn": {
                "from": "uid=asmith,ou=people,dc=example,dc=edu",
                "to": "uid=asmith,ou=staff,dc=example,dc=edu",
            },
        },
    }


def test_a_changed_institution_id_is_the_same_person(record):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    assert people.apply_record(record(institution_id="asmith2"), origin=SYNC) == "updated"
    person.refresh_from_db()
    assert person.username == "asmith2"


def test_a_local_account_with_the_id_is_never_taken_over(record, make_user, password):
    local = make_user("asmith", first_name="Local")
    with pytest.raises(people.DirectoryConflict, match="local account"):
        people.apply_record(record(), origin=SYNC)
    local.refresh_from_db()
    assert local.source == "local" and local.first_name == "Local" and local.check_password(password)
    assert User.objects.filter(username="asmith").count() == 1


def test_a_record_without_its_ids_is_refused(record):
    with pytest.raises(ValidationError):
        people.apply_record(record(directory_id=" "), origin=SYNC)
    with pytest.raises(ValidationError):
        people.apply_record(record(source="local"), origin=SYNC)
    assert not User.objects.filter(username="asmith").exists()


def test_a_superuser_links_a_local_account_explicitly(record, make_user, password):
    local = make_user("asmith", first_name="Al")
    root = make_user("root", is_staff=True, is_superuser=True)
    with pytest.raises(ValidationError):
        people.link_local_account(local, record(), actor=make_user("agent", is_staff=True))
    with pytest.raises(ValidationError):
        people.link_local_account(root, record(institution_id="root"), actor=root)
    linked = people.link_local_account(local, record(), actor=root)
    assert linked.pk == local.pk and linked.source == "ldap" and linked.directory_id == "guid-asmith"
    assert linked.first_name == "Alice"  # the directory's values from now on
    assert not linked.has_usable_password() and not linked.check_password(password)
    (event,) = events(linked, "directory.account_linked")
    assert event.actor_id == root.pk
    # From now on the sync finds the person by the directory ID.
    assert people.apply_record(record(), origin=SYNC) == "unchanged"


def test_the_link_command_links_for_a_superuser(make_user):
    from django.core.management import CommandError, call_command

    local = make_user("asmith")
    make_user("root", is_staff=True, is_superuser=True)
    with pytest.raises(CommandError):
        call_command("link_directory_account", "asmith", "--directory-id", "guid-1", "--by", "nobody")
    call_command("link_directory_account", "asmith", "--directory-id", "guid-1", "--by", "root")
    local.refresh_from_db()
    assert (local.source, local.directory_id) == ("ldap", "guid-1")


def test_deactivation_and_reactivation_keep_the_devices(record, enroll, make_user):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    registration = enroll(person)
    assert people.apply_record(record(active=False), origin=SYNC) == "deactivated"
    person.refresh_from_db()
    assert not person.is_active and person.deactivated_at is not None
    assert people.apply_record(record(active=False), origin=SYNC) == "unchanged"
    assert people.deactivate_person(person, reason="again", origin=SYNC) is False
    registration.refresh_from_db()
    assert registration.status == "active"
    assert people.apply_record(record(), origin={"sync_run": 8}) == "reactivated"
    person.refresh_from_db()
    assert person.is_active and person.deactivated_at is None
    (event,) = events(person, "directory.person_reactivated")
    assert event.details["sync_run"] == 8 and event.details["devices_in_use"] == 1
    assert people.reactivate_person(person, origin=SYNC) is False


def test_reactivation_does_not_give_back_vpn_access_unless_the_directory_says_so(record):
    people.apply_record(record(vpn_access=True), origin=SYNC)
    person = User.objects.get(username="asmith")
    assert person.vpn_access == "approved"
    people.apply_record(record(active=False, vpn_access=True), origin=SYNC)
    person.refresh_from_db()
    assert person.vpn_access == "revoked"
    people.reactivate_person(person, origin=SYNC)
    person.refresh_from_db()
    assert person.is_active and person.vpn_access == "revoked"
    people.apply_record(record(vpn_access=True), origin=SYNC)
    person.refresh_from_db()
    assert person.vpn_access == "approved"


def test_vpn_group_membership_approves_and_leaving_it_revokes(record):
    people.apply_record(record(vpn_access=True), origin=SYNC)
    person = User.objects.get(username="asmith")
    (approved,) = events(person, "vpn_access.approved")
    assert approved.details["sync_run"] == 7 and approved.actor_id is None
    assert people.apply_record(record(vpn_access=None), origin=SYNC) == "unchanged"
    assert people.apply_record(record(vpn_access=False), origin=SYNC) == "updated"
    person.refresh_from_db()
    assert person.vpn_access == "revoked" and len(events(person, "vpn_access.revoked")) == 1


def test_every_registered_hook_is_one_devices_provides():
    for event in hooks.EVENTS:
        assert any(hook.__module__ == "devices.services.directory" for hook in hooks.registered(event)), event
    with pytest.raises(ValueError):
        hooks.register("no_such_event", print)


def test_dir_04_directory_roles_are_allow_listed_never_superuser_and_every_change_audited(record, settings):
    asked = frozenset({"Help desk", "Auditor", "superuser", "Domain Admins"})
    people.apply_record(record(roles=asked), origin=SYNC)
    person = User.objects.get(username="asmith")
    assert set(person.groups.values_list("name", flat=True)) == {"Help desk", "Auditor"}
    assert person.is_staff and not person.is_superuser
    assert sorted(e.details["role"] for e in events(person, "directory.role_granted")) == ["Auditor", "Help desk"]
    (refused,) = events(person, "directory.role_refused")
    assert refused.details == {"sync_run": 7, "roles": ["Domain Admins", "superuser"]}

    assert people.apply_record(record(roles=frozenset({"Auditor"})), origin={"scim_client": 2}) == "updated"
    (removed,) = events(person, "directory.role_removed")
    assert removed.details == {"scim_client": 2, "role": "Help desk"}
    # None: the directory does not manage roles, and what the person has stays.
    assert people.apply_record(record(roles=None), origin=SYNC) == "unchanged"
    assert set(person.groups.values_list("name", flat=True)) == {"Auditor"}

    # A group the directory does not manage is left alone; losing the last staff role closes the admin's door.
    Group.objects.get_or_create(name="Other")
    person.groups.add(Group.objects.get(name="Other"))
    people.apply_record(record(roles=frozenset()), origin=SYNC)
    person.refresh_from_db()
    assert set(person.groups.values_list("name", flat=True)) == {"Other"} and not person.is_staff

    # The allow-list setting can only narrow the staff roles, never widen them.
    settings.DIRECTORY_ROLES = ["Auditor", "superuser", "Other"]
    people.apply_record(record(roles=frozenset({"Help desk", "superuser"})), origin=SYNC)
    person.refresh_from_db()
    assert set(person.groups.values_list("name", flat=True)) == {"Other"}
    assert not person.is_staff and not person.is_superuser


def test_dir_06_an_email_change_tells_both_addresses_and_voids_links_sent_to_the_old_one(record, enroll, make_user):
    from django.utils import timezone

    from devices import services as device_services
    from devices.models import ActivationLink

    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    enroll(person)
    desk = make_user("desk1", is_staff=True)
    device_services.send_recovery_link(person, actor=desk)
    tablet = device_services.start_enrollment(person, kind="tablet", verified_at=timezone.now())
    tablet = device_services.set_platform(tablet, platform="android", actor=person)
    tablet = device_services.issue_app_secret(tablet, actor=person, verified_at=timezone.now())
    device_services.send_activation_link(tablet, actor=person)
    assert ActivationLink.objects.filter(user=person, revoked_at=None).count() == 2

    assert people.apply_record(record(email="alice.smith@example.edu"), origin=SYNC) == "updated"
    person.refresh_from_db()
    assert person.email == "alice.smith@example.edu"
    assert not ActivationLink.objects.filter(user=person, revoked_at=None, consumed_at=None).exists()
    told = OutboundMessage.objects.filter(user=person, template="notice:person.email_changed")
    assert sorted(told.values_list("recipient", flat=True)) == ["alice.smith@example.edu", "asmith@example.edu"]
    (changed,) = events(person, "person.email_changed")
    assert changed.details == {
        "sync_run": 7,
        "from": "asmith@example.edu",
        "to": "alice.smith@example.edu",
        "links_revoked": 2,
    }
    (updated,) = events(person, "directory.person_updated")
    assert updated.details["changes"] == {"email": {"from": "asmith@example.edu", "to": "alice.smith@example.edu"}}


def test_a_deactivated_local_account_hears_it_only_after_its_right_password(make_user, client, password, settings):
    from identity import errors

    local = make_user("breakglass")
    assert people.deactivate_person(local, reason="left", origin={"by_command": True})
    response = client.post("/account/sign-in/", {"username": "breakglass", "password": "not it at all"})
    assert errors.SIGN_IN_FAILED in response.content.decode()
    response = client.post("/account/sign-in/", {"username": "breakglass", "password": password})
    inactive = errors.ACCOUNT_INACTIVE.format(help_desk=settings.HELP_DESK_CONTACT)
    assert inactive in response.content.decode() and "_auth_user_id" not in client.session


def test_no_recovery_link_goes_to_a_leaver(record, enroll, make_user):
    from devices import errors as device_errors
    from devices import services as device_services

    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    enroll(person)
    people.apply_record(record(active=False), origin=SYNC)
    person.refresh_from_db()
    with pytest.raises(ValidationError, match="not active") as refused:
        device_services.send_recovery_link(person, actor=make_user("desk1", is_staff=True))
    assert refused.value.messages == [device_errors.ACCOUNT_INACTIVE_FOR_RECOVERY]
    assert not OutboundMessage.objects.filter(user=person, template="recovery_link").exists()


def test_the_directory_mobile_is_kept_in_e164_and_audited_masked(record):
    people.apply_record(record(mobile="(617) 555-0142"), origin=SYNC)
    person = User.objects.get(username="asmith")
    assert person.directory_mobile == "+16175550142"
    (created,) = events(person, "directory.person_created")
    assert created.details["values"]["directory_mobile"] == "+1********42"

    assert people.apply_record(record(mobile="+44 20 7946 0958"), origin=SYNC) == "updated"
    person.refresh_from_db()
    assert person.directory_mobile == "+442079460958"
    (updated,) = events(person, "directory.person_updated")
    assert updated.details["changes"] == {"directory_mobile": {"from": "+1********42", "to": "+4*********58"}}
    # No digit of either number but the last two reaches the audit log.
    assert "555" not in str(updated.details) and "7946" not in str(updated.details)

    # The same number written another way is no change.
    assert people.apply_record(record(mobile="+44 (0)20 7946 0958"), origin=SYNC) == "unchanged"
    # Gone from the directory: gone here.
    assert people.apply_record(record(), origin=SYNC) == "updated"
    person.refresh_from_db()
    assert person.directory_mobile == ""


def test_a_directory_mobile_that_is_no_number_is_not_kept(record):
    people.apply_record(record(mobile="call the front desk"), origin=SYNC)
    assert User.objects.get(username="asmith").directory_mobile == ""
    assert people.mobile_of(record(mobile="+1 617 555 0142")) == "+16175550142"


def test_a_value_longer_than_its_column_is_refused_before_anything_is_written(record):
    """Every value the directory gives is checked against the column that keeps it (on PostgreSQL an over-long
    value would fail the insert or the save with a database error, the same entry on every run)."""
    for field, length in (("last_name", 151), ("department", 201), ("email", 255), ("institution_id", 151)):
        with pytest.raises(ValidationError, match="at most") as refused:
            people.apply_record(record(**{field: "x" * length}), origin=SYNC)
        assert "Shorten it in the directory" in refused.value.messages[0]
    people.apply_record(record(last_name="x" * 150, department="d" * 200), origin=SYNC)
    with pytest.raises(ValidationError, match="151 characters"):
        people.apply_record(record(first_name="y" * 151), origin=SYNC)
    assert User.objects.get(username="asmith").first_name == "Alice"


def test_create_people_reports_a_record_it_cannot_take_and_applies_the_others(record):
    """A record that fails its checks is that record's error: the joiners with it are created and counted."""
    too_long = record(directory_id="guid-long", institution_id="long", department="d" * 201)
    outcomes = people.create_people(
        [
            record(directory_id="guid-b1", institution_id="b1"),
            too_long,
            record(directory_id="guid-b2", institution_id="b2"),
        ],
        origin=SYNC,
    )
    ((refused, error),) = outcomes.pop("conflicts")
    assert refused == too_long and isinstance(error, ValidationError)
    assert outcomes == {"created": 2}
    assert set(User.objects.values_list("username", flat=True)) == {"b1", "b2"}


@pytest.mark.postgres
def test_create_people_meeting_a_person_created_meanwhile_applies_its_batch_one_by_one(record, monkeypatch):
    """The insert is optimistic: a person created since the caller looked (here by SCIM, with one of the records'
    institution IDs) makes it fail on the unique index; the batch is rolled back and applied one by one."""
    people.apply_record(record(source=User.Source.SCIM, directory_id="scim-b2", institution_id="b2"), origin=SYNC)
    one_by_one = []
    apply_record = people.apply_record
    monkeypatch.setattr(people, "apply_record", lambda r, **kw: one_by_one.append(r) or apply_record(r, **kw))
    batch = [record(directory_id=f"guid-b{i}", institution_id=f"b{i}", email=f"b{i}@example.edu") for i in (1, 2, 3)]
    outcomes = people.create_people(batch, origin=SYNC)
    ((refused, error),) = outcomes.pop("conflicts")
    assert refused.institution_id == "b2" and isinstance(error, people.DirectoryConflict)
    assert outcomes == {"created": 2}
    assert one_by_one == batch
    assert User.objects.get(username="b2").source == User.Source.SCIM
    assert AuditEvent.objects.filter(action="directory.person_created").count() == 3  # b2 by SCIM, b1, b3
    assert set(User.objects.filter(source="ldap").values_list("username", flat=True)) == {"b1", "b3"}


def _matrix():
    """Records and the people they are compared with: each field changed or not, the entry active or not, the
    person active or not, roles and VPN access managed or not."""
    base = {
        "first_name": "Alice",
        "last_name": "Smith",
        "email": "a@example.edu",
        "department": "Radiology",
        "mobile": "+16175550142",
    }
    changes = [{}, {"first_name": "Al"}, {"last_name": "Jones"}, {"email": "b@example.edu"}]
    changes += [{"department": "Oncology"}, {"mobile": ""}, {"dn": "uid=x,ou=staff,dc=example,dc=edu"}]
    changes += [{"dn": ""}, {"institution_id_changed": True}]
    # The password-changed stamp (the person's stored one is "s1" unless said): a new one, none read (the setting
    # off), a first sight (only stored).
    changes += [{"stamp": "s2"}, {"stamp": ""}, {"stored": "", "stamp": "s1"}]
    access = [
        {},
        {"roles": frozenset()},
        {"roles": frozenset({"Auditor"})},
        {"roles": frozenset({"Help desk"})},
        {"vpn_access": True},
        {"vpn_access": False},
    ]
    n = 0
    for change in changes:
        for grant in access:
            for entry_active in (True, False):
                for person_active in (True, False):
                    n += 1
                    yield n, base, change, grant, entry_active, person_active


def test_the_compare_and_apply_record_agree_on_what_changes_something(db, settings):
    """The sync decides in SQL (``_Staging.compare``) which entries change their person; ``apply_record`` decides it
    in Python. Over a matrix of records and people they must agree, or the sync either misses a change or applies
    an entry every run for nothing."""
    from identity.directory import sync
    from identity.directory.ldap_source import Entry

    auditor = Group.objects.get(name="Auditor")
    entries = []
    for n, base, change, grant, entry_active, person_active in _matrix():
        uid = f"m{n}"
        person = User.objects.create(
            username=uid,
            source=User.Source.LDAP,
            directory_id=f"guid-{uid}",
            directory_dn=f"uid={uid},ou=people,dc=example,dc=edu",
            first_name=base["first_name"],
            last_name=base["last_name"],
            email=base["email"],
            department=base["department"],
            directory_mobile=base["mobile"],
            directory_password_changed=change.get("stored", "s1"),
            is_active=person_active,
            deactivated_at=None if person_active else timezone.now(),
            vpn_access=User.VpnAccess.APPROVED,
            is_staff=True,
        )
        person.groups.add(auditor)
        values = {**base, **{k: v for k, v in change.items() if k in base}}
        entries.append(
            Entry(
                dn=change.get("dn", f"uid={uid},ou=people,dc=example,dc=edu"),
                institution_id=f"{uid}-new" if change.get("institution_id_changed") else uid,
                first_name=values["first_name"],
                last_name=values["last_name"],
                email=values["email"],
                department=values["department"],
                mobile=values["mobile"],
                directory_id=f"guid-{uid}",
                password_changed=change.get("stamp", "s1"),
                active=entry_active,
                roles=grant.get("roles"),
                vpn_access=grant.get("vpn_access"),
            )
        )
    with sync._Staging() as staging:
        staging.load(entries)
        staging.compare()
        changed = {
            change.record.directory_id
            for batch in staging.changed()
            for change in batch
            if change.outcome != people.UNCHANGED
        }
    disagree = []
    for entry in entries:
        outcome = people.apply_record(entry.record(), origin=SYNC)
        if (outcome != people.UNCHANGED) != (entry.directory_id in changed):
            disagree.append((entry, outcome))
    assert len(entries) == 12 * 6 * 2 * 2 and len(changed) > len(entries) // 2
    assert disagree == []


def _movers(record, prefix: str):
    """People of one population (``prefix``), and the records that move them: one of each kind of change."""
    dn = lambda i, ou="people": f"uid={prefix}-{i},ou={ou},dc=example,dc=edu"  # noqa: E731

    def of(i, **changes):
        values = {"directory_id": f"guid-{prefix}-{i}", "institution_id": f"{prefix}-{i}", "dn": dn(i)}
        return record(**(values | {"email": f"{prefix}-{i}@example.edu"} | changes))

    before = [of(i) for i in range(1, 11)]
    before[5] = of(6, roles=frozenset({"Help desk"}))
    after = [
        of(1, last_name="Jones"),
        of(2, email=f"{prefix}-2.new@example.edu"),  # with links sent to the old address
        of(3, department="Oncology", dn=dn(3, "staff")),
        of(4, mobile="+16175550142"),
        of(5, roles=frozenset({"Auditor"}), vpn_access=True),
        of(6, email=f"{prefix}-6.new@example.edu", roles=frozenset()),
        of(7),  # unchanged
        of(8),  # deactivated here: returns, one by one
        of(9, institution_id=f"{prefix}-local"),  # a local account's ID: a conflict
        of(10, institution_id=f"{prefix}-10b"),
    ]
    return before, after


def _state(prefix: str, since: tuple[int, int]) -> dict:
    """Everything the movers of population ``prefix`` left, with the prefix taken out of every value."""
    import json

    from devices.models import ActivationLink

    def plain(value):
        return json.loads(json.dumps(value, default=str).replace(f"{prefix}-", "P-"))

    state = {}
    for person in User.objects.filter(directory_id__startswith=f"guid-{prefix}-").order_by("directory_id"):
        row = {
            name: getattr(person, name)
            for name in (*people.MOVER_FIELDS, "is_active", "is_staff", "vpn_access", "source")
        }
        row["groups"] = sorted(person.groups.values_list("name", flat=True))
        # A return's event says when the person was deactivated: a time of its own in each population.
        row["events"] = [
            (e.action, e.actor_id, e.details | ({"deactivated_at": "..."} if "deactivated_at" in e.details else {}))
            for e in AuditEvent.objects.filter(subject=person, sequence__gt=since[0]).order_by("sequence")
        ]
        row["mail"] = sorted(
            OutboundMessage.objects.filter(user=person, id__gt=since[1]).values_list("recipient", "template", "channel")
        )
        row["links_open"] = ActivationLink.objects.filter(user=person, revoked_at=None, consumed_at=None).count()
        state[person.directory_id] = plain(row)
    return plain(state)


def test_dir_06_movers_in_bulk_end_as_one_by_one(record, enroll, make_user):
    """``update_people`` on one population, ``apply_record`` for each on a copy of it: the same rows, audit events
    (actions and details), emails and voided links (DIR-06: both addresses told, links sent to the old one voided),
    and the same outcomes, for every kind of change and for the records that are not plain movers."""
    from devices import services as device_services

    desk = make_user("desk1", is_staff=True)
    for prefix in ("a", "b"):
        make_user(f"{prefix}-local")
        before, _ = _movers(record, prefix)
        for r in before:
            people.apply_record(r, origin=SYNC)
        two = User.objects.get(username=f"{prefix}-2")
        enroll(two)
        device_services.send_recovery_link(two, actor=desk)
        people.deactivate_person(User.objects.get(username=f"{prefix}-8"), reason="left", origin=SYNC)
    since = (AuditEvent.objects.latest("sequence").sequence, OutboundMessage.objects.latest("id").id)
    assert User.objects.get(username="a-2").email == "a-2@example.edu"

    _, movers = _movers(record, "a")
    bulk = people.update_people(movers, origin=SYNC)
    _, copies = _movers(record, "b")
    one_by_one = people.apply_records(copies, origin=SYNC)

    assert [r.institution_id for r, _ in bulk.pop("conflicts")] == ["a-local"]
    assert [r.institution_id for r, _ in one_by_one.pop("conflicts")] == ["b-local"]
    assert bulk == one_by_one == {"updated": 7, "unchanged": 1, "reactivated": 1}
    moved, copied = _state("a", since), _state("b", since)
    assert moved == copied
    two = moved["guid-P-2"]
    assert two["email"] == "P-2.new@example.edu" and two["links_open"] == 0
    assert ["P-2@example.edu", "notice:person.email_changed", "email"] in two["mail"]
    assert ["P-2.new@example.edu", "notice:person.email_changed", "email"] in two["mail"]
    changed = [details for action, _, details in two["events"] if action == "person.email_changed"]
    assert changed == [{**SYNC, "from": "P-2@example.edu", "to": "P-2.new@example.edu", "links_revoked": 1}]
    assert moved["guid-P-5"]["groups"] == ["Auditor"] and moved["guid-P-5"]["vpn_access"] == "approved"
    assert moved["guid-P-6"]["groups"] == [] and not moved["guid-P-6"]["is_staff"]
    assert moved["guid-P-7"]["events"] == [] and moved["guid-P-10"]["username"] == "P-10b"
    assert moved["guid-P-9"]["events"] == [] and moved["guid-P-9"]["username"] == "P-9"


def test_an_institution_id_is_held_whatever_its_case(record, make_user):
    """Joiners and movers, one by one and in bulk: an ID another account holds in another case is a conflict, and
    changes nothing; a person's own ID in another case is theirs to take."""
    make_user("ADMIN")
    with pytest.raises(people.DirectoryConflict, match="local account"):
        people.apply_record(record(institution_id="admin"), origin=SYNC)
    for uid in ("m1", "m2", "m3", "m4"):
        people.apply_record(record(directory_id=f"guid-{uid}", institution_id=uid), origin=SYNC)
    with pytest.raises(people.DirectoryConflict):
        people.apply_record(record(directory_id="guid-m1", institution_id="Admin"), origin=SYNC)
    movers = [
        record(directory_id="guid-m1", institution_id="admin"),  # held by the local ADMIN
        record(directory_id="guid-m2", institution_id="M3"),  # held by m3
        record(directory_id="guid-m3", institution_id="new"),
        record(directory_id="guid-m4", institution_id="NEW"),  # the same new ID as m3's, in another case
    ]
    outcomes = people.update_people(movers, origin=SYNC)
    assert [refused.directory_id for refused, _ in outcomes.pop("conflicts")] == ["guid-m1", "guid-m2", "guid-m4"]
    assert outcomes == {"updated": 1}
    assert dict(User.objects.filter(directory_id__startswith="guid-m").values_list("directory_id", "username")) == {
        "guid-m1": "m1",
        "guid-m2": "m2",
        "guid-m3": "new",
        "guid-m4": "m4",
    }
    assert people.apply_record(record(directory_id="guid-m4", institution_id="M4"), origin=SYNC) == "updated"


def test_movers_whose_write_meets_a_unique_index_are_applied_one_by_one(record):
    """Two movers taking the same new institution ID (free when they were read): the one statement that writes the
    batch meets the unique index, everything is rolled back, and each goes through apply_record: the first moves,
    the second is a conflict, the third (a plain mover) moves all the same."""
    for uid in ("m1", "m2", "m3"):
        people.apply_record(record(directory_id=f"guid-{uid}", institution_id=uid), origin=SYNC)
    movers = [
        record(directory_id="guid-m1", institution_id="same"),
        record(directory_id="guid-m2", institution_id="same"),
        record(directory_id="guid-m3", institution_id="m3", department="Oncology"),
    ]
    outcomes = people.update_people(movers, origin=SYNC)
    ((refused, error),) = outcomes.pop("conflicts")
    assert refused == movers[1] and isinstance(error, people.DirectoryConflict)
    assert outcomes == {"updated": 2}
    assert User.objects.get(directory_id="guid-m1").username == "same"
    assert User.objects.get(directory_id="guid-m2").username == "m2"
    assert User.objects.get(directory_id="guid-m3").department == "Oncology"
    assert AuditEvent.objects.filter(action="directory.person_updated").count() == 2


def test_the_database_holds_an_institution_id_whatever_its_case(db):
    """The checks tell who holds an ID; the unique index on UPPER(username) refuses a second creation that passed
    them (two at once, tested on PostgreSQL in test_scim_races), on the SQLite default too."""
    User.objects.create(username="ABC1")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="abc1")
    assert User.objects.filter(username__iexact="abc1").count() == 1
