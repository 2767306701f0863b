"""The site's WSGI application (config.wsgi), and the WSGI call the tests of both processes make
(vpn/tests/test_api_process.py for the Auth API's)."""

import email.utils
import io
import sys

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from duo_client.client import Client as DuoClient
from duo_client.client import sign

from testsupport import SIGN_IN

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def call(app, method, path, *, body=b"", headers=None, secure=False):
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "443" if secure else "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in (headers or {}).items()},
    }
    if "HTTP_CONTENT_TYPE" in environ:
        environ["CONTENT_TYPE"] = environ.pop("HTTP_CONTENT_TYPE")
    started = {}

    def start_response(status, response_headers, exc_info=None):
        started["status"], started["headers"] = status, dict(response_headers)

    # As Django's test client does: the request must not close the test's connection (its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        content = b"".join(app(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return int(started["status"].split()[0]), started["headers"], content


def signed_passcode(integration, code):
    body = DuoClient.canon_json({"factor": "passcode", "username": "vpnuser", "passcode": code})
    date = email.utils.formatdate()
    authorization = sign(
        integration.integration_key, integration.secret, "POST", "testserver", "/auth/v2/auth", date, 5, {}, body=body
    )
    headers = {"Authorization": authorization, "Date": date, "Content-Type": "application/json"}
    return body.encode(), headers


@pytest.fixture
def application(settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    from config.wsgi import application

    return application


def test_the_site_keeps_its_middleware(application):
    status, headers, _ = call(application, "GET", SIGN_IN)
    assert status == 200
    assert "csrftoken" in headers.get("Set-Cookie", "")
    assert "Content-Security-Policy" in headers
    assert headers["X-Frame-Options"] == "DENY"
