"""The LDAP sync against the real slapd: joiners, movers, leavers and returns, DIR-03's guards, one person, dry runs,
the command and the schedule."""

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from identity.directory import sync, tasks
from identity.directory.ldap_source import LDAPReader
from identity.directory.models import DirectorySyncRun
from identity.directory.tests import slapd as tree
from identity.models import AuditEvent, User
from testsupport import CapturedStatements

pytestmark = pytest.mark.django_db

Status = DirectorySyncRun.Status


def person(uid: str, **extra) -> tree.Person:
    return tree.Person(uid, uid.capitalize(), "Tester", f"{uid}@example.edu", "Medicine", **extra)


def enabled_in(directory) -> int:
    return sum(1 for p in directory.people if p.uac == tree.ENABLED)


def test_first_run_creates_everyone_enabled(ldap_directory):
    run = sync.sync_directory()
    assert run.status == Status.APPLIED and run.error_text == ""
    assert run.read == len(ldap_directory.people)
    assert run.created == enabled_in(ldap_directory)
    assert run.unchanged == 1  # dave: disabled, never seen before, creates nobody
    assert not User.objects.filter(username="dave").exists()
    alice = User.objects.get(username="alice")
    assert (alice.source, alice.email, alice.department) == ("ldap", "alice@example.edu", "Cardiology")
    assert not alice.has_usable_password()
    created = AuditEvent.objects.filter(action="directory.person_created", subject=alice).get()
    assert created.details["sync_run"] == run.pk


def test_joiner_mover_leaver_and_return(ldap_directory):
    sync.sync_directory()
    yann = ldap_directory.add_person(person("yann"))
    run = sync.sync_directory()
    assert (run.created, run.updated, run.deactivated) == (1, 0, 0)
    assert run.unchanged == len(ldap_directory.people) - 1

    ldap_directory.modify(yann.dn, mail="y.tester@example.edu", departmentNumber="Oncology")
    run = sync.sync_directory()
    assert (run.created, run.updated, run.deactivated) == (0, 1, 0)
    moved = User.objects.get(username="yann")
    assert (moved.email, moved.department) == ("y.tester@example.edu", "Oncology")
    change = AuditEvent.objects.filter(action="directory.person_updated", subject=moved).get()
    assert change.details["changes"]["email"] == {"from": "yann@example.edu", "to": "y.tester@example.edu"}

    ldap_directory.disable(yann.dn)
    run = sync.sync_directory()
    assert run.deactivated == 1 and not User.objects.get(username="yann").is_active
    ldap_directory.enable(yann.dn)
    run = sync.sync_directory()
    assert run.reactivated == 1 and User.objects.get(username="yann").is_active

    ldap_directory.remove(yann.dn)
    run = sync.sync_directory()
    assert run.deactivated == 1
    left = AuditEvent.objects.filter(action="directory.person_deactivated", subject=moved).latest("sequence")
    assert left.details == left.details | {"sync_run": run.pk, "reason": sync.LEFT}
    assert User.objects.filter(username="yann").exists()  # nothing deleted


def test_leaving_and_rejoining_the_synced_groups(ldap_directory, settings):
    settings.LDAP_SYNC_GROUPS = [tree.STAFF_GROUP]
    zoe = ldap_directory.add_person(person("zoe"))
    sync.sync_directory()
    ldap_directory.remove_from_group(zoe.dn, tree.STAFF_GROUP)
    assert sync.sync_directory().deactivated == 1
    assert not User.objects.get(username="zoe").is_active
    ldap_directory.add_to_group(zoe.dn, tree.STAFF_GROUP)
    assert sync.sync_directory().reactivated == 1
    assert User.objects.get(username="zoe").is_active


def documented_openldap_setting(name: str) -> str:
    """The value docs/directory.md's OpenLDAP example gives the setting ``name`` ("" when it sets none)."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "directory.md").read_text(encoding="utf-8")
    example = page.split("### OpenLDAP", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    found = re.search(rf"^{name}=(\S*)", example, re.MULTILINE)
    return found.group(1) if found else ""


def test_a_person_locked_out_by_wrong_passwords_stays_active_with_the_documented_openldap_setting(
    ldap_directory, settings
):
    # ppolicy sets pwdAccountLockedTime on a lockout after wrong passwords too (to the time): only its
    # administrative value disables.
    import ldap

    yann = ldap_directory.add_person(person("yann"))
    sync.sync_directory()  # with Active Directory's default: erin (locked by an administrator) is active here
    for _ in range(5):  # the policy's pwdMaxFailure
        with pytest.raises(ldap.INVALID_CREDENTIALS):
            ldap_directory.connection(yann.dn, "not the password")
    conn = ldap_directory.connection()
    try:
        [(_, locked)] = conn.search_s(yann.dn, ldap.SCOPE_BASE, attrlist=["pwdAccountLockedTime"])
    finally:
        conn.unbind_s()
    assert locked["pwdAccountLockedTime"][0] != b"000001010000Z"
    settings.LDAP_DISABLED_ATTRIBUTE = documented_openldap_setting("LDAP_DISABLED_ATTRIBUTE")
    settings.LDAP_DISABLED_VALUES = list(filter(None, documented_openldap_setting("LDAP_DISABLED_VALUES").split(",")))
    assert settings.LDAP_DISABLED_ATTRIBUTE == "pwdAccountLockedTime"
    run = sync.sync_directory()
    assert run.deactivated == 1
    assert not User.objects.get(username="erin").is_active
    assert User.objects.get(username="yann").is_active


def test_a_second_run_with_nothing_changed_writes_nothing(ldap_directory, assert_max_num_statements):
    sync.sync_directory()
    events = AuditEvent.objects.count()
    # A few per page of entries, none per person; one for runs left "running"; the compare's SET LOCAL in a
    # transaction of its own (a savepoint here).
    with assert_max_num_statements(16):
        run = sync.sync_directory()
    assert run.unchanged == run.read and run.created == run.updated == run.deactivated == 0
    assert AuditEvent.objects.count() == events


def test_an_unchanged_rerun_costs_queries_per_batch_not_per_person(ldap_directory, settings, monkeypatch):
    """At two directory sizes: what a rerun with nothing changed asks the database does not grow with the people
    read (their entries go in with one COPY and are compared in one statement), and at most with its batches."""
    monkeypatch.setattr(sync, "BATCH", 20)
    batches = lambda read: -(-read // sync.BATCH)  # noqa: E731

    def unchanged_rerun() -> tuple[int, int]:
        sync.sync_directory()
        with CapturedStatements() as queries:
            run = sync.sync_directory()
        assert run.status == Status.APPLIED
        assert run.unchanged == run.read and run.created == run.updated == run.deactivated == 0
        return run.read, len(queries)

    everyone = settings.LDAP_SYNC_FILTER
    settings.LDAP_SYNC_FILTER = "(&(objectClass=person)(uid=person000*))"  # person00001 to person00099
    small_read, small = unchanged_rerun()
    settings.LDAP_SYNC_FILTER = everyone
    big_read, big = unchanged_rerun()

    assert small_read == 99 and big_read >= 2 * small_read
    assert big - small <= 2 * (batches(big_read) - batches(small_read)) < big_read - small_read
    assert big <= 12 + 2 * batches(big_read)
    assert big == small


def test_a_local_account_is_never_taken_over(ldap_directory, make_user):
    carol = make_user("carol", email="carol.local@example.edu")
    run = sync.sync_directory()
    assert run.status == Status.APPLIED and run.errors == 1
    assert "carol" in run.error_text and "link_directory_account" in run.error_text
    carol.refresh_from_db()
    assert (carol.source, carol.email) == ("local", "carol.local@example.edu")
    assert carol.has_usable_password()


def test_a_local_account_is_never_taken_over_in_another_case(ldap_directory, make_user):
    """An institution ID is held whatever its case: the directory's carol is not created beside a local CAROL."""
    make_user("CAROL")
    run = sync.sync_directory()
    assert run.errors == 1 and "CAROL" not in run.error_text and "carol" in run.error_text
    assert list(User.objects.filter(username__iexact="carol").values_list("username", "source")) == [("CAROL", "local")]


def test_linking_a_local_account_checks_the_stable_id_with_the_directory(ldap_directory, make_user, password):
    """A mistyped --directory-id would make every password refused and the next sync deactivate the person: the
    command refuses it (and an ID the directory has no entry for) and changes nothing; the right one, in any case,
    is linked as the directory spells it, with its DN, and the next sync finds the person."""
    carol = make_user("carol")
    make_user("root", is_staff=True, is_superuser=True)
    entry = LDAPReader().record_for("carol")
    with pytest.raises(CommandError, match="has the stable ID"):
        call_command("link_directory_account", "carol", "--directory-id", "not-carols-id", "--by", "root")
    make_user("zed")
    with pytest.raises(CommandError, match="has no entry"):
        call_command("link_directory_account", "zed", "--directory-id", entry.directory_id, "--by", "root")
    carol.refresh_from_db()
    assert carol.source == "local" and carol.check_password(password)
    assert not AuditEvent.objects.filter(action="directory.account_linked").exists()

    call_command("link_directory_account", "carol", "--directory-id", entry.directory_id.upper(), "--by", "root")
    carol.refresh_from_db()
    assert (carol.source, carol.directory_id, carol.directory_dn) == ("ldap", entry.directory_id, entry.dn)
    run = sync.sync_directory(person="carol")
    assert run.status == Status.APPLIED and run.errors == 0 and User.objects.filter(username="carol").count() == 1


def test_one_person_syncs_only_them(ldap_directory):
    sync.sync_directory()
    yann, zoe = ldap_directory.add_person(person("yann")), ldap_directory.add_person(person("zoe"))
    run = sync.sync_directory(person="yann")
    assert (run.read, run.created, run.deactivated) == (1, 1, 0)
    assert run.only_person == "yann"
    assert not User.objects.filter(username="zoe").exists()
    ldap_directory.remove(zoe.dn)
    ldap_directory.modify(yann.dn, departmentNumber="Oncology")
    run = sync.sync_directory(person="yann")
    assert run.updated == 1 and run.deactivated == 0
    run = sync.sync_directory(person="zoe")  # not found: the full run decides
    assert run.read == 0 and "not found" in run.error_text


def test_a_person_removed_is_not_deactivated_by_a_one_person_run(ldap_directory):
    yann = ldap_directory.add_person(person("yann"))
    sync.sync_directory()
    ldap_directory.remove(yann.dn)
    run = sync.sync_directory(person="yann")
    assert run.deactivated == 0 and User.objects.get(username="yann").is_active


@pytest.mark.parametrize("cleared", ["institution_id", "directory_id"])
def test_an_entry_the_reader_skips_does_not_make_its_person_a_leaver(ldap_directory, settings, cleared):
    # The attribute mapped to the institution ID (or to the stable ID) is cleared in the directory for two people:
    # their entries are skipped, but they are still there, so neither is deactivated (found by the entry's stable
    # ID, or without one by its DN). Someone really gone still is.
    settings.LDAP_ATTRIBUTES = {**settings.LDAP_ATTRIBUTES, cleared: "employeeNumber"}
    settings.LDAP_SYNC_FILTER = "(employeeType=contractor)"
    settings.DIRECTORY_MAX_DEACTIVATION_PERCENT = 100
    wim, xena, yann, _ = [
        ldap_directory.add_person(person(uid, extra={"employeeType": ["contractor"], "employeeNumber": [f"E{n}"]}))
        for n, uid in enumerate(("wim", "xena", "yann", "zoe"))
    ]
    assert sync.sync_directory().created == 4
    ldap_directory.modify(wim.dn, employeeNumber=None)
    ldap_directory.modify(xena.dn, employeeNumber=None)
    ldap_directory.remove(yann.dn)
    run = sync.sync_directory()
    assert run.status == Status.APPLIED and run.deactivated == 1
    assert list(User.objects.filter(is_active=False).values_list("directory_dn", flat=True)) == [yann.dn]
    assert User.objects.filter(directory_dn__in=[wim.dn, xena.dn], is_active=True).count() == 2
    # The run still names the entries it skipped, as errors.
    assert run.errors == 2
    assert f"{wim.dn}: skipped, no employeeNumber" in run.error_text
    assert f"{xena.dn}: skipped, no employeeNumber" in run.error_text


def test_dry_run_counts_and_changes_nothing(ldap_directory):
    sync.sync_directory()
    yann = ldap_directory.add_person(person("yann"))
    zoe = ldap_directory.add_person(person("zoe"))
    sync.sync_directory()
    ldap_directory.add_person(person("xena"))
    ldap_directory.modify(yann.dn, mail="y2@example.edu")
    ldap_directory.remove(zoe.dn)
    events = AuditEvent.objects.count()
    run = sync.sync_directory(dry_run=True)
    assert run.dry_run and run.status == Status.APPLIED
    assert (run.created, run.updated, run.deactivated) == (1, 1, 1)
    assert AuditEvent.objects.count() == events
    assert not User.objects.filter(username="xena").exists()
    assert User.objects.get(username="zoe").is_active
    assert User.objects.get(username="yann").email == "yann@example.edu"


def test_a_dry_run_over_the_limits_is_not_held_and_says_a_run_would_be(four_leave, settings):
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    run = sync.sync_directory(dry_run=True)
    # Nobody could apply or discard a held dry run: it ends, and says in words what a run would do.
    assert run.dry_run and run.status == Status.APPLIED and run.finished_at is not None
    assert "A run now would be held: it would deactivate 4 people" in run.error_text
    assert "DIRECTORY_MAX_DEACTIVATIONS (3)" in run.error_text
    assert (run.deactivated, run.would_deactivate) == (4, [])
    assert not DirectorySyncRun.objects.filter(status=Status.HELD).exists()
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4


def test_dir_03_a_run_failing_partway_changes_nobody(ldap_directory, monkeypatch):
    yann, zoe = ldap_directory.add_person(person("yann")), ldap_directory.add_person(person("zoe"))
    sync.sync_directory()
    ldap_directory.modify(yann.dn, mail="y2@example.edu")
    ldap_directory.remove(zoe.dn)
    ldap_directory.add_person(person("xena"))
    events = AuditEvent.objects.count()
    # slapd stops as the first page comes in (the reader has asked for the second by then, at most): the third
    # cannot come, whatever the reading ahead.
    assert len(ldap_directory.people) > 2 * tree.SIZE_LIMIT
    monkeypatch.setattr(sync, "BATCH", tree.SIZE_LIMIT)
    record = LDAPReader._record

    def record_then_stop(self, *args):
        if self.pages == 1 and ldap_directory.process is not None:
            ldap_directory.stop()
        return record(self, *args)

    monkeypatch.setattr(LDAPReader, "_record", record_then_stop)
    run = sync.sync_directory()
    assert run.status == Status.FAILED and "Reading the directory failed" in run.error_text
    assert 0 < run.read < len(ldap_directory.people)
    assert run.created == run.updated == run.deactivated == 0
    assert AuditEvent.objects.count() == events
    assert User.objects.get(username="zoe").is_active
    assert User.objects.get(username="yann").email == "yann@example.edu"
    assert not User.objects.filter(username="xena").exists()


def test_dir_03_directory_down_or_a_page_refused_changes_nobody(ldap_directory, settings):
    zoe = ldap_directory.add_person(person("zoe"))
    sync.sync_directory()
    ldap_directory.remove(zoe.dn)
    settings.LDAP_PAGE_SIZE = tree.SIZE_LIMIT + 50  # slapd refuses a page larger than its limit
    assert sync.sync_directory().status == Status.FAILED
    settings.LDAP_PAGE_SIZE = tree.SIZE_LIMIT
    ldap_directory.stop()
    with pytest.raises(CommandError, match="nobody was changed"):
        call_command("sync_directory")
    assert User.objects.get(username="zoe").is_active


def test_dir_03_an_empty_result_deactivates_nobody(ldap_directory, settings):
    sync.sync_directory()
    settings.LDAP_SYNC_FILTER = "(uid=nobody-at-all)"
    run = sync.sync_directory()
    assert run.status == Status.FAILED and run.read == 0 and run.deactivated == 0
    assert "returned nobody" in run.error_text
    assert not User.objects.filter(source="ldap", is_active=False).exists()


def in_thread(work) -> threading.Thread:
    """Start ``work`` in a thread of its own (its own database connection, closed after)."""

    def run():
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def four_leave(ldap_directory):
    """Four people synced, then two removed and two disabled in the directory."""
    added = [ldap_directory.add_person(person(uid)) for uid in ("wim", "xena", "yann", "zoe")]
    sync.sync_directory()
    ldap_directory.remove(added[0].dn)
    ldap_directory.remove(added[1].dn)
    ldap_directory.disable(added[2].dn)
    ldap_directory.disable(added[3].dn)
    return ["wim", "xena", "yann", "zoe"]


def test_dir_03_a_mass_deactivation_is_held_until_a_superuser_applies_it(four_leave, settings, make_user):
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    run = sync.sync_directory()
    assert run.status == Status.HELD and "DIRECTORY_MAX_DEACTIVATIONS" in run.error_text
    assert sorted(p["username"] for p in run.would_deactivate) == four_leave
    assert run.deactivated == 4
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4

    agent = make_user("agent", is_staff=True)
    with pytest.raises(sync.SyncNotAllowed):
        sync.apply_held_run(run, actor=agent)
    root = make_user("root", is_superuser=True, is_staff=True)
    applied = sync.apply_held_run(run, actor=root)
    assert applied.pk == run.pk and applied.status == Status.APPLIED
    assert (applied.decided_by, applied.deactivated) == (root, 4)
    assert not User.objects.filter(username__in=four_leave, is_active=True).exists()
    event = AuditEvent.objects.get(action="directory.sync_run_applied")
    assert (event.actor, event.details["sync_run"]) == (root, run.pk)
    with pytest.raises(sync.SyncNotAllowed):
        sync.apply_held_run(applied, actor=root)


def test_dir_03_a_held_run_discarded_changes_nobody(four_leave, settings, make_user):
    settings.DIRECTORY_MAX_DEACTIVATION_PERCENT = 1  # 4 of some 260 people
    run = sync.sync_directory()
    assert run.status == Status.HELD and "DIRECTORY_MAX_DEACTIVATION_PERCENT" in run.error_text
    root = make_user("root", is_superuser=True, is_staff=True)
    run = sync.discard_held_run(run, actor=root)
    assert run.status == Status.DISCARDED and run.decided_by == root
    assert AuditEvent.objects.filter(action="directory.sync_run_discarded", actor=root).exists()
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4


def test_dir_03_two_runs_never_interleave(ldap_directory):
    held, release = threading.Event(), threading.Event()

    def other_run():
        with sync.sync_lock():
            held.set()
            release.wait(10)

    thread = in_thread(other_run)
    assert held.wait(10)
    try:
        with pytest.raises(sync.SyncInProgress):
            sync.sync_directory()
        with pytest.raises(sync.SyncInProgress):
            sync.sync_directory(person="alice")
        with pytest.raises(CommandError, match="already running"):
            call_command("sync_directory")
        assert tasks.sync_directory() is None  # the schedule's run leaves it alone
        assert not DirectorySyncRun.objects.exists()
    finally:
        release.set()
        thread.join()
    assert sync.sync_directory().status == Status.APPLIED


@pytest.mark.django_db(transaction=True)
def test_dir_03_a_run_in_progress_refuses_a_second(ldap_directory, monkeypatch):
    comparing, finish = threading.Event(), threading.Event()
    compare = sync._compare

    def slow_compare(*args):
        comparing.set()
        finish.wait(10)
        compare(*args)

    monkeypatch.setattr(sync, "_compare", slow_compare)
    runs = []
    thread = in_thread(lambda: runs.append(sync.sync_directory()))
    assert comparing.wait(20)
    try:
        with pytest.raises(sync.SyncInProgress):
            sync.sync_directory()
    finally:
        finish.set()
        thread.join()
    assert runs[0].status == Status.APPLIED and runs[0].created == enabled_in(ldap_directory)
    assert DirectorySyncRun.objects.count() == 1


def test_command(ldap_directory):
    from io import StringIO

    out = StringIO()
    call_command("sync_directory", "--dry-run", stdout=out)
    assert "created" in out.getvalue() and "dry run" in out.getvalue()
    assert not User.objects.filter(source="ldap").exists()
    call_command("sync_directory", "--person", "alice", stdout=out)
    assert User.objects.filter(username="alice", source="ldap").exists()
    run = DirectorySyncRun.objects.first()
    assert run.trigger == DirectorySyncRun.Trigger.COMMAND and run.only_person == "alice"


def test_the_task_runs_a_full_sync(ldap_directory):
    run = DirectorySyncRun.objects.get(pk=tasks.sync_directory())
    assert run.trigger == DirectorySyncRun.Trigger.BEAT and run.created == enabled_in(ldap_directory)


def test_scheduled_only_when_a_directory_is_configured():
    code = "from django.conf import settings; print(settings.CELERY_BEAT_SCHEDULE.get('sync-directory'))"

    def schedule(**env):
        import os

        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip().splitlines()[-1]

    assert schedule(LDAP_SERVER_URIS="") == "None"
    assert "seconds=2700" in schedule(LDAP_SERVER_URIS="ldaps://ldap.example.edu", DIRECTORY_SYNC_MINUTES="45")


def test_mapped_roles_and_vpn_group_compare_in_the_database(ldap_directory, settings):
    """With roles and the VPN group mapped, an unchanged rerun changes nobody; a role or VPN access changed here, or a
    group joined in the directory, makes that person (and only them) a mover, put back in line."""
    settings.LDAP_ROLE_GROUPS = {tree.HELPDESK_GROUP: "Help desk", tree.AUDITORS_GROUP: "Auditor"}
    settings.LDAP_VPN_GROUP = tree.VPN_GROUP
    sync.sync_directory()
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    assert set(alice.groups.values_list("name", flat=True)) == {"Help desk"}
    assert alice.vpn_access == User.VpnAccess.APPROVED
    assert set(bob.groups.values_list("name", flat=True)) == {"Auditor"}

    run = sync.sync_directory()
    assert run.unchanged == run.read and run.updated == 0

    bob.groups.clear()  # changed here: the directory puts it back
    User.objects.filter(pk=alice.pk).update(vpn_access=User.VpnAccess.REVOKED)
    run = sync.sync_directory()
    assert run.updated == 2 and run.unchanged == run.read - 2
    assert set(bob.groups.values_list("name", flat=True)) == {"Auditor"}
    assert User.objects.get(pk=alice.pk).vpn_access == User.VpnAccess.APPROVED

    ldap_directory.add_to_group(f"uid=bob,{tree.PEOPLE}", tree.HELPDESK_GROUP)
    try:
        run = sync.sync_directory()
        assert run.updated == 1 and run.unchanged == run.read - 1
        assert set(bob.groups.values_list("name", flat=True)) == {"Auditor", "Help desk"}
        assert AuditEvent.objects.filter(action="directory.role_granted", subject=bob).exists()
    finally:
        ldap_directory.remove_from_group(f"uid=bob,{tree.PEOPLE}", tree.HELPDESK_GROUP)


@pytest.mark.postgres
def test_movers_cost_queries_per_batch_not_per_person(ldap_directory, monkeypatch):
    """At two numbers of movers: a sync that moves them asks the database a few queries per batch of movers (locked
    in one query, written in one statement, audited in one), none per person. PostgreSQL: elsewhere the audit append and the write go a row at a time."""
    monkeypatch.setattr(sync, "BATCH", 20)
    batches = lambda count: -(-count // sync.BATCH)  # noqa: E731
    added = [ldap_directory.add_person(person(f"mover{i:02d}")) for i in range(60)]
    sync.sync_directory()

    def moving(movers) -> int:
        for mover in movers:
            ldap_directory.modify(mover.dn, departmentNumber="Oncology", sn="Moved")
        with CapturedStatements(connection) as queries:
            run = sync.sync_directory()
        assert run.status == Status.APPLIED and run.error_text == ""
        assert (run.updated, run.created, run.unchanged) == (len(movers), 0, run.read - len(movers))
        return len(queries)

    small, big = moving(added[:10]), moving(added[10:])
    assert User.objects.filter(username__startswith="mover", department="Oncology", last_name="Moved").count() == 60
    assert AuditEvent.objects.filter(action="directory.person_updated", subject__username="mover42").count() == 1
    # The index on the staging table's order, made once it holds more than a batch, is the 1.
    assert big - small == PER_MOVERS_BATCH * (batches(50) - batches(10)) + 1 < 50 - 10, (small, big)
    # 16: the run's own rows, the lock, the staging and compare (its SET LOCAL in a savepoint here), the plan's reads,
    # runs a killed process left running.
    assert small <= 16 + PER_MOVERS_BATCH * batches(10), (small, big)


# What each batch of movers costs: its read from the staging table, a savepoint and its release, the lock, the
# write, the audit append.
PER_MOVERS_BATCH = 6


def test_dir_06_a_mover_s_new_email_through_the_sync_tells_both_addresses(ldap_directory):
    from devices.models import OutboundMessage

    yann = ldap_directory.add_person(person("yann"))
    sync.sync_directory()
    ldap_directory.modify(yann.dn, mail="y.new@example.edu")
    assert sync.sync_directory().updated == 1
    told = OutboundMessage.objects.filter(user__username="yann", template="notice:person.email_changed")
    assert sorted(told.values_list("recipient", flat=True)) == ["y.new@example.edu", "yann@example.edu"]
    (changed,) = AuditEvent.objects.filter(action="person.email_changed", subject__username="yann")
    assert (changed.details["from"], changed.details["to"]) == ("yann@example.edu", "y.new@example.edu")


def test_a_joiner_whose_institution_id_is_another_account_s_is_a_conflict_and_changes_nothing(
    ldap_directory, make_user, monkeypatch
):
    """The compare tells which new entries' institution IDs are held (here a local account's and a SCIM person's):
    those go one by one and end as conflicts; the others are joiners in bulk, and nothing is rolled back."""
    from identity.directory import people
    from identity.directory.records import DirectoryRecord

    local = make_user("yann", email="yann.local@example.edu")
    people.apply_record(DirectoryRecord(source="scim", directory_id="scim-zoe", institution_id="zoe"), origin={})
    scim_zoe = User.objects.get(username="zoe")
    ldap_directory.add_person(person("yann"))
    ldap_directory.add_person(person("zoe"))
    mark = AuditEvent.objects.latest("sequence").sequence
    one_by_one = []
    apply_record = people.apply_record
    monkeypatch.setattr(
        people, "apply_record", lambda r, **kw: one_by_one.append(r.institution_id) or apply_record(r, **kw)
    )
    run = sync.sync_directory()
    assert sorted(one_by_one) == ["yann", "zoe"]  # no batch went one by one
    assert run.errors == 2 and run.created == enabled_in(ldap_directory) - 2
    assert "yann" in run.error_text and "a local account" in run.error_text
    assert "another directory entry's person" in run.error_text
    local.refresh_from_db()
    assert (local.source, local.email, local.directory_id) == ("local", "yann.local@example.edu", "")
    assert User.objects.get(pk=scim_zoe.pk).source == "scim"
    assert not AuditEvent.objects.filter(subject__in=[local, scim_zoe], sequence__gt=mark).exists()
    created = AuditEvent.objects.filter(action="directory.person_created", sequence__gt=mark)
    assert created.count() == run.created


def test_a_person_created_between_the_compare_and_the_insert_sends_that_batch_one_by_one(ldap_directory, monkeypatch):
    """The joiners' insert is optimistic: a SCIM call that creates one of them after the compare makes it meet the
    unique index; that batch is rolled back and applied one by one, the counts right."""
    from identity.directory import people
    from identity.directory.records import DirectoryRecord

    ldap_directory.add_person(person("yann"))
    compare, apply_record = sync._compare, people.apply_record

    def compare_then_create(*args):
        compare(*args)
        apply_record(DirectoryRecord(source="scim", directory_id="scim-yann", institution_id="yann"), origin={})

    monkeypatch.setattr(sync, "_compare", compare_then_create)
    one_by_one = []
    monkeypatch.setattr(
        people, "apply_record", lambda r, **kw: one_by_one.append(r.institution_id) or apply_record(r, **kw)
    )
    run = sync.sync_directory()
    assert run.status == Status.APPLIED
    assert run.errors == 1 and "yann" in run.error_text and "another directory entry's person" in run.error_text
    assert run.created == enabled_in(ldap_directory) - 1
    assert "yann" in one_by_one and len(one_by_one) == run.created + 1  # the whole batch (one, at this size)
    assert User.objects.get(username="yann").source == "scim"
    assert User.objects.filter(source="ldap").count() == run.created
    assert AuditEvent.objects.filter(action="directory.person_created").count() == run.created + 1


def test_a_value_longer_than_its_column_is_that_person_s_error_and_the_sync_goes_on(ldap_directory):
    long = ldap_directory.add_person(tree.Person("yann", "Yann", "Tester", "yann@example.edu", "D" * 201))
    for _ in range(2):
        run = sync.sync_directory()
        assert run.status == Status.APPLIED and run.errors == 1
        assert "yann" in run.error_text and "at most 200 fit here" in run.error_text
    assert run.created == 0 and not User.objects.filter(username="yann").exists()
    ldap_directory.modify(long.dn, departmentNumber="Oncology")
    assert sync.sync_directory().created == 1


def test_the_garbage_collector_is_paused_while_the_directory_is_read_and_runs_again_after(ldap_directory, monkeypatch):
    """Its walks over every object of the process cost up to a quarter of an unchanged rerun (bench/README.md)."""
    import gc

    enabled_while_read = []
    entries = LDAPReader.entries

    def watched(self):
        for entry in entries(self):
            enabled_while_read.append(gc.isenabled())
            yield entry

    monkeypatch.setattr(LDAPReader, "entries", watched)
    assert sync.sync_directory().status == Status.APPLIED
    assert enabled_while_read and not any(enabled_while_read)
    assert gc.isenabled()
    ldap_directory.stop()  # a read that fails partway
    assert sync.sync_directory().status == Status.FAILED
    assert gc.isenabled()
