"""The Auth API as its own process: gunicorn serving ``config.wsgi_api``, which sets its own settings module
(config.settings_api), on this test's database; and the same middleware and URLs in this process."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import duo_client
import httpx
import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from testsupport import SIGN_IN, fresh_code, gunicorn_port, wait_for
from vpn.tests.test_wsgi import call, signed_passcode

ROOT = Path(__file__).resolve().parents[2]
SITE_PATHS = [SIGN_IN, "/", "/admin/", "/vpn-access/", "/scim/v2/Users", "/static/css/site.css"]


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz").is_success
    except httpx.HTTPError:
        return False


@contextmanager
def api_process(metrics_directory: Path, *, workers: int = 1, **environment: str):
    """``gunicorn config.wsgi_api`` as deploy/enrollment-api.service runs it, on this test's database (unless
    ``environment`` says otherwise, as it may say anything else); yields its base URL. The environment names the
    site's settings module, as a shared environment file may: the entry point must not take it."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_directory),
        **environment,
    }
    # Port 0: the kernel gives gunicorn a port as it binds, which it names in its log; no other server can hold it.
    command = [sys.executable, "-m", "gunicorn", "config.wsgi_api", "-b", "127.0.0.1:0", "-w", str(workers)]
    log = metrics_directory.parent / "gunicorn-api.log"
    with log.open("ab") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{gunicorn_port(server, log)}"
        wait_for(lambda: server.poll() is not None or _answers(base), timeout=60)  # a loaded machine starts slowly
        assert server.poll() is None, f"gunicorn did not start: {log.read_text()}"
        yield base
    finally:
        server.terminate()
        server.wait(15)
        print(f"The Auth API's gunicorn log:\n{log.read_text()}")  # shown with a failing test's output


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_api_process_answers_duo_client_and_serves_no_page_of_the_site(tmp_path, integration, vpn_person):
    (tmp_path / "metrics").mkdir()
    with api_process(tmp_path / "metrics") as base:
        port = int(base.rsplit(":", 1)[1])
        duo = duo_client.Auth(
            ikey=integration.integration_key, skey=integration.secret, host="127.0.0.1", port=port, ca_certs="HTTP"
        )
        assert duo.check()["time"]
        code = fresh_code(vpn_person.registrations.get().app_device)
        assert duo.auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "allow"

        for path in SITE_PATHS:
            response = httpx.get(base + path)
            assert response.status_code == 404, path
            assert response.json() == {"stat": "FAIL", "code": 40401, "message": "Resource not found"}, path
            assert "Set-Cookie" not in response.headers and "Content-Security-Policy" not in response.headers

        # The probes answer any Host over plain HTTP, as a load balancer asks; the metrics count this process's checks.
        assert httpx.get(base + "/healthz", headers={"Host": "10.0.0.5:8001"}).json() == {"status": "ok"}
        assert httpx.get(base + "/readyz?exclude=outbox&exclude=directory").json()["status"] == "ok"
        families = text_string_to_metric_families(httpx.get(base + "/metrics").text)
        allowed = [
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "enrollment_vpn_checks_total" and sample.labels == {"door": "auth_api", "result": "allow"}
        ]
        assert allowed == [1.0]


# --- The same middleware and URLs in this process (the api_application fixture) ------------------------------------


def test_the_api_settings_keep_only_the_middleware_the_api_needs():
    from config import settings, settings_api

    assert settings_api.MIDDLEWARE == [
        "config.health.middleware",
        "identity.request_id.middleware",
        "vpn.middleware.refuse_malformed_requests",
        "django.middleware.security.SecurityMiddleware",
    ]
    assert settings_api.DATABASES["default"]["CONN_HEALTH_CHECKS"] is False
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True  # the site's own are left as they were
    assert settings_api.INSTALLED_APPS == settings.INSTALLED_APPS


def test_the_api_settings_pass_the_deploy_checks_with_only_the_sites_middleware_checks_silenced():
    """As deploy/enrollment-api.service runs them before it serves (ExecStartPre), with the production example."""
    from identity.tests.test_http_security import check_deploy

    result = check_deploy(DJANGO_SETTINGS_MODULE="config.settings_api", DATABASE_URL=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(5 silenced)." in result.stderr, result.stdout + result.stderr  # and no warning: --fail-level WARNING
    assert "identity.I106" in result.stderr  # the role check, skipped here without a database, still runs


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_api_application_answers_a_check_without_cookies(api_application, integration, vpn_person):
    body, headers = signed_passcode(integration, fresh_code(vpn_person.registrations.get().app_device))
    status, response_headers, content = call(api_application(), "POST", "/auth/v2/auth", body=body, headers=headers)
    assert status == 200 and json.loads(content)["response"]["result"] == "allow"
    assert "Set-Cookie" not in response_headers and "Content-Security-Policy" not in response_headers


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_api_application_redirects_plain_http_but_not_the_probes_and_metrics(api_application, settings):
    settings.SECURE_SSL_REDIRECT = True
    application = api_application()
    status, headers, _ = call(application, "GET", "/auth/v2/ping")
    assert status == 301 and headers["Location"].startswith("https://")
    status, _, content = call(application, "GET", "/auth/v2/ping", secure=True)
    assert status == 200 and json.loads(content)["stat"] == "OK"
    # A load balancer and Prometheus ask by the node's address over plain HTTP.
    status, _, content = call(application, "GET", "/healthz", headers={"Host": "10.0.0.5:8001"})
    assert status == 200 and json.loads(content) == {"status": "ok"}
    status, _, content = call(application, "GET", "/metrics", headers={"Host": "10.0.0.5:8001"})
    assert status == 200 and b"enrollment_vpn_checks_total" in content


def test_the_api_application_answers_a_site_path_in_duos_error_shape(api_application):
    status, headers, content = call(api_application(), "GET", SIGN_IN)
    assert status == 404 and json.loads(content)["code"] == 40401
    assert "Set-Cookie" not in headers
