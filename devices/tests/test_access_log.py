"""OTP-09, ACT-02: an emailed link's token never reaches the web server's access log.

The site runs under gunicorn, as in production, with its access log on; Chromium opens the link as it is in the
email, gives the password and gets the secret. The log then holds every request line and Referer, and no token.
"""

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.error import HTTPError

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core import mail
from django.db import connection

from devices import services

from .browser import PHONE, chromium
from .helpers import LINK_RE, pending_app_registration
from .test_browser_enrollment import _heading

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    """The site under gunicorn against this test's database; yields (base URL, access log path)."""
    db = connection.settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("gunicorn needs the shared PostgreSQL database")
    port = _free_port()
    log = tmp_path / "access.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "",
        "DEBUG": "true",  # static files from the source tree, as under make run
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            f"--access-logfile={log}",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=15)
        connection.close()


def test_otp09_the_token_of_an_emailed_link_is_in_no_access_log_line(gunicorn, make_user, password, mailoutbox):
    base, log = gunicorn
    person = make_user("al8642")
    # The server runs with the production password hashers, which do not read the tests' fast hashes.
    hasher = PBKDF2PasswordHasher()
    person.password = hasher.encode(password, hasher.salt(), iterations=1000)
    person.save(update_fields=["password"])
    registration = pending_app_registration(person)
    services.send_activation_link(registration, actor=person)
    url = LINK_RE.search(mail.outbox[-1].body).group(1)
    token = url.rpartition("#")[2]

    # The log does record request paths: a link with a token in its path (as old emails have) shows up in it.
    in_path = "P" * 43
    with contextlib.suppress(HTTPError):
        urllib.request.urlopen(f"{base}/activate/{in_path}/", timeout=10)
    with chromium() as browser:
        page = browser.new_context(base_url=base, **PHONE).new_page()
        page.goto(base + url.removeprefix(settings.SITE_URL))
        _heading(page, "Activate your authenticator app")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Continue").click()
        _heading(page, "Add the account to your app")

    lines = log.read_text().splitlines()
    assert any(in_path in line for line in lines), "the access log does not record paths; the test proves nothing"
    assert any('"GET /activate/ HTTP/1.1" 200' in line for line in lines)
    assert sum('"POST /activate/ HTTP/1.1"' in line for line in lines) == 2  # the token, then the password
    assert not [line for line in lines if token in line]
    assert not [line for line in lines if token[:12] in line]
