"""SES-05: cookies and security headers, and ``check --deploy`` with the production settings."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from testsupport import SECOND_FACTOR, SIGN_IN, post_password

pytestmark = pytest.mark.django_db

PRODUCTION_ENV_EXAMPLE = Path(settings.BASE_DIR) / "config" / "production.env.example"


def production_env() -> dict[str, str]:
    """This process's environment with the variables of ``config/production.env.example`` on top, its
    placeholder secrets replaced by generated ones as ``make check-deploy`` does (identity.E105 refuses them)."""
    values = {key: value.replace("replace-me", secrets.token_hex(16)) for key, value in example_values().items()}
    values["SECRET_KEY"] = secrets.token_urlsafe(50)
    values["AUDIT_CHECKPOINT_KEY"] = secrets.token_urlsafe(50)
    values["FACTOR_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    return {**os.environ, **values}


def example_values() -> dict[str, str]:
    """The variables of ``config/production.env.example`` as written."""
    values = {}
    for line in PRODUCTION_ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _run_in_production_mode(*args: str) -> subprocess.CompletedProcess:
    # The example points at database and Redis hosts that do not exist; nothing below connects to them.
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_deploy(**overrides: str | None) -> subprocess.CompletedProcess:
    """``manage.py check --deploy --fail-level WARNING`` with the production example's settings (``production_env``)
    and ``overrides``; ``None`` removes a variable (``DATABASE_URL=None``: no database, as in ``make check-deploy``)."""
    env = {**production_env(), **overrides}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env={name: value for name, value in env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ses05_check_deploy_clean_with_production_example(tmp_path):
    """As ``make check-deploy`` runs it on a machine with no database yet, so the role check (AC-10) and the
    campaigns' check say they were skipped, and why; the example leaves the staff date unset (a new site's staff have
    no keys yet), which is said, not failed on. An empty SQLite file of its own stands for "no database": the
    default one may already hold a migrated demo (``make run``), which the campaigns' check would then read."""
    result = check_deploy(DATABASE_URL=f"sqlite:///{tmp_path / 'no-tables.sqlite3'}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified 3 issues (0 silenced)." in result.stderr, result.stdout + result.stderr
    assert "(campaigns.I001) The enrollment campaigns were not checked" in result.stderr
    assert "(identity.I106) The database role was not checked: DATABASE_URL is not PostgreSQL" in result.stderr
    assert "(identity.I108) STAFF_PHISHING_RESISTANT_FROM is not set" in result.stderr


def test_ses05_check_deploy_fails_with_development_defaults():
    """The deploy checks have teeth: the same command with an http SITE_URL and DEBUG on fails."""
    result = check_deploy(SITE_URL="http://mfa.example.edu", DEBUG="true", DATABASE_URL=None)
    assert result.returncode != 0
    assert "identity.E101" in result.stderr + result.stdout


PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client

client = Client(HTTP_HOST="mfa.example.edu")
tls = client.get("/account/sign-in/", secure=True, HTTP_X_FORWARDED_PROTO="https")
plain = client.get("/account/sign-in/", HTTP_X_FORWARDED_PROTO="http")
cookies = {
    name: {"secure": bool(m["secure"]), "httponly": bool(m["httponly"]), "samesite": m["samesite"]}
    for name, m in tls.cookies.items()
}
print(json.dumps({
    "status": tls.status_code,
    "headers": dict(tls.headers),
    "cookies": cookies,
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location"),
    "settings": {
        name: getattr(settings, name)
        for name in (
            "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
            "CSRF_COOKIE_SECURE", "CSRF_COOKIE_HTTPONLY", "CSRF_COOKIE_SAMESITE", "DEBUG",
        )
    },
}))
"""


@pytest.fixture(scope="module")
def production_probe() -> dict:
    """A sign-in page served by the production settings (no database needed for a first visit)."""
    result = _run_in_production_mode("-c", PROBE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ses05_production_cookies_secure_httponly_samesite(production_probe):
    prod = production_probe["settings"]
    assert prod["DEBUG"] is False
    assert prod["SESSION_COOKIE_SECURE"] is True
    assert prod["SESSION_COOKIE_HTTPONLY"] is True
    assert prod["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert prod["CSRF_COOKIE_SECURE"] is True
    assert prod["CSRF_COOKIE_HTTPONLY"] is True
    assert prod["CSRF_COOKIE_SAMESITE"] in ("Lax", "Strict")
    csrf_cookie = production_probe["cookies"][settings.CSRF_COOKIE_NAME]
    assert csrf_cookie == {"secure": True, "httponly": True, "samesite": prod["CSRF_COOKIE_SAMESITE"]}


def test_ses05_production_sends_hsts_and_redirects_http(production_probe):
    headers = production_probe["headers"]
    assert production_probe["status"] == 200
    hsts = headers["Strict-Transport-Security"]
    assert "max-age=" in hsts
    assert int(hsts.split("max-age=")[1].split(";")[0]) >= 31536000
    assert "includeSubDomains" in hsts
    assert production_probe["plain_status"] == 301
    assert production_probe["plain_location"].startswith("https://mfa.example.edu/")


def test_ses05_production_headers(production_probe):
    headers = production_probe["headers"]
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "no-store" in headers["Cache-Control"]


def test_ses05_cookies_httponly_and_samesite(client, user, password):
    csrf_cookie = client.get(SIGN_IN).cookies[settings.CSRF_COOKIE_NAME]
    assert csrf_cookie["httponly"]
    assert csrf_cookie["samesite"] == "Lax"
    response = post_password(client, user, password)
    session_cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session_cookie["httponly"]
    assert session_cookie["samesite"] == "Lax"
    # Secure is on exactly when the site is served over https (tests run on http, production on https).
    assert bool(session_cookie["secure"]) is settings.SITE_URL.startswith("https://")


def _assert_security_headers(response):
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_ses05_headers_on_sign_in_pages(client, enrolled_user, password):
    sign_in_page = client.get(SIGN_IN)
    _assert_security_headers(sign_in_page)
    assert "no-store" in sign_in_page["Cache-Control"]

    failed = client.post(SIGN_IN, {"username": enrolled_user.username, "password": "wrong password here"})
    _assert_security_headers(failed)
    assert "no-store" in failed["Cache-Control"]

    post_password(client, enrolled_user, password)
    second_factor_page = client.get(SECOND_FACTOR)
    assert second_factor_page.status_code == 200
    _assert_security_headers(second_factor_page)
    assert "no-store" in second_factor_page["Cache-Control"]


def test_ses05_no_store_on_confirm_identity_page(signed_in_client):
    page = signed_in_client.get("/account/sign-in/confirm/?next=/devices/")
    assert page.status_code == 200
    _assert_security_headers(page)
    assert "no-store" in page["Cache-Control"]


@pytest.mark.parametrize(("proxies", "warned"), [(0, True), (1, False)])
def test_deploy_check_warns_when_behind_a_proxy_without_trusting_its_address_header(settings, proxies, warned):
    from identity.checks import check_deploy_identity

    settings.BEHIND_TLS_PROXY = True
    settings.TRUSTED_PROXY_COUNT = proxies
    ids = [problem.id for problem in check_deploy_identity(None)]
    assert ("identity.W104" in ids) is warned
