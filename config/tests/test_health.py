"""The health probes, through the test client and through the production WSGI application, on real PostgreSQL."""

import http.client
import json
import logging
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from freezegun import freeze_time

from config import health
from devices.models import OutboundMessage
from devices.services import notify_person
from testsupport import OWNER_DATABASE_URL, wait_for
from vpn.tests.test_wsgi import call

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
OUTSIDE = "203.0.113.9"  # an address on the internet (TEST-NET-3), not in HEALTH_DETAIL_NETWORKS


@pytest.fixture
def application():
    from config.wsgi import application

    return application


@pytest.fixture
def fresh_process(monkeypatch):
    """As a process that has not yet seen the database fully migrated."""
    monkeypatch.setattr(health._Migrations, "complete", False)


@pytest.fixture
def stale_message(user):
    """An email queued 11 minutes ago and never sent (its dispatch waits for a commit that this test never makes)."""
    with freeze_time(timezone.now() - timedelta(minutes=11)):
        notify_person(user, event="account.unlocked")
    return OutboundMessage.objects.get(status=OutboundMessage.Status.QUEUED)


def assert_never_cached(response_headers) -> None:
    assert "no-store" in response_headers["Cache-Control"]


def test_healthz_makes_no_database_query(client, assert_num_statements):
    with assert_num_statements(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert_never_cached(response.headers)
    assert "Set-Cookie" not in response.headers


def test_healthz_through_the_production_application_answers_any_host_over_plain_http(
    application, settings, assert_num_statements
):
    """A load balancer probes a node by its address, over HTTP: no Host check, no HTTPS redirect, no middleware."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["enroll.example.edu"]
    with assert_num_statements(0):
        status, headers, content = call(application, "GET", "/healthz", headers={"Host": "10.0.0.5:8000"})
    assert status == 200 and json.loads(content) == {"status": "ok"}
    assert_never_cached(headers)
    assert "Set-Cookie" not in headers and "Content-Security-Policy" not in headers
    status, _, _ = call(application, "POST", "/healthz")
    assert status == 405


def test_readyz_on_a_migrated_database_is_ready_with_details_for_loopback(client, fresh_process):
    response = client.get("/readyz")  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200
    assert_never_cached(response.headers)
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["outbox"] == {
        "ok": True,
        "oldest_queued_seconds": 0,
        "limit_seconds": settings.READY_OUTBOX_MAX_AGE_SECONDS,
        "ms": body["checks"]["outbox"]["ms"],
    }


def test_readyz_asks_for_the_migration_plan_until_it_is_complete_then_only_pings(
    client, fresh_process, assert_max_num_statements, assert_num_statements
):
    with assert_max_num_statements(5):
        assert client.get("/readyz?exclude=outbox").status_code == 200
    assert health._Migrations.complete
    with assert_num_statements(1):  # is the server read-only? (the ping)
        assert client.get("/readyz?exclude=outbox").status_code == 200


def test_a_stale_queued_message_makes_readyz_unavailable(client, stale_message):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert_never_cached(response.headers)
    outbox = response.json()["checks"]["outbox"]
    assert outbox["ok"] is False and 11 * 60 <= outbox["oldest_queued_seconds"] < 12 * 60
    assert response.json()["checks"]["database"]["ok"] is True


def test_a_young_queued_message_keeps_readyz_ready(client, user):
    notify_person(user, event="account.unlocked")
    assert OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED).exists()
    assert client.get("/readyz").status_code == 200


def test_the_outbox_threshold_is_a_setting(client, stale_message, settings):
    settings.READY_OUTBOX_MAX_AGE_SECONDS = 15 * 60
    assert client.get("/readyz").status_code == 200


def test_a_check_left_out_is_not_run_and_an_unknown_one_is_refused(client, stale_message):
    response = client.get("/readyz?exclude=outbox")
    assert response.status_code == 200 and set(response.json()["checks"]) == {"database", "directory"}
    response = client.get("/readyz?exclude=outbx")
    assert response.status_code == 400 and response.json()["unknown_checks"] == ["outbx"]


def test_details_are_hidden_from_an_address_outside_the_detail_networks(client, stale_message):
    response = client.get("/readyz", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    response = client.get("/readyz?exclude=outbox", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_details_go_to_a_configured_network_by_the_sites_client_address_rule(client, stale_message, settings):
    settings.HEALTH_DETAIL_NETWORKS = ["10.20.0.0/16"]
    assert "checks" not in client.get("/readyz").json()  # loopback is no longer listed
    assert "checks" in client.get("/readyz", REMOTE_ADDR="10.20.3.4").json()
    assert "checks" in client.get("/readyz", REMOTE_ADDR="::ffff:10.20.3.4").json()
    # Behind one proxy the client is what that proxy saw; what the client wrote further left proves nothing.
    settings.TRUSTED_PROXY_COUNT = 1
    behind = {"REMOTE_ADDR": "127.0.0.1"}
    assert "checks" in client.get("/readyz", HTTP_X_FORWARDED_FOR="10.20.3.4", **behind).json()
    assert "checks" not in client.get("/readyz", HTTP_X_FORWARDED_FOR=f"10.20.3.4, {OUTSIDE}", **behind).json()
    assert "checks" not in client.get("/readyz", REMOTE_ADDR="10.20.3.4", HTTP_X_FORWARDED_FOR=OUTSIDE).json()


def test_readyz_through_the_production_application(application, stale_message, settings, caplog):
    settings.ALLOWED_HOSTS = ["enroll.example.edu"]
    status, headers, content = call(application, "GET", "/readyz", headers={"Host": "10.0.0.5"})
    assert status == 503 and json.loads(content)["checks"]["outbox"]["ok"] is False
    assert_never_cached(headers)
    # "Not ready" is the probe's answer, asked every few seconds: not an error in the log.
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    settings.TRUSTED_PROXY_COUNT = 1  # from 127.0.0.1, the proxy, for a client on the internet
    status, _, content = call(application, "GET", "/readyz?exclude=outbox", headers={"X-Forwarded-For": OUTSIDE})
    assert status == 200 and json.loads(content) == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_is_unavailable_while_the_server_refuses_writes(client):
    """As on a standby, or a server an operator set read-only: a node whose connection reached it cannot take a
    spent step or an audit event, so the load balancer must take it out (docs/operations.md, failover)."""
    with connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
    try:
        response = client.get("/readyz?exclude=outbox")
        assert response.status_code == 503
        database = response.json()["checks"]["database"]
        assert database == {"ok": False, "read_only": True, "ms": database["ms"]}
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET default_transaction_read_only")
    assert client.get("/readyz?exclude=outbox").status_code == 200


def migrate(*target: str) -> None:
    """``manage.py migrate`` in its own process on the test database, as its owner (the app's role owns nothing)."""
    db = connection.settings_dict
    url = OWNER_DATABASE_URL or f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DATABASE_APP_ROLE": db["USER"] if OWNER_DATABASE_URL else ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", *target, "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_migration_rolled_back_makes_readyz_unavailable_until_it_is_applied_again(client, fresh_process):
    """The check reads Django's real migration plan: ``migrate vpn 0001`` undoes the latest VPN migration."""
    latest = "vpn.0002_radius_client_message_authenticator"
    migrate("vpn", "0001")
    try:
        assert health.unapplied_migrations(connection) == [latest]
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"] == {
            "ok": False,
            "unapplied_migrations": 1,
            "first_unapplied": latest,
            "ms": response.json()["checks"]["database"]["ms"],
        }
        assert "checks" not in client.get("/readyz", REMOTE_ADDR=OUTSIDE).json()
        assert not health._Migrations.complete
    finally:
        migrate()
    assert health.unapplied_migrations(connection) == []
    assert client.get("/readyz").status_code == 200
    assert health._Migrations.complete


def test_a_detail_network_that_is_no_network_stops_the_start():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "HEALTH_DETAIL_NETWORKS": "127.0.0.0/8,10.0.0.300/24"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "10.0.0.300/24" in result.stderr, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def node_without_database():
    """The site under gunicorn with production's HTTPS settings, its PostgreSQL at an address where none listens."""
    port, dead = _free_port(), _free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"postgres://enrollment@127.0.0.1:{dead}/enrollment",
        "SITE_URL": "https://mfa.example.edu",
        "ALLOWED_HOSTS": "mfa.example.edu",
        "BEHIND_TLS_PROXY": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", f"--bind=127.0.0.1:{port}", "--workers=1"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: process.poll() is not None or _listening(port), timeout=30)
        assert process.poll() is None, "gunicorn did not start"
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def get(port: int, path: str) -> tuple[int, dict, bytes]:
    """Over plain HTTP, by address, as a load balancer probes a node."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_a_node_that_cannot_reach_its_database_is_alive_but_not_ready(node_without_database):
    status, headers, content = get(node_without_database, "/healthz")
    assert status == 200 and json.loads(content) == {"status": "ok"}
    assert_never_cached(headers)
    status, headers, content = get(node_without_database, "/readyz")
    assert status == 503
    assert_never_cached(headers)
    checks = json.loads(content)["checks"]
    assert checks["database"]["ok"] is False and checks["database"]["error"].startswith("OperationalError"), checks
    assert checks["outbox"] == {"ok": False, "error": "not checked: the database failed"}
    # Only the probes skip the Host check: the site itself refuses a Host it does not serve.
    status, _, _ = get(node_without_database, "/account/sign-in/")
    assert status == 400


def test_readyz_asks_the_directory_when_one_is_configured(client, ldap_directory):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["directory"]["configured"] is True
    ldap_directory.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    directory = response.json()["checks"]["directory"]
    assert directory["ok"] is False and directory["error"]
    # A load balancer leaves it to the monitoring: a directory down takes no node out.
    assert client.get("/readyz?exclude=outbox&exclude=directory").status_code == 200


def test_readyz_without_a_directory_says_so(client, settings):
    settings.LDAP_SERVER_URIS = []
    directory = client.get("/readyz").json()["checks"]["directory"]
    assert (directory["ok"], directory["configured"]) == (True, False)
