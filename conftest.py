"""Shared fixtures. Test data is made by calling the services, as the site does.

Services a test needs (PostgreSQL, Redis with a Celery worker, Chromium) are
marked on the test; without them the test is skipped with the reason, and with
``REQUIRE_SERVICES=1`` (as ``.ci/run`` sets) a missing service fails it.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import freezegun
import pytest
from django.conf import settings

from testsupport import (  # noqa: F401 (the fixtures use them; tests import them from testsupport)
    AUDIT_REFUSAL,
    CHROMIUM,
    OWNER_DATABASE_URL,
    PASSWORD,
    REQUIRE_SERVICES,
    CapturedStatements,
    flush_statements,
    fresh_code,
    owner_cursor,
    tamper_audit_log,
    totp_for,
    wait_for,
)

# A test that freezes the clock must not freeze pytest's own timing (only that module: freezegun gives real time to any
# call with an ignored module in its last frames): else --durations reports the frozen date's distance
# from the real clock (about 1.8e9 s) for every test with a frozen-clock fixture.
freezegun.configure(extend_ignore_list=["_pytest.timing"])


def _redis_reachable() -> bool:
    url = urlparse(settings.REDIS_URL) if settings.REDIS_URL else None
    if url is None:
        return False
    try:
        with socket.create_connection((url.hostname, url.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def _missing_service(marker: str) -> str | None:
    if marker == "postgres" and not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return "needs PostgreSQL: set DATABASE_URL=postgres://..."
    if marker == "redis" and not _redis_reachable():
        return "needs Redis and a Celery worker: set REDIS_URL=redis://... to a running server"
    if marker == "browser" and not Path(CHROMIUM).exists():
        return "needs Debian's chromium at /usr/bin/chromium"
    return None


@pytest.fixture(scope="session", autouse=True)
def _roles_come_back_after_a_flush(request, django_db_setup, django_db_blocker):
    """A transactional test ends with Django emptying every table; its flush then re-creates content types and
    permissions (post_migrate) but not the staff role groups the data migrations made. The groups are read once, as
    the migrations left them, and put back after every flush, once the last app's permissions exist again.

    (Django's serialized_rollback would reload every migrated row before every transactional test instead, and a
    test flushed without it would leave content types that reload then collides with.)"""
    from django.apps import apps
    from django.contrib.auth.models import Group
    from django.core import serializers
    from django.db.models.signals import post_migrate

    db_fixtures = {"db", "transactional_db", "live_server"}
    if not any(
        item.get_closest_marker("django_db") or db_fixtures & set(item.fixturenames) for item in request.session.items
    ):
        yield  # no test here uses the database, so pytest-django made none
        return
    with django_db_blocker.unblock():
        roles = serializers.serialize(
            "json", Group.objects.all(), use_natural_foreign_keys=True, use_natural_primary_keys=True
        )

    def restore(**kwargs):
        if not Group.objects.exists():
            for role in serializers.deserialize("json", roles, handle_forward_references=False):
                role.save()

    last_app = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    post_migrate.connect(restore, sender=last_app, dispatch_uid="tests-restore-roles")
    yield
    post_migrate.disconnect(sender=last_app, dispatch_uid="tests-restore-roles")


def pytest_runtest_setup(item):
    for marker in ("postgres", "redis", "browser"):
        if item.get_closest_marker(marker) and (reason := _missing_service(marker)):
            if REQUIRE_SERVICES:
                pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
            pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _flush_empties_the_audit_table_as_its_owner():
    """Between transactional tests Django empties every table, which the audit table's triggers refuse to every
    session (AC-08). The flush disables them in its own transaction, which only the table's owner can do: the test
    database's owner, never the app's role (AC-10); and it deletes rows instead of truncating (testsupport)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        sql_list = flush_statements(sql_list)
        if not OWNER_DATABASE_URL:
            return original(self, sql_list)
        with owner_cursor() as cursor:  # one transaction: the deletes' deferred keys are checked at its commit
            for statement in sql_list:
                cursor.execute(statement)

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original


@contextmanager
def _pinned(num: int, *, exact: bool):
    """A block's statements on the default connection, Django's and identity.sql's, pinned to ``num`` (or at most)."""
    with CapturedStatements() as captured:
        yield captured
    done = len(captured)
    if (done != num) if exact else (done > num):
        listed = "\n\n".join(query["sql"] for query in captured.captured_queries)
        pytest.fail(f"Expected {num} statements{'' if exact else ' or fewer'}, ran {done}:\n\n{listed}")


@pytest.fixture
def assert_num_statements():
    """``with assert_num_statements(n):`` fails unless the block runs exactly ``n`` statements on the default
    connection: Django's queries and identity.sql's statements together (pytest-django's ``django_assert_num_queries``
    sees only Django's)."""
    return lambda num: _pinned(num, exact=True)


@pytest.fixture
def assert_max_num_statements():
    """As ``assert_num_statements``, for at most ``n`` statements."""
    return lambda num: _pinned(num, exact=False)


@pytest.fixture
def relying_party(settings):
    """The site as a WebAuthn relying party at the address the tests' software keys answer for."""
    from devices.tests.helpers import ORIGIN, RP_ID

    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]
    settings.WEBAUTHN_RP_NAME = "Example Medical School"


@pytest.fixture
def browser():
    """A headless Chromium (Debian's) for one test."""
    from devices.tests.browser import chromium

    with chromium() as browser:
        yield browser


@pytest.fixture
def site(live_server, settings):
    """The live site's address on localhost (browsers allow WebAuthn there), with the relying party pinned to it."""
    url = live_server.url.replace("127.0.0.1", "localhost")
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = [url]
    return url


@pytest.fixture
def radius_env() -> dict[str, str]:
    """More environment for the RADIUS server process (vpn/tests/test_radius.py); a test module overrides it."""
    return {}


@pytest.fixture(scope="session", autouse=True)
def _test_audit_actions():
    """Actions only tests write (the audit log's own tests, reports over made-up desk history): the audit writer
    refuses an action without words (identity.events), so they get words here, for the tests alone."""
    from identity.events import EVENTS

    made_up = ["test.event", "test.event1", "test.event2", "test.event3", "test.concurrent", "test.unicode"]
    made_up += ["test.nobody", "test.canonical", "test.plan"]
    made_up += ["bulk.before", "bulk.one", "bulk.two", "bulk.after", "bulk.bad"]
    made_up += ["helpdesk.device_reset", "helpdesk.bypass_code_issued", "helpdesk.unlock"]
    added = {action: f"Test event {action}" for action in made_up if action not in EVENTS}
    EVENTS.update(added)
    yield
    for action in added:
        del EVENTS[action]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's million rounds are not what these tests examine; they only slow every sign-in down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _eager_celery_by_default():
    """Tasks run in-process unless a test starts a real worker (see ``celery_worker_process``)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def make_user(db):
    from identity.models import User

    counter = iter(range(1, 10_000))

    def make(username: str | None = None, *, email: str | None = "", **extra):
        n = next(counter)
        username = username or f"person{n}"
        email = f"{username}@example.edu" if email == "" else email
        return User.objects.create_user(username=username, password=PASSWORD, email=email or "", **extra)

    return make


@pytest.fixture
def user(make_user):
    return make_user("jdoe", first_name="Jane", last_name="Doe")


@pytest.fixture
def enroll():
    """Enroll an app device for a person through the services, confirming with a real TOTP code."""
    from django.utils import timezone

    from devices import services

    numbers = iter(range(1, 100))

    def do(person, *, kind="mobile", platform="iphone", number=None):
        # Each a different number ending in 23, so no number is "on record" unless a test says so.
        number = number or f"+1617555{next(numbers):02d}23"
        registration = services.start_enrollment(person, kind=kind, verified_at=timezone.now())
        if kind == "mobile":
            registration = services.set_phone_number(
                registration, phone_number=number, actor=person, verified_at=timezone.now()
            )
        registration = services.set_platform(registration, platform=platform, actor=person)
        registration = services.issue_app_secret(registration, actor=person, verified_at=timezone.now())
        code = fresh_code(registration.app_device)
        return services.confirm_activation(registration, code=code, actor=person, verified_at=timezone.now())

    return do


@pytest.fixture
def enrolled_user(user, enroll):
    enroll(user)
    return user


@pytest.fixture
def sign_in():
    """Sign in through the real views: password, then a code from the chosen device."""

    def do(client, person, device=None):
        from django_otp import devices_for_user

        response = client.post("/account/sign-in/", {"username": person.username, "password": PASSWORD})
        assert response.status_code == 302, response
        devices = list(devices_for_user(person, confirmed=True))
        if not devices:
            return response
        device = device or devices[0]
        response = client.post(
            "/account/sign-in/second-factor/", {"device": device.persistent_id, "code": fresh_code(device)}
        )
        assert response.status_code == 302, response.content[:2000]
        return response

    return do


@pytest.fixture
def signed_in_client(client, enrolled_user, sign_in):
    sign_in(client, enrolled_user)
    return client


class CeleryWorker:
    """One ``celery worker`` process started by :func:`start_worker`."""

    def __init__(self, process: subprocess.Popen, nodename: str, mail_dir: Path, log: Path):
        self.process = process
        self.nodename = nodename
        self.mail_dir = mail_dir
        self.log = log  # its stdout and stderr

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no warm shutdown, no ack, no cleanup."""
        self.process.kill()
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Start real ``celery worker`` processes on real Redis, against this test's database.

    ``start_worker(*options, **env)`` starts one (command-line options, when given, replace the default of one
    solo process without gossip, mingle and heartbeat; environment variables override the defaults) and returns a :class:`CeleryWorker` once it answers a ping.
    The worker uses the broker the test process's Celery app points at, so a
    test that moves the app to another broker gets workers there too. All
    workers share one directory their email backend writes to, and dispatches
    from the test go to the broker (not in-process) while any runs.
    """
    from django.db import connection

    from config.celery import app

    db = connection.settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("the worker process needs a shared PostgreSQL database")
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    workers: list[CeleryWorker] = []

    def start(*options: str, **extra_env: str) -> CeleryWorker:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": app.conf.broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            # django-environ drops the first slash of the path: three slashes keep it absolute.
            "EMAIL_URL": f"filemail:///{mail_dir}",
            **extra_env,
        }
        nodename = f"test-{os.getpid()}-{tmp_path.name}-{len(workers)}@localhost"
        log = tmp_path / f"worker-{len(workers)}.log"
        output = log.open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel=WARNING",
                f"--hostname={nodename}",
                # One process: the one that talks to the provider is the one a test can kill.
                *(options or ("--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat")),
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        worker = CeleryWorker(process, nodename, mail_dir, log)
        workers.append(worker)
        app.conf.task_always_eager = False
        deadline = time.time() + 30
        # Over a connection of its own: a test that points the app at a broker of its own (use_broker in
        # devices/tests/test_phone_worker.py) leaves the app's connection pool closed.
        with app.connection_for_write() as connection:
            if len(workers) == 1:
                app.control.purge(connection=connection)
            # Only our worker's answer counts: another one on the same broker says nothing about this one.
            while not app.control.ping(destination=[nodename], timeout=0.5, connection=connection):
                if time.time() > deadline or process.poll() is not None:
                    raise RuntimeError("celery worker did not start")
        return worker

    try:
        yield start
    finally:
        app.conf.task_always_eager = True
        for worker in workers:
            worker.stop()
        for worker in workers:  # shown with a failing test's output: the test's directory may be gone by then
            print(f"celery worker {worker.nodename}'s log:\n{worker.log.read_text(errors='replace')}")


@pytest.fixture
def celery_worker_process(start_worker):
    """One real worker with the default settings; yields the directory its email backend writes to."""
    return start_worker().mail_dir


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not shutil.which(CHROMIUM):
        pytest.skip("needs Debian's chromium")
    return CHROMIUM


# A private slapd for the directory tests (identity/directory/tests/slapd.py).
from identity.directory.tests.fixtures import directory_person, ldap_directory, slapd  # noqa: E402, F401
