"""The LDAP sync: joiners, movers and leavers from the directory, through the people service, with DIR-03's guards.

    run = sync_directory()                        # everyone; returns the DirectorySyncRun
    run = sync_directory(person="jdoe")           # one person: never deactivates anyone else
    run = sync_directory(dry_run=True)            # counts only: nobody changes

A run **reads everything first** (every page under every synced base, a thread reading ahead of the comparison) and
compares it with the people here in bulk: one query per batch of entries, none per person. Only what differs is kept,
spooled to a temporary file, and the people seen are a bitmap of their keys, so memory stays flat however large the
directory. Only when the whole directory was read does anyone change:

- a read that fails partway (a server down, a timeout, a size limit, a page refused) marks the run ``failed``
  and changes nobody;
- a read that returns nobody deactivates nobody (``failed`` too when people here would have left);
- a run that would deactivate more than DIRECTORY_MAX_DEACTIVATIONS people, or more than
  DIRECTORY_MAX_DEACTIVATION_PERCENT of the directory's active people here, is ``held``: nothing is applied, and
  a superuser applies (:func:`apply_held_run`) or discards (:func:`discard_held_run`) it, audited;
- two runs never interleave: a run holds a lock (PostgreSQL: a session advisory lock; SQLite, one process: a
  process lock) from before its read to after its last change; a second run meanwhile is refused
  (:class:`SyncInProgress`), never queued: the schedule tries again, a person retries.

Each change goes through :mod:`identity.directory.people` (``apply_record``, ``deactivate_person``) with
``origin={"sync_run": run.pk}``: the same rules and audit events as SCIM's. A run with nothing to change writes no
row but its own.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import tempfile
import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from .. import audit, metrics
from ..models import User
from . import people
from .ldap_source import DirectoryReadError, LDAPReader
from .models import COUNTS, DirectorySyncRun
from .records import DirectoryRecord

T = TypeVar("T")

# pg_try_advisory_lock's key: the sync's own number, "DIRSYNC" in ASCII.
LOCK_KEY = 0x44495253594E43
_process_lock = threading.Lock()
# How many entries are compared with the database in one query.
BATCH = 1000
LEFT = "not found under the synced bases and groups"


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
    when there is an actor, else the command). A failed read is recorded in the run (``failed``), not raised.
    Raises :class:`SyncInProgress` when another run holds the lock (no run is recorded then).
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
        if person:
            return _sync_one(run, person)
        return _sync_all(run)


def check_requester(actor: User, person: str | None) -> None:
    if actor.is_superuser:
        return
    if person is None:
        raise SyncNotAllowed("Only a superuser starts a sync of everyone.")
    if not actor.has_perm("directory.sync_person"):
        raise SyncNotAllowed("You may not sync people from the directory.")


def apply_held_run(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """A superuser's decision to apply a held run: the directory is read again and applied, deactivating at most
    the people the held run listed beyond the guard's limits (someone new to deactivate past the limits holds the
    run again, with the new list). Audits ``directory.sync_run_applied``. Raises :class:`SyncNotAllowed` for
    anyone but a superuser or a run that is not held, :class:`SyncInProgress` while another run holds the lock.
    """
    _check_decision(run, actor)
    with sync_lock():
        run.refresh_from_db()
        _check_decision(run, actor)
        approved = {entry["id"] for entry in run.would_deactivate}
        audit.record(
            "directory.sync_run_applied",
            actor=actor,
            subject=None,
            details={"sync_run": run.pk, "would_deactivate": len(approved)},
        )
        run.decided_by, run.decided_at = actor, timezone.now()
        run.error_text = ""
        for name in COUNTS:
            setattr(run, name, 0)
        return _sync_all(run, approved=approved)


def discard_held_run(run: DirectorySyncRun, *, actor: User) -> DirectorySyncRun:
    """A superuser's decision not to apply a held run: nobody changes. Audits ``directory.sync_run_discarded``."""
    _check_decision(run, actor)
    updated = DirectorySyncRun.objects.filter(pk=run.pk, status=DirectorySyncRun.Status.HELD).update(
        status=DirectorySyncRun.Status.DISCARDED, decided_by=actor, decided_at=timezone.now()
    )
    if not updated:
        raise SyncNotAllowed("This run is no longer held.")
    audit.record(
        "directory.sync_run_discarded",
        actor=actor,
        details={"sync_run": run.pk, "would_deactivate": len(run.would_deactivate)},
    )
    run.refresh_from_db()
    return run


def _check_decision(run: DirectorySyncRun, actor: User | None) -> None:
    if actor is None or not actor.is_superuser:
        raise SyncNotAllowed("Only a superuser applies or discards a held directory sync.")
    if run.status != DirectorySyncRun.Status.HELD or run.dry_run:
        raise SyncNotAllowed("Only a held run (not a dry run) can be applied or discarded.")


class PkSet:
    """A set of primary keys as a bitmap: one bit per key up to the largest added, so that remembering everyone a
    run saw costs 12.5 kB for 100,000 people (a Python set of them: about 5 MB, growing with the directory)."""

    def __init__(self):
        self._bits = bytearray()

    def add(self, pk: int) -> None:
        index = pk >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(index + 1 - len(self._bits) + len(self._bits) // 4))
        self._bits[index] |= 1 << (pk & 7)

    def __contains__(self, pk: int) -> bool:
        index = pk >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (pk & 7)))


@dataclass
class _Plan:
    """What the read found: counts so far, the records to apply (spooled), the people to deactivate."""

    read: int = 0
    unchanged: int = 0
    seen: PkSet = field(default_factory=lambda: PkSet())  # the people the directory still lists
    disabling: list[dict] = field(default_factory=list)  # active people here whose entry says disabled
    pending: int = 0
    planned: dict[str, int] = field(default_factory=dict)  # what applying the spooled records would do
    leavers: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _sync_all(run: DirectorySyncRun, *, approved: frozenset[int] | set[int] = frozenset()) -> DirectorySyncRun:
    origin = {"sync_run": run.pk}
    with tempfile.TemporaryFile() as spool:
        reader = LDAPReader()
        plan = _Plan()
        try:
            with contextlib.closing(_read_ahead(_batches(reader.records(), BATCH))) as batches:
                for batch in batches:
                    _compare(batch, plan, spool)
        except DirectoryReadError as error:
            return _finish(run, DirectorySyncRun.Status.FAILED, plan, error=f"Reading the directory failed: {error}")
        plan.skipped = reader.skipped
        here = User.objects.filter(source=User.Source.LDAP, is_active=True)
        if plan.read:
            # Keys only, streamed: the names of the few who left are read after.
            gone = [
                pk for pk in here.values_list("pk", flat=True).iterator(chunk_size=BATCH * 5) if pk not in plan.seen
            ]
            plan.leavers = [
                {"id": pk, "username": username, "reason": LEFT}
                for chunk in _batches(gone, BATCH)
                for pk, username in here.filter(pk__in=chunk).order_by("pk").values_list("pk", "username")
            ]
        elif here.exists():
            return _finish(
                run,
                DirectorySyncRun.Status.FAILED,
                plan,
                error="The directory returned nobody: nobody was deactivated (DIR-03).",
            )
        leaving = plan.disabling + plan.leavers
        held = _over_limits([p for p in leaving if p["id"] not in approved], here.count())
        if held:
            run.would_deactivate = leaving
            return _finish(run, DirectorySyncRun.Status.HELD, plan, error=held, planned=True)
        if run.dry_run:
            return _finish(run, DirectorySyncRun.Status.APPLIED, plan, planned=True)
        run.would_deactivate = []
        errors = _apply(run, _spooled(spool, plan.pending), origin)
        for leaver in plan.leavers:
            user = User.objects.get(pk=leaver["id"])
            if people.deactivate_person(user, reason=LEFT, origin=origin):
                run.deactivated += 1
        return _finish(run, DirectorySyncRun.Status.APPLIED, plan, error="\n".join(errors))


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
    with tempfile.TemporaryFile() as spool:
        _compare([record], plan, spool)
        if run.dry_run:
            return _finish(run, DirectorySyncRun.Status.APPLIED, plan, planned=True)
        errors = _apply(run, _spooled(spool, plan.pending), {"sync_run": run.pk})
    return _finish(run, DirectorySyncRun.Status.APPLIED, plan, error="\n".join(errors))


def _over_limits(leaving: list[dict], active_here: int) -> str:
    """Why a run that deactivates ``leaving`` must wait for a superuser, or "" when it need not."""
    count = len(leaving)
    if count > settings.DIRECTORY_MAX_DEACTIVATIONS:
        return (
            f"Held: it would deactivate {count} people, more than DIRECTORY_MAX_DEACTIVATIONS "
            f"({settings.DIRECTORY_MAX_DEACTIVATIONS}). A superuser applies or discards it."
        )
    if active_here and count * 100 > settings.DIRECTORY_MAX_DEACTIVATION_PERCENT * active_here:
        return (
            f"Held: it would deactivate {count} of the {active_here} active people from the directory, more than "
            f"DIRECTORY_MAX_DEACTIVATION_PERCENT ({settings.DIRECTORY_MAX_DEACTIVATION_PERCENT:g}%). "
            "A superuser applies or discards it."
        )
    return ""


def _batches(records: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_COMPARED = (
    "pk",
    "directory_id",
    "username",
    "directory_dn",
    "is_active",
    "deactivated_at",
    "vpn_access",
    people.MOBILE_FIELD,
    people.EXTERNAL_ID_FIELD,
    *people.OWNED_FIELDS,
)


def _read_ahead(
    batches: Iterator[list[DirectoryRecord]], depth: int = 2
) -> Generator[list[DirectoryRecord], None, None]:
    """``batches``, read by a thread of their own at most ``depth`` batches ahead: the directory's pages come in
    while this thread asks the database about the last batch (python-ldap lets go of the interpreter while it waits
    for the server, and psycopg while it waits for PostgreSQL). Memory stays bounded by ``depth``. An error of the
    read (``DirectoryReadError``) is raised here, where the batch it cut short would have come."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def offer(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(done)
        except BaseException as error:  # noqa: BLE001 (handed over and raised in the caller's thread)
            offer(error)

    reader = threading.Thread(target=read, name="directory-read", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _compare(batch: list[DirectoryRecord], plan: _Plan, spool) -> None:
    """Sort one page of entries into unchanged and to-apply, with one query for the people (and one for their
    managed roles): a record is spooled only when :func:`people.apply_record` would change something."""
    plan.read += len(batch)
    # Tuples, made into dicts here: cheaper than the ORM's values() for the rows of a whole directory.
    known = {
        row[1]: dict(zip(_COMPARED, row, strict=True))
        for row in User.objects.filter(
            source=User.Source.LDAP, directory_id__in=[r.directory_id for r in batch]
        ).values_list(*_COMPARED)
    }
    roles: dict[int, set[str]] = {}
    if known and any(r.roles is not None for r in batch):
        memberships = User.groups.through.objects.filter(
            user_id__in=[row["pk"] for row in known.values()], group__name__in=people.directory_roles()
        ).values_list("user_id", "group__name")
        for user_id, name in memberships:
            roles.setdefault(user_id, set()).add(name)
    for record in batch:
        row = known.get(record.directory_id)
        if row is not None:
            plan.seen.add(row["pk"])
            if _same(record, row, roles.get(row["pk"], set())):
                plan.unchanged += 1
                continue
            if not record.active and row["is_active"]:
                plan.disabling.append(
                    {"id": row["pk"], "username": row["username"], "reason": "disabled in the directory"}
                )
                outcome = people.DEACTIVATED
            else:
                outcome = people.REACTIVATED if record.active and not row["is_active"] else people.UPDATED
        elif not record.active:
            plan.unchanged += 1  # a disabled entry never seen before creates nobody
            continue
        else:
            outcome = people.CREATED
        plan.planned[outcome] = plan.planned.get(outcome, 0) + 1
        pickle.dump(record, spool, protocol=pickle.HIGHEST_PROTOCOL)
        plan.pending += 1


def _same(record: DirectoryRecord, row: dict, held_roles: set[str]) -> bool:
    """Whether applying ``record`` would change nothing: the people service's rules, read without writing."""
    if any(row[name] != getattr(record, name) for name in people.OWNED_FIELDS):
        return False
    if row["username"] != record.institution_id or (record.dn and row["directory_dn"] != record.dn):
        return False
    if row[people.EXTERNAL_ID_FIELD] != record.external_id:
        return False
    if (record.mobile or row[people.MOBILE_FIELD]) and row[people.MOBILE_FIELD] != people.mobile_of(record):
        return False
    if not record.active:
        return not row["is_active"] and row["deactivated_at"] is not None
    if not row["is_active"]:
        return False
    if record.roles is not None and held_roles != set(record.roles) & people.directory_roles():
        return False
    approved = row["vpn_access"] == User.VpnAccess.APPROVED
    return record.vpn_access is None or record.vpn_access == approved


def _spooled(spool, count: int) -> Iterator[DirectoryRecord]:
    spool.seek(0)
    for _ in range(count):
        yield pickle.load(spool)  # noqa: S301 (our own temporary file, written by this run)


def _apply(run: DirectorySyncRun, records: Iterable[DirectoryRecord], origin: dict) -> list[str]:
    """Apply the records through the people service (joiners in bulk, the rest one by one); count the outcomes on
    ``run``; return the errors' texts."""
    errors = []
    for batch in _batches(records, BATCH):
        try:
            outcomes = people.create_people(batch, origin=origin)
        except ValidationError:
            outcomes = _one_by_one(batch, origin)
        for record, error in outcomes.pop("conflicts"):
            run.errors += 1
            errors.append(f"{record.institution_id} ({record.dn}): {_text(error)}")
        for outcome, count in outcomes.items():
            setattr(run, outcome, getattr(run, outcome) + count)
    return errors


def _one_by_one(records: list[DirectoryRecord], origin: dict) -> dict:
    """Each record through ``apply_record``: a batch ``create_people`` refused holds a record it cannot take."""
    outcomes: dict = {"conflicts": []}
    for record in records:
        try:
            outcome = people.apply_record(record, origin=origin)
        except (people.DirectoryConflict, ValidationError) as error:
            outcomes["conflicts"].append((record, error))
            continue
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


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
    skipped = [f"{dn}: skipped, {reason}" for dn, reason in plan.skipped]
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
