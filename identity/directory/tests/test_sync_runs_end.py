"""A directory sync run always ends, once, and says how: the tasks' own time limits, any error recorded as a failed
run (saying whether anyone was changed), one decision per held run (apply or discard), the apply queued to the
worker and audited with its outcome, and a "Sync now" that found a run going recorded."""

import os
import signal
import threading
import time
from contextlib import contextmanager

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import before_task_publish
from django.db import DataError, connection
from django.db.models import F
from prometheus_client import REGISTRY

from config.celery import app
from identity import events
from identity.directory import background, people, sync, tasks
from identity.directory.ldap_source import LDAPReader
from identity.directory.models import DirectorySyncRun
from identity.models import AuditEvent, User
from testsupport import wait_for

from .test_sync import four_leave, in_thread  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

Status = DirectorySyncRun.Status


@pytest.fixture
def root(make_user):
    return make_user("root", is_superuser=True, is_staff=True)


@pytest.fixture
def held(four_leave, settings):  # noqa: F811
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    run = sync.sync_directory()
    assert run.status == Status.HELD
    return run


@contextmanager
def lock_held_elsewhere():
    """Another run holds the sync's lock (in a thread of its own) while the block runs."""
    locked, release = threading.Event(), threading.Event()

    def other_run():
        with sync.sync_lock():
            locked.set()
            release.wait(20)

    thread = in_thread(other_run)
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()


def still_active(usernames) -> int:
    return User.objects.filter(username__in=usernames, is_active=True).count()


# 1. Their own time limits ----------------------------------------------------------------------------------------


def test_the_directory_tasks_carry_their_own_time_limits_not_the_outboxs_minute(settings):
    # Celery writes a task's limits into its message where it is dispatched; the worker applies those.
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < 120 < settings.DIRECTORY_SYNC_TIME_LIMIT
    sent = []

    def keep(sender=None, headers=None, **kwargs):
        sent.append((sender, tuple(headers["timelimit"])))

    before_task_publish.connect(keep)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        tasks.sync_directory.delay()
        tasks.retire_devices_of_leavers.delay()
        tasks.apply_held_run.delay(run_id=0, actor_id=0)
    finally:
        app.conf.task_always_eager = eager
        before_task_publish.disconnect(keep)
        with app.connection_for_write() as broker:
            app.control.purge(connection=broker)
    limit = settings.DIRECTORY_SYNC_TIME_LIMIT
    assert [limits for _, limits in sent] == [(limit + 60, limit)] * 3


def worker_env(directory) -> dict[str, str]:
    """The worker's environment for the test's slapd: its settings as variables, and the other tasks' limit (the
    outbox's) cut to one second, far below what a directory read paused for three seconds takes."""
    env = {
        name: ",".join(value)
        if isinstance(value, list)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
        for name, value in directory.settings().items()
    }
    return {**env, "LDAP_TIMEOUT_SECONDS": "30", "OUTBOX_SEND_TIME_LIMIT_SECONDS": "1"}


@contextmanager
def directory_paused(directory, seconds: float):
    """slapd stopped (SIGSTOP) for ``seconds`` once the block has run: a directory slow to answer."""
    try:
        yield
        os.kill(directory.process.pid, signal.SIGSTOP)
        time.sleep(seconds)
    finally:
        os.kill(directory.process.pid, signal.SIGCONT)


def last_run_ended() -> DirectorySyncRun | None:
    return DirectorySyncRun.objects.exclude(status=Status.RUNNING).filter(trigger="beat").first()


PREFORK = ("--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat")


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_in_the_worker_a_sync_longer_than_the_other_tasks_limit_runs_to_its_end(ldap_directory, start_worker):
    # The other tasks' limits cut to a second, where they are dispatched (here) and in the worker.
    limits = app.conf.task_soft_time_limit, app.conf.task_time_limit
    start_worker(*PREFORK, **worker_env(ldap_directory))  # prefork: the pool enforces time limits
    app.conf.task_soft_time_limit, app.conf.task_time_limit = 1, 5
    try:
        with directory_paused(ldap_directory, 3):
            tasks.sync_directory.delay()
    finally:
        app.conf.task_soft_time_limit, app.conf.task_time_limit = limits
    run = wait_for(last_run_ended, timeout=60)
    assert run.status == Status.APPLIED and run.created > 0, run.error_text


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_in_the_worker_a_sync_stopped_by_its_time_limit_is_recorded_failed(ldap_directory, start_worker, monkeypatch):
    # Celery writes the limits into the message where it is dispatched (here): a one-second limit for this run.
    for name, value in [("soft_time_limit", 1), ("time_limit", 20), ("_exec_options", None)]:
        monkeypatch.setattr(tasks.sync_directory, name, value)
    start_worker(*PREFORK, **worker_env(ldap_directory))
    with directory_paused(ldap_directory, 3):
        tasks.sync_directory.delay()
    run = wait_for(last_run_ended, timeout=60)
    assert run.status == Status.FAILED and run.finished_at is not None
    assert "DIRECTORY_SYNC_TIME_LIMIT" in run.error_text and "Nobody was changed." in run.error_text
    assert not User.objects.filter(source="ldap").exists()


# 2. Any error ends the run failed, saying whether anyone changed -------------------------------------------------


def _failed_runs() -> float:
    return REGISTRY.get_sample_value("enrollment_directory_syncs_total", {"status": "failed"}) or 0.0


def test_dir_03_a_run_stopped_by_its_time_limit_while_reading_fails_and_changes_nobody(ldap_directory, monkeypatch):
    sync.sync_directory()
    failures = _failed_runs()

    def stopped(self):
        yield from ()
        raise SoftTimeLimitExceeded

    monkeypatch.setattr(LDAPReader, "entries", stopped)
    with pytest.raises(SoftTimeLimitExceeded):
        sync.sync_directory()
    run = DirectorySyncRun.objects.first()
    assert run.status == Status.FAILED and run.finished_at is not None
    assert "DIRECTORY_SYNC_TIME_LIMIT" in run.error_text and "Nobody was changed." in run.error_text
    assert _failed_runs() == failures + 1


def test_dir_03_a_run_failing_while_applying_says_who_was_changed_already(four_leave, monkeypatch):  # noqa: F811
    deactivate, calls = people.deactivate_person, []

    def fails_on_the_second(user, **kwargs):
        if kwargs["reason"] == sync.LEFT:  # the leavers, after the rest was applied
            calls.append(user.username)
        if len(calls) == 2:
            raise DataError("value too long for type character varying(150)")
        return deactivate(user, **kwargs)

    monkeypatch.setattr(people, "deactivate_person", fails_on_the_second)
    with pytest.raises(DataError):
        sync.sync_directory()
    run = DirectorySyncRun.objects.first()
    assert run.status == Status.FAILED and run.finished_at is not None
    # Yann and Zoe (disabled) and the first leaver were changed before it stopped; the run says so.
    assert still_active(four_leave) == 1
    assert "DataError" in run.error_text and "3 people were changed before it" in run.error_text
    assert "The next run applies the rest." in run.error_text


def test_a_run_whose_process_was_killed_is_ended_failed_by_the_next(ldap_directory):
    # What a worker killed at the hard time limit leaves: a run "running" that nothing will finish.
    killed = DirectorySyncRun.objects.create(trigger="beat")
    run = sync.sync_directory()
    killed.refresh_from_db()
    assert run.status == Status.APPLIED
    assert (killed.status, killed.finished_at is not None) == (Status.FAILED, True)
    assert "Its process ended before the run did" in killed.error_text and "Nobody was changed." in killed.error_text


def test_a_claimed_run_nobody_applies_is_ended_failed_by_a_later_run_after_the_hour(held, root, four_leave):  # noqa: F811
    claimed = sync.claim_held_run(held, actor=root)
    # While its task may still be waiting for the lock, a later run (the desk's one-person sync here) leaves it.
    sync.sync_directory(person="alice")
    claimed.refresh_from_db()
    assert (claimed.status, claimed.finished_at) == (Status.RUNNING, None)
    # Its worker was killed at the hard time limit partway through applying (one person changed by then), and an
    # hour has passed since the decision: nothing will finish it.
    people.deactivate_person(User.objects.get(username="wim"), reason=sync.LEFT, origin={"sync_run": claimed.pk})
    DirectorySyncRun.objects.filter(pk=claimed.pk).update(
        decided_at=F("decided_at") - sync.APPLY_WAIT - sync.APPLY_MARGIN
    )
    assert sync.sync_directory(person="alice").status == Status.APPLIED
    claimed.refresh_from_db()
    assert claimed.status == Status.FAILED and claimed.finished_at is not None
    assert "an hour after a superuser decided to apply it" in claimed.error_text
    assert "1 person was changed before it and stays changed" in claimed.error_text
    assert claimed.deactivated == 0 and still_active(four_leave) == 3
    event = AuditEvent.objects.get(action="directory.sync_run_applied")
    assert (event.actor, event.details["sync_run"], event.details["sync_outcome"]) == (root, claimed.pk, "failed")
    # Its task, if it comes after all, applies nothing.
    assert tasks.apply_held_run(run_id=claimed.pk, actor_id=root.pk) is None
    assert still_active(four_leave) == 3


# 3. One decision per held run ------------------------------------------------------------------------------------


DECISIONS = {
    "apply": sync.apply_held_run,
    "queue the apply": background.request_apply,
    "discard": sync.discard_held_run,
}


@pytest.mark.parametrize(
    "first, second, status, active, never",
    [
        ("apply", "discard", Status.APPLIED, 0, "directory.sync_run_discarded"),
        ("discard", "apply", Status.DISCARDED, 4, "directory.sync_run_applied"),
        ("discard", "queue the apply", Status.DISCARDED, 4, "directory.sync_run_applied"),
    ],
)
def test_dir_03_of_two_decisions_one_after_the_other_the_first_wins(
    held,
    root,
    four_leave,  # noqa: F811
    first,
    second,
    status,
    active,
    never,
):
    stale = DirectorySyncRun.objects.get(pk=held.pk)  # a page opened before the first decision
    DECISIONS[first](held, actor=root)
    with pytest.raises(sync.SyncNotAllowed, match="no longer held"):
        DECISIONS[second](stale, actor=root)
    held.refresh_from_db()
    assert (held.status, still_active(four_leave)) == (status, active)
    assert not AuditEvent.objects.filter(action=never).exists()


def test_dir_03_a_claimed_run_being_applied_cannot_be_discarded(held, root, four_leave):  # noqa: F811
    claimed = sync.claim_held_run(held, actor=root)
    assert (claimed.status, claimed.decided_by) == (Status.RUNNING, root)
    with pytest.raises(sync.SyncNotAllowed):
        sync.discard_held_run(held, actor=root)
    assert sync.apply_claimed_run(claimed, actor=root).status == Status.APPLIED
    with pytest.raises(sync.SyncNotAllowed):  # a repeated message applies nothing twice
        sync.apply_claimed_run(claimed, actor=root)
    assert tasks.apply_held_run(run_id=held.pk, actor_id=root.pk) is None
    assert AuditEvent.objects.filter(action="directory.sync_run_applied").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("repeat", range(3))
def test_dir_03_two_decisions_at_once_one_wins(held, make_user, four_leave, repeat):  # noqa: F811
    roots = [make_user(f"root{n}", is_superuser=True, is_staff=True) for n in (1, 2)]
    start, outcomes = threading.Barrier(2), {}

    def decide(name, decision, actor):
        def work():
            run = DirectorySyncRun.objects.get(pk=held.pk)  # each read it held
            start.wait(10)
            try:
                outcomes[name] = decision(run, actor=actor).status
            except sync.SyncNotAllowed:
                outcomes[name] = "refused"

        return work

    threads = [
        in_thread(decide("apply", sync.claim_held_run, roots[0])),
        in_thread(decide("discard", sync.discard_held_run, roots[1])),
    ]
    for thread in threads:
        thread.join(20)
    assert sorted(outcomes.values()) in (["refused", Status.RUNNING], [Status.DISCARDED, "refused"])
    held.refresh_from_db()
    winner = roots[0] if outcomes["apply"] != "refused" else roots[1]
    assert held.decided_by == winner
    assert held.status == (Status.RUNNING if winner == roots[0] else Status.DISCARDED)
    decided = AuditEvent.objects.filter(action="directory.sync_run_discarded").count()
    assert decided == (winner == roots[1])
    connection.close()


# 4 and 6. Applied by the worker, audited after, with the outcome ---------------------------------------------------


def test_apply_is_queued_to_the_worker_and_audited_with_its_outcome(
    held,
    root,
    four_leave,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks() as queued:
        run = background.request_apply(held, actor=root)
    # Decided at once (a Discard now is refused); nothing applied or audited until the worker runs it.
    assert (run.status, run.decided_by) == (Status.RUNNING, root) and len(queued) == 1
    assert still_active(four_leave) == 4
    assert not AuditEvent.objects.filter(action="directory.sync_run_applied").exists()
    queued[0]()
    run.refresh_from_db()
    assert (run.status, run.deactivated) == (Status.APPLIED, 4) and still_active(four_leave) == 0
    event = AuditEvent.objects.get(action="directory.sync_run_applied")
    assert event.details == event.details | {
        "sync_run": run.pk,
        "sync_outcome": "applied",
        "deactivated": 4,
        "would_deactivate": 4,
    }
    # After the people it deactivated: the decision's outcome, not its intent.
    last_deactivation = AuditEvent.objects.filter(action="directory.person_deactivated").latest("sequence")
    assert event.sequence > last_deactivation.sequence
    assert events.describe(event.action, event.details).startswith(
        "A held directory sync was applied: done; 4 deactivated"
    )


def test_a_claimed_run_waits_for_the_lock_and_gives_up_after_an_hour(held, root, four_leave, monkeypatch):  # noqa: F811
    claimed = sync.claim_held_run(held, actor=root)
    monkeypatch.setattr(tasks, "MAX_RETRIES", 2)
    monkeypatch.setattr(tasks.apply_held_run, "max_retries", 2)
    with lock_held_elsewhere():
        tasks.apply_held_run.apply(kwargs={"run_id": claimed.pk, "actor_id": root.pk})
    claimed.refresh_from_db()
    assert claimed.status == Status.FAILED and "held the lock" in claimed.error_text
    assert still_active(four_leave) == 4
    event = AuditEvent.objects.get(action="directory.sync_run_applied")
    assert event.details["sync_outcome"] == "failed"


# 7. "Sync now" that found a run going, or a requester no longer allowed ------------------------------------------


def test_a_requested_sync_that_finds_a_run_going_is_audited(ldap_directory, root):
    with lock_held_elsewhere():
        assert tasks.sync_directory(actor_id=root.pk) is None
    assert not DirectorySyncRun.objects.exists()
    event = AuditEvent.objects.get(action="directory.sync_request_refused")
    assert event.actor == root and "another sync was running" in events.describe(event.action, event.details)


def test_a_requester_who_is_no_longer_a_superuser_is_refused_in_the_worker(ldap_directory, root):
    User.objects.filter(pk=root.pk).update(is_superuser=False)
    assert tasks.sync_directory(actor_id=root.pk) is None
    assert not DirectorySyncRun.objects.exists()
