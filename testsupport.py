"""Helpers the tests import: real TOTP codes, waiting for a worker, the audit log's owner. The fixtures are in
``conftest.py``, which imports these too."""

import base64
import os
import re
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
# When the tests connect as the app's database role (AC-10, as .ci/run does), the test database's owner: it empties
# the tables between transactional tests and plays the intruder in tamper tests. Unset, the tests' own role owns it.
OWNER_DATABASE_URL = os.environ.get("TEST_OWNER_DATABASE_URL", "")
# What refuses a change to the audit log first: the app's role lacks the privilege (AC-10); the owner meets the trigger.
AUDIT_REFUSAL = "permission denied" if OWNER_DATABASE_URL else "append-only"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple 42"


@contextmanager
def owner_cursor():
    """A cursor on a connection of its own as the test database's owner; its work commits when the block ends."""
    if OWNER_DATABASE_URL:
        import psycopg

        with psycopg.connect(OWNER_DATABASE_URL) as owner, owner.cursor() as cursor:
            yield cursor
        return
    from django.db import DEFAULT_DB_ALIAS, connections

    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:  # autocommit: each statement commits
            yield cursor
    finally:
        other.close()


@contextmanager
def as_schema_owner():
    """The tests' connection as one that may change the schema: the test database's owner when the tests run as the
    app's role (AC-10, as CI runs them), which owns no table and may alter none."""
    if not OWNER_DATABASE_URL:
        yield
        return
    owner = urlsplit(OWNER_DATABASE_URL)
    saved = {key: connection.settings_dict[key] for key in ("USER", "PASSWORD")}
    connection.close()
    connection.settings_dict.update(USER=owner.username, PASSWORD=owner.password or "")
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def migrate_to(targets):
    """Migrate the tests' database to ``targets`` (``[(app, migration)]``); the apps of the state reached."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    migrate_to(MigrationExecutor(connection).loader.graph.leaf_nodes())


def tamper_audit_log(sql: str, params: list) -> None:
    """Edit the audit log behind the application's back, as the tables' owner could (the app's role cannot, AC-10).

    Needs the rows committed (a transactional test) when the tests run as the app's role.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    if OWNER_DATABASE_URL:
        with owner_cursor() as cursor:
            cursor.execute("ALTER TABLE identity_auditevent DISABLE TRIGGER USER")
            cursor.execute(sql, params)
            cursor.execute("ALTER TABLE identity_auditevent ENABLE TRIGGER USER")
        return
    with connection.cursor() as cursor:
        # Rows inserted in this transaction still have deferred foreign-key checks queued, and
        # PostgreSQL alters no table with pending trigger events: run those checks now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Only the table owner can do this, and it rolls back with the test's transaction.
        cursor.execute("ALTER TABLE identity_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE identity_auditevent ENABLE TRIGGER USER")


class CapturedStatements:
    """What a pinned query count counts: Django's queries on a connection (as ``CaptureQueriesContext`` captures
    them) and the statements ``identity.sql`` runs on it (its ``statement_run`` signal), in the order they ran. Its
    ``captured_queries`` and ``len`` are as ``CaptureQueriesContext``'s; the fixtures ``assert_num_statements`` and
    ``assert_max_num_statements`` (conftest.py) pin a count with it."""

    def __init__(self, connection=None):
        from django.db import DEFAULT_DB_ALIAS, connections
        from django.test.utils import CaptureQueriesContext

        # The wrapper itself, not django.db.connection's proxy: identity.sql names the wrapper it ran on.
        self.django = CaptureQueriesContext(
            connections[connection.alias if connection is not None else DEFAULT_DB_ALIAS]
        )
        self.ours: list[tuple[int, dict]] = []  # each after how many of Django's queries it ran, and its entry

    def __enter__(self):
        from identity.sql import statement_run

        self.ours = []
        self.django.__enter__()
        statement_run.connect(self.heard)
        return self

    def __exit__(self, *exc_info):
        from identity.sql import statement_run

        statement_run.disconnect(self.heard)
        self.django.__exit__(*exc_info)

    def heard(self, sender, connection, sql, duration, **kwargs):
        if connection is self.django.connection:  # another thread's statements are on its own connection
            self.ours.append((len(self.django.captured_queries), {"sql": sql, "time": f"{duration:.3f}"}))

    @property
    def captured_queries(self) -> list[dict]:
        theirs, merged, taken = self.django.captured_queries, [], 0
        for after, entry in self.ours:
            merged += [*theirs[taken:after], entry]
            taken = after
        return merged + theirs[taken:]

    def __len__(self) -> int:
        return len(self.django) + len(self.ours)


def backend_pid() -> int:
    """The PostgreSQL session of this thread's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def drop_from_the_server(pid: int) -> None:
    """End a session from another connection, as a database restart or an idle timeout would."""
    from django.db import DEFAULT_DB_ALIAS, connections

    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(250):  # the backend leaves pg_stat_activity a moment after it was told to
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.02)
        raise AssertionError(f"backend {pid} did not end")
    finally:
        other.close()


def totp_for(device) -> pyotp.TOTP:
    """An independent TOTP implementation (pyotp) over the device's real secret."""
    return pyotp.TOTP(base64.b32encode(device.secret_bytes()).decode())


def fresh_code(device) -> str:
    """A code the device has not consumed yet: the current step's, or the next one (within ±1 tolerance)."""
    device.refresh_from_db()
    step = int(time.time()) // 30
    if device.last_t >= step + 1:
        raise AssertionError("no unused code left within tolerance; freeze time to go on")
    at = (step if device.last_t < step else step + 1) * 30
    return totp_for(device).at(at)


def race(*calls) -> list:
    """Run the calls at once, each in its own thread and database connection (released at the end), all started
    together at a barrier; return what each gave, in order: its value, or the code of the ``ValidationError`` it
    raised. On PostgreSQL this is a real race between transactions."""
    from django.core.exceptions import ValidationError
    from django.db import connection

    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            try:
                results[index] = call()
            except ValidationError as error:
                results[index] = error.code
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.2):
    """Poll ``predicate`` until it is truthy; return its value or fail after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# --- The sign-in steps, through the real views ---------------------------------------------------------

SIGN_IN = "/account/sign-in/"
SECOND_FACTOR = "/account/sign-in/second-factor/"


def wrong_code(device) -> str:
    """Six digits that no step near now produces for this device, so the refusal is not luck."""
    from devices import totp

    key = device.secret_bytes()
    now = totp.current_step()
    near = {totp.code_at(key, step) for step in range(now - 3, now + 4)}
    return next(candidate for candidate in (f"{n:06d}" for n in range(1_000_000)) if candidate not in near)


def post_password(client, person, password: str = PASSWORD, **extra):
    return client.post(SIGN_IN, {"username": person.username, "password": password}, **extra)


def post_code(client, device, code: str):
    return client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": code})


def signed_in_user_id(client):
    from django.contrib.auth import SESSION_KEY

    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def is_otp_verified(client) -> bool:
    from django_otp import DEVICE_ID_SESSION_KEY

    return bool(client.session.get(DEVICE_ID_SESSION_KEY))


def locked_message() -> str:
    return f"This account is locked after too many wrong codes. Contact {settings.HELP_DESK_CONTACT} to unlock it."


def details_of(event) -> dict:
    """An audit event's details without the id of the request that wrote it (tested in config/tests/test_logs.py)."""
    return {key: value for key, value in event.details.items() if key != "request_id"}


def flush_statements(sql_list: list[str]) -> list[str]:
    """What empties the tables between transactional tests on PostgreSQL, in place of Django's TRUNCATE.

    TRUNCATE gives every table new files, written out at commit: about two seconds for the project's tables on a busy
    machine, against a tenth of that to DELETE the few rows a test leaves (``bench/test_reset.py``). Django's foreign
    keys are deferrable, so the deletes need no order within their one transaction. The audit table's own triggers
    refuse both (AC-08): they are disabled in the same transaction, which only the table's owner may do (AC-10)."""
    statements = []
    for statement in sql_list:
        if statement.startswith("TRUNCATE") and "RESTART IDENTITY" not in statement:
            statements += ["SET CONSTRAINTS ALL DEFERRED"]
            tables = re.findall(r'"([^"]+)"', statement)  # as Django quoted them
            statements += [f'DELETE FROM "{table}"' for table in tables]  # noqa: S608
        else:
            statements.append(statement)
    if any("identity_auditevent" in statement for statement in statements):
        trigger = "ALTER TABLE identity_auditevent {} TRIGGER USER"
        statements = [trigger.format("DISABLE"), *statements, trigger.format("ENABLE")]
    return statements


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


GUNICORN_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) ")


def gunicorn_port(process: subprocess.Popen, log: Path, *, timeout: float = 60.0) -> int:
    """The port a gunicorn started with ``--bind 127.0.0.1:0`` was given, read from the "Listening at" line of
    ``log`` (its stderr). The kernel picks the port as gunicorn binds it, so no other server can hold it: a port
    picked before the start (:func:`free_tcp_port`) may be taken by another program meanwhile, and that
    program's answers then pass for gunicorn's."""

    def listening() -> int | None:
        assert process.poll() is None, f"gunicorn exited: {log.read_text()}"
        found = GUNICORN_LISTENING.search(log.read_text()) if log.exists() else None
        return int(found.group(1)) if found else None

    return wait_for(listening, timeout=timeout, interval=0.1)
