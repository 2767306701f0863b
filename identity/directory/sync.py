"""The LDAP sync: joiners, movers and leavers from the directory, through the people service, with DIR-03's guards.

    run = sync_directory()                        # everyone; returns the DirectorySyncRun
    run = sync_directory(person="jdoe")           # one person: never deactivates anyone else
    run = sync_directory(dry_run=True)            # counts only: nobody changes

A run **reads everything first** (every page under every synced base, each entry written to a temporary table with
``COPY`` while the next page is on its way) and compares it with the people here in SQL, in one statement: an entry
that changes nothing costs no Python beyond its row, and nothing is kept in memory but the batch being applied.
Only when the whole directory was read does anyone change:

- a read that fails partway (a server down, a timeout, a size limit, a page refused) marks the run ``failed``
  and changes nobody;
- any other error (the task's time limit, a database error, a person deleted meanwhile) also ends the run
  ``failed``, with a sentence, and is raised again; once the apply phase has begun (it is batched, each person's
  change whole), what was applied before the error stays applied, and the run's error text says how many people
  that was (counted from the audit events that name the run);
- a read that returns nobody deactivates nobody (``failed`` too when people here would have left);
- a run that would deactivate more than DIRECTORY_MAX_DEACTIVATIONS people, or more than
  DIRECTORY_MAX_DEACTIVATION_PERCENT of the directory's active people here, is ``held``: nothing is applied, and
  a superuser applies (:func:`apply_held_run`) or discards (:func:`discard_held_run`) it, audited (a dry run is
  never held: its error text says a run would be);
- two runs never interleave: a run holds a lock (PostgreSQL: a session advisory lock; SQLite, one process: a
  process lock) from before its read to after its last change; a second run meanwhile is refused
  (:class:`SyncInProgress`), never queued: the schedule tries again, a person retries.

Each change goes through :mod:`identity.directory.people` with ``origin={"sync_run": run.pk}``, routed by what the
compare found: new entries whose institution ID nobody holds to ``create_people``, changed ones likewise to
``update_people`` (both in bulk), the rest (leavers, returns, conflicts) to ``apply_record`` one by one, leavers no
longer in the directory to ``deactivate_person``: the same rules and audit events as SCIM's. An entry whose
password-changed stamp (LDAP_ATTRIBUTES' ``password_changed``) differs from the one stored is a change too: the
people service ends that person's sessions (``apply_password_change``); a first stamp is only stored, in one
statement. A run with nothing to change writes no row but its own.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from .. import audit, metrics
from ..models import AuditEvent, User
from . import people
from .ldap_source import DirectoryReadError, Entry, LDAPReader
from .models import COUNTS, DirectorySyncRun
from .records import DirectoryRecord

log = logging.getLogger(__name__)

# pg_try_advisory_lock's key: the sync's own number, "DIRSYNC" in ASCII.
LOCK_KEY = 0x44495253594E43
_process_lock = threading.Lock()
# How many entries are compared with the database in one query.
BATCH = 1000
LEFT = "not found under the synced bases and groups"
# The compare's memory for its hash join: 100,000 people take about 8 MB of it; a million about 80.
JOIN_WORK_MEM = "128MB"


class SyncInProgress(Exception):
    """Another sync is running: this one was refused before it read or changed anything."""

    def __init__(self):
        super().__init__("A directory sync is already running; try again when it has finished.")


class SyncNotAllowed(ValidationError):
    pass


@contextmanager
def sync_lock() -> Iterator[None]:
    """Hold the sync's lock or raise :class:`SyncInProgress` at once.

    PostgreSQL: a session-level advisory lock on this connection, released by the server if the process dies, so a
    crashed run never blocks the next. SQLite (the embedded default, one process): a lock in this process.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        if not _process_lock.acquire(blocking=False):
            raise SyncInProgress
        try:
            yield
        finally:
            _process_lock.release()
        return
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            raise SyncInProgress
    try:
        yield
    finally:
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def sync_directory(
    *, person: str | None = None, dry_run: bool = False, actor: User | None = None, trigger: str | None = None
) -> DirectorySyncRun:
    """Run the sync (everyone, or the one institution ID ``person``) and return its finished run.

    ``actor`` is the person who asked (the admin's buttons); ``trigger`` says how it was started (defaults: a user
    when there is an actor, else the command). A failed read is recorded in the run (``failed``), not raised; any
    other error is recorded the same way and then raised again. Raises :class:`SyncInProgress` when another run
    holds the lock (no run is recorded then).
    """
    trigger = trigger or (DirectorySyncRun.Trigger.USER if actor is not None else DirectorySyncRun.Trigger.COMMAND)
    if actor is not None:
        check_requester(actor, person)
    with sync_lock():
        run = DirectorySyncRun.objects.create(
            trigger=trigger, triggered_by=actor, dry_run=dry_run, only_person=person or ""
        )
        if actor is not None:
            audit.record(
                "directory.sync_requested",
                actor=actor,
                subject=User.objects.filter(username=person).first() if person else None,
                details={"sync_run": run.pk, **({"person": person} if person else {})},
            )
        with _failure_recorded(run):
            _end_orphans(run)
            if person:
                return _sync_one(run, person)
            return _sync_all(run)


def record_refused_request(*, actor: User) -> None:
    """A person's queued "Sync now" that found another run holding the lock: nothing ran, and the audit log says so
    (``directory.sync_request_refused``), since nobody is there to be told."""
    audit.record("directory.sync_request_refused", actor=actor, details={"reason": str(SyncInProgress())})


def check_requester(actor: User, person: str | None) -> None:
    if actor.is_superuser:
        return
    if person is None:
        raise SyncNotAllowed("Only a superuser starts a sync of everyone.")
    if not actor.has_perm("directory.sync_person"):
        raise SyncNotAllowed("You may not sync people from the directory.")


def apply_held_run(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """A superuser's decision to apply a held run, applied at once: :func:`claim_held_run`, then
    :func:`apply_claimed_run`, under one hold of the lock. Raises what they raise."""
    _check_decider(actor)
    with sync_lock():
        return _apply_claimed(claim_held_run(run, actor=actor), actor)


def claim_held_run(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """The decision to apply a held run: one conditional update moves it from held to running, recording who
    decided and when, so of two decisions on one run (apply or discard, at once or one after the other) exactly one
    wins. The run is applied by :func:`apply_claimed_run` (the worker's task). Raises :class:`SyncNotAllowed` for
    anyone but a superuser, or when the run is not held (any more)."""
    _check_decider(actor)
    claimed = DirectorySyncRun.objects.filter(pk=run.pk, status=DirectorySyncRun.Status.HELD, dry_run=False).update(
        status=DirectorySyncRun.Status.RUNNING, decided_by=actor, decided_at=timezone.now(), finished_at=None
    )
    if not claimed:
        raise SyncNotAllowed(NOT_HELD)
    run.refresh_from_db()
    return run


def apply_claimed_run(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """Apply a held run that ``actor`` claimed (:func:`claim_held_run`): the directory is read again and applied,
    deactivating at most the people the held run listed beyond the guard's limits (someone new to deactivate past
    the limits holds the run again, with the new list). Audits ``directory.sync_run_applied`` afterwards, with the
    run's outcome (an error is recorded as a failed run, audited, and raised again). Raises
    :class:`SyncInProgress` while another run holds the lock, :class:`SyncNotAllowed` when the run is not (any
    more) claimed by ``actor`` and unfinished: applied already, or decided otherwise."""
    with sync_lock():
        run.refresh_from_db()
        claimed = run.status == DirectorySyncRun.Status.RUNNING and run.finished_at is None
        if not claimed or run.decided_by_id != actor.pk:
            raise SyncNotAllowed("This run is not waiting to be applied.")
        return _apply_claimed(run, actor)


def _apply_claimed(run: DirectorySyncRun, actor: User) -> DirectorySyncRun:
    approved = {entry["id"] for entry in run.would_deactivate}
    run.error_text, run.read = "", 0
    for name in COUNTS:
        setattr(run, name, 0)
    try:
        with _failure_recorded(run):
            run = _sync_all(run, approved=approved)
    finally:
        if run.status != DirectorySyncRun.Status.RUNNING:
            _audit_applied(run, actor, approved)
    return run


def give_up_claimed_run(run: DirectorySyncRun, *, actor: User, reason: str) -> DirectorySyncRun:
    """End a claimed run that could not be applied, or not to the end (``reason``, a sentence), failed; the error
    text adds whether anyone was changed by it. Audited ``directory.sync_run_applied`` with that outcome. Does
    nothing to a run no longer waiting. The caller must know that no process is applying the run (the lock)."""
    with transaction.atomic():
        run = DirectorySyncRun.objects.select_for_update().get(pk=run.pk)
        if run.status != DirectorySyncRun.Status.RUNNING or run.finished_at is not None:
            return run
        for name in COUNTS:
            setattr(run, name, 0)
        error = _stopped_in_words(run, None, why=reason.rstrip("."))
        run = _finish(run, DirectorySyncRun.Status.FAILED, _Plan(), error=error)
        _audit_applied(run, actor, {entry["id"] for entry in run.would_deactivate})
    return run


def _audit_applied(run: DirectorySyncRun, actor: User, approved: set[int]) -> None:
    audit.record(
        "directory.sync_run_applied",
        actor=actor,
        details={
            "sync_run": run.pk,
            "sync_outcome": run.status,
            "would_deactivate": len(approved),
            **{name: getattr(run, name) for name in ("read", *COUNTS)},
        },
    )


NOT_HELD = "This run is no longer held: it was applied or discarded already."
# How long a held run a superuser decided to apply waits for the lock (its task retries meanwhile), at most.
APPLY_WAIT = timedelta(hours=1)
# Past APPLY_WAIT its task gives up at its next try (tasks.apply_held_run); a try already queued runs within minutes.
APPLY_MARGIN = timedelta(minutes=10)
ABANDONED = (
    "It was still being applied an hour after a superuser decided to apply it, with no process applying it (its "
    "worker stopped at the time limit's hard stop, the machine restarted, or its task lost)"
)


def discard_held_run(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """A superuser's decision not to apply a held run: nobody changes. One conditional update, so it refuses a run
    that is no longer held (applied, being applied, or discarded). Audits ``directory.sync_run_discarded``."""
    _check_decider(actor)
    with transaction.atomic():
        updated = DirectorySyncRun.objects.filter(pk=run.pk, status=DirectorySyncRun.Status.HELD, dry_run=False).update(
            status=DirectorySyncRun.Status.DISCARDED, decided_by=actor, decided_at=timezone.now()
        )
        if not updated:
            raise SyncNotAllowed(NOT_HELD)
        audit.record(
            "directory.sync_run_discarded",
            actor=actor,
            details={"sync_run": run.pk, "would_deactivate": len(run.would_deactivate)},
        )
    run.refresh_from_db()
    return run


def _check_decider(actor: User | None) -> None:
    if actor is None or not actor.is_superuser:
        raise SyncNotAllowed("Only a superuser applies or discards a held directory sync.")


@contextmanager
def _failure_recorded(run: DirectorySyncRun) -> Iterator[None]:
    """Any error but a failed read (which the run records itself) ends ``run`` failed, with a sentence that says
    whether anyone was changed before it, and is raised again: a run never stays "running"."""
    try:
        yield
    except Exception as error:
        try:
            _finish(run, DirectorySyncRun.Status.FAILED, _Plan(read=run.read), error=_stopped_in_words(run, error))
        except Exception:  # a connection the error broke: the original error is the one to raise
            log.exception("directory sync run %s: its failure could not be recorded", run.pk)
        raise


def _why_stopped(error: Exception | None) -> str:
    if error is None:
        return "Its process ended before the run did (killed at the time limit's hard stop, or the machine restarted)"
    if isinstance(error, SoftTimeLimitExceeded):
        return "It ran past its time limit (DIRECTORY_SYNC_TIME_LIMIT) and was stopped"
    detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"It stopped on an unexpected error ({type(error).__name__}{': ' + detail if detail else ''})"


def _stopped_in_words(run: DirectorySyncRun, error: Exception | None, *, why: str = "") -> str:
    """Why ``run`` stopped (``why``, else said from ``error``), and whether it changed anyone before."""
    why = why or _why_stopped(error)
    changed = _people_changed_by(run)
    if not changed:
        return f"{why}. Nobody was changed."
    return (
        f"{why}, partway through applying: {changed} {'person was' if changed == 1 else 'people were'} changed "
        f"before it and {'stays' if changed == 1 else 'stay'} changed. The next run applies the rest."
    )


def _end_orphans(current: DirectorySyncRun) -> None:
    """Runs left "running" by a process that died (a hard time limit kills without a word) end failed: called under
    the lock, so no other run is going. A held run a superuser decided to apply is left to its task while the task
    may still be waiting for the lock (:data:`APPLY_WAIT` after the decision); after that it has none (killed while
    applying, or never queued) and ends failed too, its decision audited with that outcome."""
    running = DirectorySyncRun.objects.filter(status=DirectorySyncRun.Status.RUNNING).exclude(pk=current.pk)
    waited = timezone.now() - APPLY_WAIT - APPLY_MARGIN
    for orphan in running.select_related("decided_by"):
        if orphan.decided_by is None:
            error = _stopped_in_words(orphan, None)
            _finish(orphan, DirectorySyncRun.Status.FAILED, _Plan(read=orphan.read), error=error)
        elif orphan.decided_at is None or orphan.decided_at < waited:
            give_up_claimed_run(orphan, actor=orphan.decided_by, reason=ABANDONED)


def _people_changed_by(run: DirectorySyncRun) -> int:
    """How many people this run changed: every change it makes is audited naming the run (``origin``)."""
    return (
        AuditEvent.objects.filter(
            created_at__gte=run.started_at - timedelta(minutes=5), details__sync_run=run.pk, subject__isnull=False
        )
        .exclude(action="directory.sync_requested")
        .values("subject")
        .distinct()
        .count()
    )


@dataclass
class _Plan:
    """What the read found: counts so far, the people to deactivate, and (in the staging tables) what to apply."""

    read: int = 0
    unchanged: int = 0
    disabling: list[dict] = field(default_factory=list)  # active people here whose entry says disabled
    planned: dict[str, int] = field(default_factory=dict)  # what applying the changed entries would do
    leavers: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # the reader's (dn, reason, stable id)


def _sync_all(run: DirectorySyncRun, *, approved: frozenset[int] | set[int] = frozenset()) -> DirectorySyncRun:
    origin = {"sync_run": run.pk}
    reader = LDAPReader()
    plan = _Plan()
    with _Staging() as staging:
        try:
            with _no_cycle_collection():
                plan.read = staging.load(reader.entries())
        except DirectoryReadError as error:
            plan.read = staging.loaded
            return _finish(run, DirectorySyncRun.Status.FAILED, plan, error=f"Reading the directory failed: {error}")
        plan.skipped = reader.skipped
        here = User.objects.filter(source=User.Source.LDAP, is_active=True)
        if plan.read:
            with staging.joining():
                _compare(staging, plan)
                plan.leavers = staging.leavers()
            if plan.leavers and plan.skipped:
                # An entry the reader skipped is still in the directory: its person is no leaver.
                skipped = _people_of_skipped(plan.skipped)
                plan.leavers = [leaver for leaver in plan.leavers if leaver["id"] not in skipped]
        elif here.exists():
            return _finish(
                run,
                DirectorySyncRun.Status.FAILED,
                plan,
                error="The directory returned nobody: nobody was deactivated (DIR-03).",
            )
        leaving = plan.disabling + plan.leavers
        held = _over_limits([p for p in leaving if p["id"] not in approved], here.count())
        if run.dry_run:
            # A dry run is never held (nobody could apply or discard it): it says so in words.
            would_be = f"A run now would be held: {held}" if held else ""
            return _finish(run, DirectorySyncRun.Status.APPLIED, plan, error=would_be, planned=True)
        if held:
            run.would_deactivate = leaving
            return _finish(
                run,
                DirectorySyncRun.Status.HELD,
                plan,
                error=f"Held: {held} A superuser applies or discards it.",
                planned=True,
            )
        run.would_deactivate = []
        staging.store_first_stamps()
        errors = _apply(run, staging.changed(), origin) if any(plan.planned.values()) else []
    for leaver in plan.leavers:
        user = User.objects.get(pk=leaver["id"])
        if people.deactivate_person(user, reason=LEFT, origin=origin):
            run.deactivated += 1
    return _finish(run, DirectorySyncRun.Status.APPLIED, plan, error="\n".join(errors))


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector paused while the directory is read (gc.disable, restored after).

    Reading makes a tuple, a dictionary and a list per attribute for every entry, a page of them alive at a time,
    and none of them in a cycle: reference counting frees each. The collector still ran every 700 of them, moved the
    page's survivors up its generations and, as they piled up, walked every object of the process (Django's own,
    hundreds of thousands) again and again: with an eighth attribute per entry at 100,000 entries it cost 0.3 to 0.5
    s of the unchanged rerun's 2 (bench/README.md, "The password-changed stamp"). Anything cyclic made meanwhile
    is collected once the collector runs again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _sync_one(run: DirectorySyncRun, institution_id: str) -> DirectorySyncRun:
    plan = _Plan()
    try:
        record = LDAPReader().record_for(institution_id)
    except DirectoryReadError as error:
        return _finish(run, DirectorySyncRun.Status.FAILED, plan, error=f"Reading the directory failed: {error}")
    if record is None:
        # Found nobody: DIR-03's empty result. Whether they left is the next full run's question.
        return _finish(
            run,
            DirectorySyncRun.Status.APPLIED,
            plan,
            error=f"{institution_id} was not found under the synced bases and groups: nobody was changed.",
        )
    with _Staging() as staging:
        plan.read = staging.load([Entry(**{name: getattr(record, name) for name in Entry._fields})])
        _compare(staging, plan)
        if run.dry_run:
            return _finish(run, DirectorySyncRun.Status.APPLIED, plan, planned=True)
        staging.store_first_stamps()
        errors = _apply(run, staging.changed(), {"sync_run": run.pk})
    return _finish(run, DirectorySyncRun.Status.APPLIED, plan, error="\n".join(errors))


def _over_limits(leaving: list[dict], active_here: int) -> str:
    """Why a run that deactivates ``leaving`` must wait for a superuser (a sentence), or "" when it need not."""
    count = len(leaving)
    if count > settings.DIRECTORY_MAX_DEACTIVATIONS:
        return (
            f"it would deactivate {count} people, more than DIRECTORY_MAX_DEACTIVATIONS "
            f"({settings.DIRECTORY_MAX_DEACTIVATIONS})."
        )
    if active_here and count * 100 > settings.DIRECTORY_MAX_DEACTIVATION_PERCENT * active_here:
        return (
            f"it would deactivate {count} of the {active_here} active people from the directory, more than "
            f"DIRECTORY_MAX_DEACTIVATION_PERCENT ({settings.DIRECTORY_MAX_DEACTIVATION_PERCENT:g}%)."
        )
    return ""


def _people_of_skipped(skipped: list[tuple[str, str, str]]) -> set[int]:
    """The people here of the entries the reader skipped (no institution ID or stable ID): by the entry's stable ID
    when it has one, else by its DN. Their entries are in the directory, so they are no leavers of the run (which
    names each skipped entry as an error)."""
    stable = [stable_id for _, _, stable_id in skipped if stable_id]
    dns = [dn for dn, _, stable_id in skipped if not stable_id]
    from_directory = User.objects.filter(source=User.Source.LDAP)
    found: set[int] = set()
    for name, values in (("directory_id", stable), ("directory_dn", dns)):
        for start in range(0, len(values), BATCH):
            chosen = from_directory.filter(**{f"{name}__in": values[start : start + BATCH]})
            found.update(chosen.values_list("pk", flat=True))
    return found


def _compare(staging: _Staging, plan: _Plan) -> None:
    """Compare the staged entries with the people here, in the database: what applying each would do, counted into
    ``plan``; the active people whose entry says disabled listed in ``plan.disabling``."""
    staging.compare()
    # An entry that changes nothing is not kept; nor does a disabled entry never seen before create anybody.
    plan.planned = {outcome: count for outcome, count in staging.outcomes().items() if outcome != people.UNCHANGED}
    plan.unchanged = plan.read - sum(plan.planned.values())
    if plan.planned.get(people.DEACTIVATED):
        plan.disabling = staging.disabling()


class _Staging:
    """The run's entries in temporary tables of the sync's database connection, compared with the people here in
    SQL: an entry that would change nothing costs its row in a ``COPY`` and nothing else in Python.

    ``load`` writes the entries as they are read (the directory's next page is on its way meanwhile); ``compare``
    keeps the entries that differ from their person (or have none) with what applying them would do; ``outcomes``,
    ``disabling`` and ``leavers`` read the plan; ``changed`` gives the records to apply, a batch at a time. The
    tables are this connection's alone and dropped on the way out. The rule of what "the same" means lives only in
    :meth:`compare`'s statement: the single-person run and the full run both go through it.
    """

    ENTRIES, ROLES, CHANGED = "directory_sync_entry", "directory_sync_entry_role", "directory_sync_changed"
    # A changed entry whose person has no password-changed stamp stored yet, and the entry brings one.
    FIRST_STAMP = "person IS NOT NULL AND person_stamp = '' AND password_changed <> ''"
    COLUMNS = (
        "n",
        "directory_id",
        "institution_id",
        "dn",
        *people.OWNED_FIELDS,
        "mobile",
        people.MOBILE_FIELD,
        "password_changed",
        "active",
        "roles",
        "vpn_access",
    )

    def __init__(self):
        self.db = connections[DEFAULT_DB_ALIAS]
        self.postgres = self.db.vendor == "postgresql"
        self.loaded = self.first_stamps = 0

    def __enter__(self) -> _Staging:
        texts = ", ".join(f"{name} varchar NOT NULL" for name in self.COLUMNS[1:-3])
        create = (
            f"CREATE TEMPORARY TABLE {self.ENTRIES} "
            f"(n integer NOT NULL, {texts}, active boolean NOT NULL, roles varchar NULL, vpn_access boolean NULL)"
        )
        # A PostgreSQL connection outlives the run (a worker's, kept between tasks): tables a run could not drop
        # go first, in the same round trip. SQLite's embedded default runs in one process, its tables die with it.
        self._run(*(self._drops([self.ENTRIES, self.ROLES, self.CHANGED]) if self.postgres else []), create)
        self.tables = [self.ENTRIES]
        return self

    def __exit__(self, *exc_info) -> None:
        self._run(*self._drops(self.tables))

    @staticmethod
    def _drops(tables: list[str]) -> list[str]:
        return [f"DROP TABLE IF EXISTS {table}" for table in tables]

    def _run(self, *statements: str) -> None:
        with self.db.cursor() as cursor:
            if self.postgres:
                cursor.execute(";\n".join(statements))  # one round trip
            else:
                for statement in statements:
                    cursor.execute(statement)

    def load(self, entries: Iterable[Entry]) -> int:
        """Stage ``entries`` (numbered in order); return how many. An error while reading (DirectoryReadError)
        leaves the tables empty and is raised; ``loaded`` says how many had been read by then."""
        allowed = people.directory_roles()
        roles: list[tuple[int, str]] = []
        self.roles_managed = False
        columns = ", ".join(self.COLUMNS)

        def rows() -> Iterator[tuple]:
            for n, entry in enumerate(entries, 1):
                self.loaded = n
                if entry.roles is not None:
                    self.roles_managed = True
                    roles.extend((n, role) for role in entry.roles & allowed)
                yield (
                    n,
                    entry.directory_id,
                    entry.institution_id,
                    entry.dn,
                    entry.first_name,
                    entry.last_name,
                    entry.email,
                    entry.department,
                    entry.mobile,
                    people.mobile_of(entry) if entry.mobile else "",
                    entry.password_changed,
                    entry.active,
                    None if entry.roles is None else "\n".join(sorted(entry.roles)),
                    entry.vpn_access,
                )

        with transaction.atomic(), self.db.cursor() as cursor:
            if self.postgres:
                with cursor.cursor.copy(f"COPY {self.ENTRIES} ({columns}) FROM STDIN") as copy:
                    for row in rows():
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(self.COLUMNS))
                cursor.executemany(f"INSERT INTO {self.ENTRIES} ({columns}) VALUES ({marks})", rows())  # noqa: S608 (our tables and columns)
            # The entries' allow-listed roles, when the directory manages roles at all.
            if self.roles_managed:
                cursor.execute(f"CREATE TEMPORARY TABLE {self.ROLES} (n integer NOT NULL, role varchar NOT NULL)")
                self.tables.append(self.ROLES)
                cursor.executemany(f"INSERT INTO {self.ROLES} (n, role) VALUES (%s, %s)", roles)  # noqa: S608 (our tables and columns)
        return self.loaded

    def compare(self) -> None:
        """Keep the entries that differ from their person here (or have none), with the person and the outcome."""
        allowed = sorted(people.directory_roles())
        user, groups = User._meta.db_table, User.groups.through._meta.db_table
        group = Group._meta.db_table
        if allowed and self.roles_managed:
            marks = ", ".join(["%s"] * len(allowed))
            # The person's allow-listed roles differ from the entry's (those are staged already allow-listed).
            roles_differ = (
                f"(e.roles IS NOT NULL AND ("  # noqa: S608 (our tables and columns)
                f"EXISTS (SELECT 1 FROM {self.ROLES} r WHERE r.n = e.n AND NOT EXISTS ("
                f"SELECT 1 FROM {groups} ug JOIN {group} g ON g.id = ug.group_id "
                f"WHERE ug.user_id = u.id AND g.name = r.role)) "
                f"OR EXISTS (SELECT 1 FROM {groups} ug JOIN {group} g ON g.id = ug.group_id "
                f"WHERE ug.user_id = u.id AND g.name IN ({marks}) AND NOT EXISTS ("
                f"SELECT 1 FROM {self.ROLES} r WHERE r.n = e.n AND r.role = g.name))))"
            )
        else:
            roles_differ, allowed = "FALSE", []
        owned = " AND ".join(f"u.{name} = e.{name}" for name in people.OWNED_FIELDS)
        # What people.apply_record would change nothing for: the owned fields, the IDs, the DN, the mobile number,
        # and the state: a disabled entry's person already deactivated; an enabled one's active, with the VPN
        # access and the allow-listed roles the directory gives.
        same = (
            f"{owned} AND u.username = e.institution_id AND (e.dn = '' OR u.directory_dn = e.dn) "
            f"AND u.{people.EXTERNAL_ID_FIELD} = '' AND u.{people.MOBILE_FIELD} = e.{people.MOBILE_FIELD} "
            f"AND CASE WHEN e.active THEN u.is_active "
            f"AND (e.vpn_access IS NULL OR e.vpn_access = (u.vpn_access = %s)) AND NOT {roles_differ} "
            f"ELSE NOT u.is_active AND u.deactivated_at IS NOT NULL END"
        )
        # The password-changed stamp: the same, or the entry has none to say (the setting is off). Its first sight
        # (none stored yet), with nothing else to change, is kept as unchanged: :meth:`store_first_stamps` writes
        # it; a stamp other than a stored one goes to the people service, which ends the person's sessions.
        stamp = f"e.password_changed = '' OR u.{people.PASSWORD_STAMP_FIELD} = e.password_changed"
        first_stamp = f"u.{people.PASSWORD_STAMP_FIELD} = '' AND {same}"
        outcome = (
            f"CASE WHEN u.id IS NULL THEN (CASE WHEN e.active THEN '{people.CREATED}' ELSE '{people.UNCHANGED}' END) "
            f"WHEN NOT e.active AND u.is_active THEN '{people.DEACTIVATED}' "
            f"WHEN e.active AND NOT u.is_active THEN '{people.REACTIVATED}' "
            f"WHEN {first_stamp} THEN '{people.UNCHANGED}' ELSE '{people.UPDATED}' END"
        )
        # The entry's institution ID belongs to another account here (a local one, another entry's person), whatever
        # its case (people._holder's rule, through the index on UPPER(username)): applying it is a conflict, which
        # only apply_record reports; evaluated for the changed entries only.
        held = (
            f"EXISTS (SELECT 1 FROM {user} h WHERE UPPER(h.username) = UPPER(e.institution_id) "  # noqa: S608 (our tables and columns)
            "AND (u.id IS NULL OR h.id <> u.id))"
        )
        with self.db.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.CHANGED} AS "  # noqa: S608 (our tables and columns)
                f"SELECT e.*, u.id AS person, u.username AS person_username, u.{people.PASSWORD_STAMP_FIELD} AS "
                f"person_stamp, {outcome} AS outcome, {held} AS held "
                f"FROM {self.ENTRIES} e LEFT JOIN {user} u ON u.source = %s AND u.directory_id = e.directory_id "
                f"WHERE u.id IS NULL OR NOT ({same} AND ({stamp}))",
                [User.VpnAccess.APPROVED, *allowed, User.Source.LDAP, User.VpnAccess.APPROVED, *allowed],
            )
            self.changes = cursor.rowcount
        self.tables.append(self.CHANGED)

    def store_first_stamps(self) -> None:
        """Store the password-changed stamps read for people who have none stored yet (the first run that reads
        the attribute, or a person's first stamp): one statement, nothing ended and nothing audited."""
        if not self.first_stamps:
            return
        user, stamp = User._meta.db_table, people.PASSWORD_STAMP_FIELD
        with self.db.cursor() as cursor:
            cursor.execute(
                f"UPDATE {user} SET {stamp} = c.password_changed FROM {self.CHANGED} c "  # noqa: S608 (our tables and columns)
                f"WHERE {user}.id = c.person AND {user}.{stamp} = '' AND c.password_changed <> ''"
            )

    @contextmanager
    def joining(self) -> Iterator[None]:
        """A transaction for the statements that join every entry with the people here (:meth:`compare`,
        :meth:`leavers`), given room for a whole directory's hash table (PostgreSQL's default ``work_mem``, 4 MB,
        sent 100,000 people to temporary files) and no JIT compilation (15 ms of compiling for statements run
        once). ``SET LOCAL``: the connection is a worker's, its next task gets the server's settings back."""
        with transaction.atomic():
            if self.postgres:
                self._run(f"SET LOCAL work_mem = '{JOIN_WORK_MEM}'", "SET LOCAL jit = off")
            yield

    def outcomes(self) -> dict[str, int]:
        """What applying the changed entries would do, counted; ``first_stamps`` counts the first stamps to store."""
        with self.db.cursor() as cursor:
            cursor.execute(
                f"SELECT outcome, COUNT(*), COUNT(*) FILTER (WHERE {self.FIRST_STAMP}) FROM {self.CHANGED} "  # noqa: S608 (our tables and columns)
                "GROUP BY outcome"
            )
            rows = cursor.fetchall()
        self.first_stamps = sum(first for _, _, first in rows)
        return {outcome: count for outcome, count, _ in rows}

    def disabling(self) -> list[dict]:
        with self.db.cursor() as cursor:
            cursor.execute(
                f"SELECT person, person_username FROM {self.CHANGED} WHERE outcome = %s ORDER BY n",  # noqa: S608 (our tables and columns)
                [people.DEACTIVATED],
            )
            return [
                {"id": pk, "username": username, "reason": "disabled in the directory"}
                for pk, username in cursor.fetchall()
            ]

    def leavers(self) -> list[dict]:
        """The active people from the directory whose entry was not read."""
        with self.db.cursor() as cursor:
            cursor.execute(
                f"SELECT u.id, u.username FROM {User._meta.db_table} u WHERE u.source = %s AND u.is_active "  # noqa: S608 (our tables and columns)
                f"AND NOT EXISTS (SELECT 1 FROM {self.ENTRIES} e WHERE e.directory_id = u.directory_id) ORDER BY u.id",
                [User.Source.LDAP],
            )
            return [{"id": pk, "username": username, "reason": LEFT} for pk, username in cursor.fetchall()]

    def changed(self) -> Iterator[list[Change]]:
        """The records to apply with what applying each would do, in the order they were read, a batch at a time
        (memory stays flat)."""
        columns = ", ".join(self.COLUMNS)
        with self.db.cursor() as cursor:
            if self.changes > BATCH:
                cursor.execute(f"CREATE INDEX {self.CHANGED}_n ON {self.CHANGED} (n)")
        after = 0
        while True:
            with self.db.cursor() as cursor:
                cursor.execute(
                    f"SELECT {columns}, outcome, held FROM {self.CHANGED} "  # noqa: S608 (our tables and columns)
                    "WHERE n > %s AND outcome <> %s ORDER BY n LIMIT %s",
                    [after, people.UNCHANGED, BATCH],
                )
                rows = cursor.fetchall()
            batch = []
            for (
                n,
                directory_id,
                institution_id,
                dn,
                *owned,
                mobile,
                _,
                password_changed,
                active,
                roles,
                vpn_access,
                outcome,
                held,
            ) in rows:
                after = n
                record = DirectoryRecord(
                    source=User.Source.LDAP,
                    directory_id=directory_id,
                    institution_id=institution_id,
                    dn=dn,
                    mobile=mobile,
                    active=bool(active),
                    roles=None if roles is None else frozenset(filter(None, roles.split("\n"))),
                    vpn_access=None if vpn_access is None else bool(vpn_access),
                    password_changed=password_changed,
                    **dict(zip(people.OWNED_FIELDS, owned, strict=True)),
                )
                batch.append(Change(outcome, bool(held), record))
            if batch:
                yield batch
            if len(rows) < BATCH:
                return


class Change(NamedTuple):
    """A changed entry: what the compare found applying it would do, and whether its institution ID is another
    account's."""

    outcome: str
    held: bool
    record: DirectoryRecord


def _apply(run: DirectorySyncRun, batches: Iterable[list[Change]], origin: dict) -> list[str]:
    """Apply the changed entries through the people service, routed by what the compare found: joiners
    (``created``, their institution ID nobody's) in bulk, movers (``updated``, likewise) in bulk, the rest
    (leavers, returns, conflicts) one by one; count the outcomes on ``run``; return the errors' texts."""
    errors = []
    for batch in batches:
        joiners = [c.record for c in batch if c.outcome == people.CREATED and not c.held]
        movers = [c.record for c in batch if c.outcome == people.UPDATED and not c.held]
        rest = [c.record for c in batch if c.held or c.outcome not in (people.CREATED, people.UPDATED)]
        for outcomes in (
            people.update_people(movers, origin=origin) if movers else {},
            people.create_people(joiners, origin=origin) if joiners else {},
            people.apply_records(rest, origin=origin) if rest else {},
        ):
            for record, error in outcomes.pop("conflicts", []):
                run.errors += 1
                errors.append(f"{record.institution_id} ({record.dn}): {_text(error)}")
            for outcome, count in outcomes.items():
                setattr(run, outcome, getattr(run, outcome) + count)
    return errors


def _text(error: Exception) -> str:
    return "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)


def _finish(
    run: DirectorySyncRun, status: str, plan: _Plan, *, error: str = "", planned: bool = False
) -> DirectorySyncRun:
    """Record the run's outcome. ``planned``: the counts are what it would do (a dry run, a held run)."""
    run.read = plan.read
    run.unchanged += plan.unchanged
    if planned:
        for outcome, count in plan.planned.items():
            setattr(run, outcome, count)
        run.deactivated += len(plan.leavers)
    skipped = [f"{dn}: skipped, {reason}" for dn, reason, _ in plan.skipped]
    run.errors += len(skipped)
    run.error_text = "\n".join(filter(None, [error, *skipped]))
    run.status = status
    run.finished_at = timezone.now()
    run.save()
    if not run.dry_run:
        metrics.count(metrics.DIRECTORY_SYNCS, status)
        if status == DirectorySyncRun.Status.APPLIED:
            for change in ("created", "updated", "deactivated", "reactivated", "errors"):
                metrics.add(metrics.DIRECTORY_SYNC_PEOPLE, getattr(run, change), change)
    return run
