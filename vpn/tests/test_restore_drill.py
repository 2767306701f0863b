"""The restore drill of docs/operations.md ("Backups and restore"): pg_dump the database (custom format), restore
it into a fresh database with pg_restore as the owner role, check the audit log against the checkpoints exported
before the dump, and sign people in against the restored database with their real TOTP codes, through a gunicorn
serving it as the app's role. Without FACTOR_ENCRYPTION_KEYS the same restore leaves every secret unreadable."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import duo_client
import psycopg
import pytest
import requests
from cryptography.fernet import Fernet
from django.conf import global_settings
from django.db import connection

from identity import audit
from identity.models import AuditEvent
from testsupport import OWNER_DATABASE_URL, PASSWORD, REQUIRE_SERVICES, fresh_code, gunicorn_port
from vpn import services as vpn_services

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
KEY = Fernet.generate_key().decode()
# A superuser's connection (as a DBA has), to create the fresh database; .ci/run sets it. Without it, the tests'
# own role, which then created the test database itself.
ADMIN_DATABASE_URL = os.environ.get("TEST_ADMIN_DATABASE_URL", "")


@pytest.fixture
def tools():
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    if missing:
        reason = f"needs PostgreSQL's {' and '.join(missing)} on PATH"
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
        pytest.skip(reason)


@pytest.fixture
def database():
    """Where the test database is, who owns it (pg_dump, pg_restore) and who the app connects as."""
    params = connection.settings_dict
    owner = urlparse(OWNER_DATABASE_URL).username if OWNER_DATABASE_URL else params["USER"]
    return {
        "host": params["HOST"] or "127.0.0.1",
        "port": str(params["PORT"] or 5432),
        "name": params["NAME"],
        "owner": owner,
        "app": params["USER"],
        "password": params["PASSWORD"] or "",
    }


@pytest.fixture
def restored(database):
    """A fresh, empty database owned by the owner role; dropped at the end."""
    name = f"{database['name']}_restored"[:63]
    admin = ADMIN_DATABASE_URL or (f"postgres://{database['app']}@{database['host']}:{database['port']}/postgres")
    with psycopg.connect(admin, autocommit=True, password=database["password"] or None) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}" OWNER "{database["owner"]}"')
    yield name
    with psycopg.connect(admin, autocommit=True, password=database["password"] or None) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg(tool: str, database: dict, *args: str) -> None:
    env = {**os.environ, "PGPASSWORD": database["password"]}
    command = [tool, "-h", database["host"], "-p", database["port"], "-U", database["owner"], *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _site_env(database: dict, name: str, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "TEST_OWNER_DATABASE_URL")}
    password = f":{database['password']}" if database["password"] else ""
    env["DATABASE_URL"] = f"postgres://{database['app']}{password}@{database['host']}:{database['port']}/{name}"
    env["FACTOR_ENCRYPTION_KEYS"] = KEY
    return env | extra


class Site:
    """gunicorn serving ``config.wsgi`` against the restored database, as enrollment-web.service does."""

    def __init__(self, env: dict, log: Path):
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                "127.0.0.1:0",  # the kernel gives it a port as it binds, which it names in its log
                "--workers",
                "1",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=env,
            stdout=(output := log.open("w")),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes the workers with it
        )
        self.output = output
        try:
            self.port = gunicorn_port(self.process, log, timeout=90)
            self.url = f"http://127.0.0.1:{self.port}"
            self._wait_until_it_answers()
        except BaseException:
            self.stop()
            raise

    def _wait_until_it_answers(self):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.url}/account/sign-in/", timeout=30).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or slow on a busy machine
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer: {self.log.read_text()}")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.output.close()

    def kill(self):
        """The node dies at once (SIGKILL to gunicorn and its workers): requests in flight get no answer."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.output.close()


def _sign_in_on_the_web(site: Site, person, device, session: requests.Session | None = None) -> requests.Response:
    session = session or requests.Session()
    page = session.get(f"{site.url}/account/sign-in/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post(
        f"{site.url}/account/sign-in/",
        data={"csrfmiddlewaretoken": token, "username": person.username, "password": PASSWORD},
        timeout=30,
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', answer.text).group(1)
    return session.post(
        f"{site.url}/account/sign-in/second-factor/",
        data={"csrfmiddlewaretoken": token, "device": device.persistent_id, "code": fresh_code(device)},
        timeout=30,
        allow_redirects=False,
    )


def _auth_api(site: Site, integration, secret: str) -> duo_client.Auth:
    """The unmodified ``duo_client`` package, as a VPN configured for the integration uses it."""
    return duo_client.Auth(
        ikey=integration.integration_key, skey=secret, host="127.0.0.1", port=site.port, ca_certs="HTTP"
    )


def _verify_audit_log(env: dict, checkpoints: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "verify_audit_log", "--checkpoints", str(checkpoints)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_restore_drill_dump_restore_verify_and_sign_in(
    settings, tools, database, restored, tmp_path, make_user, enroll, approve
):
    settings.FACTOR_ENCRYPTION_KEYS = [KEY]
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS  # what the restored site will check against
    web_person = make_user("restored1")
    enroll(web_person)
    vpn_person = make_user("vpnuser")
    enroll(vpn_person)
    approve(vpn_person)
    integration, integration_secret = vpn_services.create_integration(name="Restored ASA", actor=None)
    events = AuditEvent.objects.count()

    # The checkpoint exported before the backup, as the beat task ships them to where the database's users cannot
    # write (docs/auditors.md, "Checkpoints").
    checkpoints = tmp_path / "checkpoints.jsonl"
    checkpoints.write_text(json.dumps(audit.make_checkpoint().as_dict()) + "\n")

    dump = tmp_path / "enrollment.dump"
    _pg("pg_dump", database, "--format=custom", f"--file={dump}", database["name"])
    _pg("pg_restore", database, "--exit-on-error", "--single-transaction", f"--dbname={restored}", str(dump))

    env = _site_env(database, restored)
    verified = _verify_audit_log(env, checkpoints)
    assert verified.returncode == 0, verified.stderr
    assert f"audit log intact: {events} events, 1 checkpoints matched" in verified.stdout

    # The app's role is still only the app's role in the restored database (AC-10).
    with psycopg.connect(env["DATABASE_URL"]) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("DELETE FROM identity_auditevent")

    # Restored without the factor keys, no secret can be read: the Auth API refuses even a correct signature.
    site = Site(_site_env(database, restored, FACTOR_ENCRYPTION_KEYS=Fernet.generate_key().decode()), tmp_path / "a")
    try:
        vpn = _auth_api(site, integration, integration_secret)
        with pytest.raises(RuntimeError, match="401 Invalid signature"):
            vpn.check()
    finally:
        site.stop()

    # With the keys, people sign in with their real codes: on the web, and through the VPN's Auth API.
    site = Site(env, tmp_path / "b")
    try:
        vpn = _auth_api(site, integration, integration_secret)
        vpn.check()  # the request the site without the keys refused
        answer = _sign_in_on_the_web(site, web_person, web_person.registrations.get().app_device)
        assert answer.status_code == 302 and "/sign-in/" not in answer.headers["Location"], answer.text[:2000]
        code = fresh_code(vpn_person.registrations.get().app_device)
        assert vpn.auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "allow"
    finally:
        site.stop()

    # Those sign-ins went into the restored database's audit log, which is still intact.
    after = _verify_audit_log(env, checkpoints)
    assert after.returncode == 0, after.stderr
    with psycopg.connect(env["DATABASE_URL"]) as db:
        (restored_events,) = db.execute("SELECT count(*) FROM identity_auditevent").fetchone()
    assert restored_events > events
    assert AuditEvent.objects.count() == events  # the drill left the live database alone
