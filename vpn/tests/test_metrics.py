"""Prometheus metrics, scraped as Prometheus does: the web site's ``/metrics`` and the RADIUS server's port, after
real checks (``duo_client`` against the live server, Debian's ``radclient`` against the RADIUS process)."""

import json
import re
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import duo_client
import httpx
import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from devices.models import OutboundMessage, Registration
from devices.outbox import queue_email
from identity.directory.models import DirectorySyncRun
from identity.models import User
from identity.tests.test_http_security import example_values
from testsupport import PASSWORD, REQUIRE_SERVICES, free_tcp_port, fresh_code, wait_for, wrong_code
from vpn.tests.test_api_process import api_process
from vpn.tests.test_radius import (  # noqa: F401 (fixtures)
    app_device,
    radclient,
    radius_client,
    radius_log,
    radius_person,
    radius_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scrape-token-for-the-tests-0123456789"  # noqa: S105


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from a scrape's text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def assert_moved(before: str, after: str, expected: list[tuple[str, dict, float]]) -> None:
    """Each series (name, labels) moved by the number given between two scrapes."""
    moved = [
        (name, labels, value(after, name, **labels) - value(before, name, **labels)) for name, labels, _ in expected
    ]
    assert moved == expected


def scrape(**extra) -> str:
    response = Client().get("/metrics", REMOTE_ADDR=extra.pop("REMOTE_ADDR", "127.0.0.1"), **extra)
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def assert_no_person_in_labels(text: str) -> None:
    """No label value is a person's ID, database id or phone number (in any of the forms we store or show)."""
    people = {str(v) for pair in User.objects.values_list("pk", "username") for v in pair}
    phones = {
        str(number)
        for number in Registration.objects.exclude(phone_number="").values_list("phone_number", flat=True)
        if number
    }
    phones |= {phone.lstrip("+") for phone in phones}
    # Ours: Python's own (a garbage collector's generation "1") are not about anyone.
    values = {v for (name, labels) in samples(text) if name.startswith("enrollment_") for _, v in labels}
    assert people and not values & people, values & people
    assert not values & phones, values & phones


def assert_checks_moved(before: str, after: str, door: str, results: dict[str, int]) -> None:
    """The VPN checks at ``door`` moved by these numbers per result, and their latency histogram with them."""
    expected = [("enrollment_vpn_checks_total", {"door": door, "result": r}, n) for r, n in results.items()]
    expected.append(("enrollment_vpn_check_seconds_count", {"door": door}, sum(results.values())))
    assert_moved(before, after, expected)


# --- /metrics on the web site ---------------------------------------------------------------------------


def test_metrics_are_served_to_loopback_by_default():
    text = scrape()
    # Counters live as long as the process (earlier tests may have moved them, or none yet): the gauges read from the
    # database at scrape time are what every scrape has.
    assert "# TYPE enrollment_outbox_oldest_queued_age_seconds gauge" in text
    assert value(text, "enrollment_outbox_readable") == 1


def test_metrics_are_refused_to_another_network_without_the_token(settings):
    settings.METRICS_TOKEN = TOKEN
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer not-the-token"}, {"HTTP_AUTHORIZATION": TOKEN}):
        response = Client().get("/metrics", REMOTE_ADDR="203.0.113.7", **headers)
        assert response.status_code == 403
        assert b"enrollment_" not in response.content
    scrape(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def test_no_token_is_accepted_when_none_is_configured(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_metrics_networks_follow_the_client_address_rule(settings):
    """Behind one trusted proxy the proxy's own address proves nothing; what it saw (the last hop) decides, and an
    address the client wrote further left cannot buy access."""
    settings.METRICS_NETWORKS = ["10.20.0.0/16"]
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7", **proxy).status_code == 403
    spoofed = "10.20.1.1, 203.0.113.7"
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR=spoofed, **proxy).status_code == 403
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="10.20.1.1", **proxy).status_code == 200


# --- The Auth API ---------------------------------------------------------------------------------------


def test_auth_api_checks_are_counted_by_result_with_their_latency(duo, vpn_person):
    before = scrape()
    device = app_device(vpn_person)
    assert duo().auth(factor="passcode", username="vpnuser", passcode=fresh_code(device))["result"] == "allow"
    assert duo().auth(factor="passcode", username="vpnuser", passcode=wrong_code(device))["result"] == "deny"
    assert duo().auth(factor="passcode", username="nobody", passcode="123456")["result"] == "deny"
    with pytest.raises(RuntimeError):
        duo(skey="not-the-secret-key-of-this-integration-at-all").auth(
            factor="passcode", username="vpnuser", passcode="123456"
        )
    duo().preauth(username="vpnuser")  # not a check: not counted
    after = scrape()
    assert_checks_moved(before, after, "auth_api", {"allow": 1, "deny": 2, "refused": 1, "error": 0})
    # The histogram is process-wide: earlier tests add to it, so only what these four checks added is bounded.
    seconds = "enrollment_vpn_check_seconds_sum"
    assert 0 < value(after, seconds, door="auth_api") - value(before, seconds, door="auth_api") < 30
    assert_no_person_in_labels(after)


def test_a_lockout_and_web_sign_ins_are_counted_by_factor_and_outcome(client, vpn_person, duo, settings):
    before = scrape()
    device = app_device(vpn_person)
    client.post("/account/sign-in/", {"username": "vpnuser", "password": PASSWORD})
    for code in (wrong_code(device), fresh_code(device)):  # the right one too soon: django-otp's back-off
        client.post("/account/sign-in/second-factor/", {"device": device.persistent_id, "code": code})
    time.sleep(settings.OTP_TOTP_THROTTLE_FACTOR + 0.1)
    client.post("/account/sign-in/second-factor/", {"device": device.persistent_id, "code": fresh_code(device)})
    assert client.session.get("_auth_user_id") == str(vpn_person.pk)
    Client().post("/account/sign-in/", {"username": "vpnuser", "password": "not the password"})
    settings.LOCKOUT_THRESHOLD = 2
    for n in range(2):  # different requests, so the second is not refused as a replay of the first
        duo().auth(factor="passcode", username="vpnuser", passcode=wrong_code(device), ipaddr=f"192.0.2.{n}")
    after = scrape()
    signins, app = "enrollment_signins_total", "authenticator_app"
    assert_moved(
        before,
        after,
        [
            (signins, {"factor": "password", "outcome": "ok"}, 1),
            (signins, {"factor": "password", "outcome": "wrong"}, 1),
            (signins, {"factor": app, "outcome": "wrong"}, 1),
            (signins, {"factor": app, "outcome": "throttled"}, 1),
            (signins, {"factor": app, "outcome": "ok"}, 1),
            ("enrollment_lockouts_total", {"entry_point": "vpn"}, 1),
        ],
    )
    assert User.objects.get(pk=vpn_person.pk).is_locked
    assert_no_person_in_labels(after)


# --- RADIUS: the server's own port ----------------------------------------------------------------------


def documented_metrics_env(port: int) -> dict[str, str]:
    """The metrics settings of config/production.env.example (its token replaced by the tests'), on ``port``: a
    free one, where radius.env and worker-<queue>.env name fixed ports another test run may hold."""
    example = example_values()
    env = {name: example[name] for name in ("METRICS_HOST", "METRICS_NETWORKS") if name in example}
    return {**env, "METRICS_TOKEN": TOKEN, "METRICS_PORT": str(port)}


def scrape_from_elsewhere(port: int, token: str | None = TOKEN) -> httpx.Response:
    """A scrape as Prometheus on another machine sends it, with ``deploy/prometheus.yml``'s bearer token: to an
    address of this machine that is not 127.0.0.1 (a port bound to 127.0.0.1, METRICS_HOST's default, refuses the
    connection), from an address outside METRICS_NETWORKS's loopback."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3")) as client:
        return client.get(f"http://127.0.0.2:{port}/metrics", headers=headers)


@pytest.fixture
def metrics_port() -> int:
    # Found free when the test starts, not when the module is imported: a port free at collection may be another
    # process's by the time the test runs, many minutes later.
    return free_tcp_port()


@pytest.fixture
def radius_env(metrics_port):
    return documented_metrics_env(metrics_port)


@pytest.mark.skipif(not shutil.which("radclient") and not REQUIRE_SERVICES, reason="needs Debian's radclient")
def test_radius_checks_are_counted_on_the_servers_own_port(radius_client, radius_person, radius_server, metrics_port):  # noqa: F811
    """With the production example's metrics settings, as Prometheus on another machine scrapes it."""
    assert scrape_from_elsewhere(metrics_port, token=None).status_code == 403  # outside METRICS_NETWORKS
    assert scrape_from_elsewhere(metrics_port, token="wrong").status_code == 403
    before = scrape_from_elsewhere(metrics_port).text
    out = radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": PASSWORD})
    assert "Access-Challenge" in out
    state = re.search(r"State = (0x[0-9a-f]+)", out).group(1)
    code = fresh_code(app_device(radius_person))
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code, "State": state}
    )
    assert "Access-Accept" in out
    radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": "wrong"})
    after = scrape_from_elsewhere(metrics_port).text
    assert_checks_moved(before, after, "radius", {"challenge": 1, "allow": 1, "deny": 1, "error": 0})
    assert "enrollment_outbox_messages" not in after  # the web site's scrape reads the database, not this one
    assert_no_person_in_labels(after)


# --- The dashboard and the alert rules ------------------------------------------------------------------

DEPLOY = ROOT / "deploy"
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def known_names(text: str) -> set[str]:
    """Every series name a scrape can carry: each family's ``# TYPE`` name and its samples' suffixes."""
    names = set()
    for name in re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE):
        names.add(name)
        names.update(name + suffix for suffix in SUFFIXES)
    return names


def queried_names(text: str) -> set[str]:
    return set(re.findall(r"\benrollment_[a-z_]+", text))


@pytest.fixture
def applied_sync(db):
    """An applied directory sync, so the scrape carries the series only such a run gives."""
    return DirectorySyncRun.objects.create(status="applied", trigger="command", finished_at=timezone.now())


def test_the_dashboard_queries_only_metrics_that_exist(applied_sync):
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    names = set().union(*(queried_names(expr) for expr in exprs))
    assert names and names <= known_names(scrape()), names - known_names(scrape())
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for subject in ("vpn checks", "latency", "outbox", "sign-in", "directory sync"):
        assert subject in titles


def test_the_alert_rules_are_valid_and_query_only_metrics_that_exist(applied_sync):
    rules = DEPLOY / "prometheus-alerts.yml"
    names = queried_names(rules.read_text())
    assert names and names <= known_names(scrape()), names - known_names(scrape())
    for alert in ("VpnCheckErrors", "VpnCheckLatencyP99", "OutboxStuck", "DirectorySyncFailed"):
        assert f"alert: {alert}" in rules.read_text()
    if not shutil.which("promtool"):
        if REQUIRE_SERVICES:
            pytest.fail("promtool (Debian's prometheus package) is needed to check the rules")
        pytest.skip("needs promtool (Debian's prometheus package)")
    result = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Several gunicorn workers: one scrape adds up every process --------------------------------------------


@pytest.fixture
def two_workers(tmp_path, integration):
    """The Auth API's process under gunicorn with two workers sharing a metrics directory, on this test's database."""
    (tmp_path / "metrics").mkdir()
    with api_process(tmp_path / "metrics", workers=2) as base:
        yield int(base.rsplit(":", 1)[1]), tmp_path / "metrics"


def test_under_gunicorns_workers_a_scrape_counts_the_checks_of_every_process(two_workers, integration):
    port, directory = two_workers
    client = duo_client.Auth(
        ikey=integration.integration_key, skey=integration.secret, host="127.0.0.1", port=port, ca_certs="HTTP"
    )
    for n in range(12):
        assert (
            client.auth(factor="passcode", username="nobody", passcode="123456", ipaddr=f"192.0.2.{n}")["result"]
            == "deny"
        )
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert value(text, "enrollment_vpn_checks_total", door="auth_api", result="deny") == 12
    assert value(text, "enrollment_vpn_check_seconds_count", door="auth_api") == 12
    assert len({path.name.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}) >= 2  # one per worker


def test_a_bad_metrics_network_or_a_short_token_fails_the_checks(settings):
    from identity.checks import check_metrics_settings

    assert check_metrics_settings(None) == []
    settings.METRICS_NETWORKS = ["10.0.0.0/8", "not-a-network"]
    settings.METRICS_TOKEN = "short"
    assert [error.id for error in check_metrics_settings(None)] == ["identity.E011", "identity.E012"]


# --- The outbox: read at scrape time, counted by a real worker on its own port ------------------------------


def test_the_outbox_age_is_read_from_the_database_at_each_scrape():
    message = OutboundMessage.objects.create(channel="sms", recipient="+16175550123", template="t", holds_secret=True)
    OutboundMessage.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(minutes=7))
    text = scrape()
    assert value(text, "enrollment_outbox_messages", channel="sms", status="queued") == 1
    assert 7 * 60 <= value(text, "enrollment_outbox_oldest_queued_age_seconds", channel="sms") < 8 * 60
    assert value(text, "enrollment_outbox_oldest_queued_age_seconds", channel="email") == 0
    assert value(text, "enrollment_outbox_readable") == 1
    assert "+16175550123" not in text and "16175550123" not in text


def test_a_prefork_worker_serves_the_counts_of_its_pool_on_its_port(start_worker, tmp_path):
    """With the production example's metrics settings, as Prometheus on another machine scrapes it."""
    port = free_tcp_port()
    (tmp_path / "worker-metrics").mkdir()
    start_worker(
        "--pool=prefork",
        "--concurrency=2",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"),
        **documented_metrics_env(port),
    )
    for n in range(4):
        queue_email(user=None, to=f"p{n}@example.edu", subject="s", body="b", template="t", holds_secret=False)
    wait_for(lambda: OutboundMessage.objects.filter(status="sent").count() == 4, timeout=60)
    assert scrape_from_elsewhere(port, token=None).status_code == 403
    text = scrape_from_elsewhere(port).text
    assert value(text, "enrollment_outbox_deliveries_total", channel="email", outcome="sent") == 4
    assert "enrollment_outbox_messages" not in text  # the web site's scrape reads the database
