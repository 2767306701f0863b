"""SCIM requests for one person at the same moment, on PostgreSQL, each in its own thread and connection, through
the real endpoints: neither undoes the other, and nobody is made twice."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from identity import audit
from identity.directory import people
from identity.directory.records import DirectoryRecord
from identity.directory.scim import resources
from identity.models import AuditEvent, User
from testsupport import wait_for

from .test_scim import ENTERPRISE, entra_user, patch

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def call(token, method, path, body=None):
    response = Client().generic(
        method,
        "/scim/v2" + path,
        data=json.dumps(body) if body is not None else "",
        content_type="application/scim+json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    return response.status_code, json.loads(response.content) if response.content else None


def someone_waits_on_a_lock() -> bool:
    """Whether another connection to this database is waiting for a row lock (the second request, held)."""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL answers from the activity it first saw in it, unless told to look again.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def run_both(first, second) -> dict:
    """Run ``first`` and ``second`` in threads of their own (each closes its connection); their results by name."""
    results: dict = {}

    def run(name, work):
        try:
            results[name] = work()
        except BaseException as error:  # shown by the assertion on results
            results[name] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(name, work), name=name)
        for name, work in (("first", first), ("second", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_patches_of_one_person_at_once_both_land(scim, scim_client, monkeypatch):
    status, body = scim("POST", "/Users", entra_user())
    assert status == 201
    scim_id = body["id"]
    # The first PATCH reads the person, then waits until the second has read them too (or is held waiting for the
    # first's lock, when the reading is locked): without the lock, each would write back the other's old value.
    read, real = threading.Event(), resources.user_resource

    def user_resource(user):
        found = real(user)
        name = threading.current_thread().name
        if name == "second":
            read.set()
        elif name == "first" and not read.is_set():
            try:
                wait_for(lambda: read.is_set() or someone_waits_on_a_lock(), timeout=10, interval=0.05)
            finally:
                read.set()  # once only: the first's answer reads the person again
        return found

    monkeypatch.setattr(resources, "user_resource", user_resource)
    department = patch({"op": "replace", "path": f"{ENTERPRISE}:department", "value": "Oncology"})
    family_name = patch({"op": "replace", "path": "name.familyName", "value": "Smyth"})
    results = run_both(
        lambda: call(scim_client.token, "PATCH", f"/Users/{scim_id}", department),
        lambda: call(scim_client.token, "PATCH", f"/Users/{scim_id}", family_name),
    )
    assert results["first"][0] == 200 and results["second"][0] == 200, results
    person = User.objects.get(directory_id=scim_id)
    assert (person.department, person.last_name) == ("Oncology", "Smyth")


def test_two_creations_of_one_person_at_once_make_one(scim_client, monkeypatch):
    """A client's retry racing its first try: the second POST's insert waits on the first's, then finds the
    institution ID taken and answers 409 uniqueness (RFC 7644 §3.3), as a later duplicate would; one person."""
    created, real = threading.Event(), audit.record

    def record(action, *args, **kwargs):
        event = real(action, *args, **kwargs)
        if action == "directory.person_created" and threading.current_thread().name == "first":
            created.set()
            # Hold the first's transaction open until the second is waiting on the unique index.
            wait_for(someone_waits_on_a_lock, timeout=10, interval=0.05)
        return event

    monkeypatch.setattr(audit, "record", record)

    def second():
        created.wait(10)
        return call(scim_client.token, "POST", "/Users", entra_user())

    results = run_both(lambda: call(scim_client.token, "POST", "/Users", entra_user()), second)
    assert results["first"][0] == 201, results
    status, error = results["second"]
    assert status == 409 and error["scimType"] == "uniqueness", results
    assert User.objects.filter(username="asmith").count() == 1
    assert AuditEvent.objects.filter(action="directory.person_created").count() == 1


def test_a_group_change_and_a_patch_of_its_member_at_once_both_land(scim, scim_client, monkeypatch):
    status, body = scim("POST", "/Users", entra_user())
    assert status == 201
    scim_id = body["id"]
    # The group change has read its member and is about to change them: the PATCH starts now, and the group change
    # goes on once the PATCH has committed (or is held waiting for the group change's lock). A change written from
    # the member as read before would undo the new name.
    member_read, real = threading.Event(), people.apply_group_change

    def apply_group_change(user, **changes):
        if threading.current_thread().name == "first":
            member_read.set()
            renamed = User.objects.filter(pk=user.pk, last_name="Smyth").exists
            wait_for(lambda: renamed() or someone_waits_on_a_lock(), timeout=10, interval=0.05)
        return real(user, **changes)

    monkeypatch.setattr(people, "apply_group_change", apply_group_change)
    joins = patch({"op": "add", "path": "members", "value": [{"value": scim_id}]})
    family_name = patch({"op": "replace", "path": "name.familyName", "value": "Smyth"})

    def second():
        assert member_read.wait(10)
        return call(scim_client.token, "PATCH", f"/Users/{scim_id}", family_name)

    results = run_both(lambda: call(scim_client.token, "PATCH", "/Groups/vpn", joins), second)
    assert results["first"][0] == 204 and results["second"][0] == 200, results
    person = User.objects.get(directory_id=scim_id)
    assert (person.vpn_access, person.last_name) == (User.VpnAccess.APPROVED, "Smyth")


def ldap_record(institution_id: str) -> DirectoryRecord:
    return DirectoryRecord(
        source=User.Source.LDAP, directory_id=f"guid-{institution_id}", institution_id=institution_id, last_name="Cole"
    )


def hold_after_creation(name: str, monkeypatch) -> threading.Event:
    """When the thread ``name`` has written a ``directory.person_created`` event (one by one, or the sync's in
    bulk), hold its transaction open until another connection waits on a lock; the returned event is set then."""
    written = threading.Event()
    real_record, real_many = audit.record, audit.record_many

    def hold(actions) -> None:
        if "directory.person_created" in actions and threading.current_thread().name == name:
            written.set()
            wait_for(someone_waits_on_a_lock, timeout=10, interval=0.05)

    def record(action, *args, **kwargs):
        event = real_record(action, *args, **kwargs)
        hold([action])
        return event

    def record_many(events):
        events = list(events)
        count = real_many(events)
        hold([action for action, _ in events])
        return count

    monkeypatch.setattr(audit, "record", record)
    monkeypatch.setattr(audit, "record_many", record_many)
    return written


def test_a_scim_creation_and_the_sync_creating_the_id_in_another_case_at_once_make_one(scim_client, monkeypatch):
    """An institution ID is held whatever its case, by the database too: a SCIM POST of "ABC1" and the sync's batch
    of joiners with "abc1", each past the checks before the other committed, end with one person; the sync's record
    is refused in words, as its check refuses a held ID."""
    created = hold_after_creation("first", monkeypatch)
    outcome: dict = {}

    def sync_batch():
        created.wait(10)
        outcome.update(people.create_people([ldap_record("abc1")], origin={"sync_run": 1}))
        return outcome

    results = run_both(lambda: call(scim_client.token, "POST", "/Users", entra_user("ABC1")), sync_batch)
    assert results["first"][0] == 201, results
    assert list(User.objects.filter(username__iexact="abc1").values_list("username", flat=True)) == ["ABC1"]
    [(record, error)] = outcome["conflicts"]
    assert record.institution_id == "abc1" and isinstance(error, people.DirectoryConflict)
    assert "The institution ID 'abc1' already belongs to another directory entry's person here" in str(error)
    assert AuditEvent.objects.filter(action="directory.person_created").count() == 1


def test_the_sync_creating_an_id_and_a_scim_creation_in_another_case_at_once_make_one(scim_client, monkeypatch):
    """The other way round: the sync's joiner "abc1" first, a SCIM POST of "ABC1" past its check meanwhile: 409
    uniqueness with the check's words."""
    created = hold_after_creation("first", monkeypatch)

    def scim_post():
        created.wait(10)
        return call(scim_client.token, "POST", "/Users", entra_user("ABC1"))

    results = run_both(lambda: people.create_people([ldap_record("abc1")], origin={"sync_run": 1}), scim_post)
    assert results["first"].get("created") == 1, results
    status, error = results["second"]
    assert status == 409 and error["scimType"] == "uniqueness", results
    assert error["detail"] == "userName ABC1 exists."
    assert list(User.objects.filter(username__iexact="abc1").values_list("username", flat=True)) == ["abc1"]


def test_the_sync_renaming_to_an_id_a_scim_creation_takes_in_another_case_at_once_is_refused(scim_client, monkeypatch):
    """A mover renamed to "XYZ9" while a SCIM POST creates "xyz9": the rename waits on the unique index, then is
    refused in the check's words (a conflict the sync reports), not an error that stops the sync."""
    people.apply_record(ldap_record("old9"), origin={"sync_run": 1})
    created = hold_after_creation("first", monkeypatch)
    renamed = DirectoryRecord(
        source=User.Source.LDAP, directory_id="guid-old9", institution_id="XYZ9", last_name="Cole"
    )

    def sync_one_by_one():
        created.wait(10)
        return people.apply_records([renamed], origin={"sync_run": 2})

    results = run_both(lambda: call(scim_client.token, "POST", "/Users", entra_user("xyz9")), sync_one_by_one)
    assert results["first"][0] == 201, results
    [(record, error)] = results["second"]["conflicts"]
    assert record is renamed and isinstance(error, people.DirectoryConflict), results
    assert "The institution ID 'XYZ9' already belongs to another directory entry's person here" in str(error)
    assert set(User.objects.filter(last_name="Cole").values_list("username", flat=True)) == {"old9"}
