"""A newcomer's first minute: ``make run`` on the address asked for, the demo account printed last, framed.

The commands are the ones ``make -n run`` prints (so the Makefile is what is tested), run against a fresh SQLite
database with no other environment, as on a fresh machine.
"""

import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_run_commands(env) -> list[str]:
    out = subprocess.run(["make", "-n", "run"], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "manage.py" in line]


@pytest.fixture
def newcomer_env(tmp_path):
    keep = ("PATH", "HOME", "LANG", "LC_ALL")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return env


def test_make_run_takes_port_and_host_from_the_environment(newcomer_env):
    commands = _make_run_commands(newcomer_env | {"PORT": "8123", "HOST": "127.0.0.1"})
    assert commands[-1].endswith("manage.py run_demo 127.0.0.1:8123")
    assert "SITE_URL=${SITE_URL:-http://localhost:8123}" in commands[-1]
    # A default gateway that prints (the box below says so); identity names no class of devices.
    assert re.search(r"PHONE_GATEWAY=\$\{PHONE_GATEWAY:-[\w.]+\}", commands[-1])
    default = _make_run_commands(newcomer_env)
    assert default[-1].endswith("manage.py run_demo localhost:8000")


def test_make_run_prints_the_demo_account_last_framed_with_the_url_to_open(newcomer_env):
    port = _free_port()
    env = newcomer_env | {"PORT": str(port), "PYTHONUNBUFFERED": "1"}
    migrate, serve = _make_run_commands(env)
    subprocess.run(["sh", "-c", migrate], cwd=ROOT, env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        ["sh", "-c", f"exec env {serve} --noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output = ""
        deadline = time.monotonic() + 60
        while (
            not re.search(r"\+-+\+\n(\|.*\|\n)+\+-+\+", output)
            and time.monotonic() < deadline
            and server.poll() is None
        ):
            ready, _, _ = select.select([server.stdout], [], [], 1)
            if ready:
                # os.read, not readline: a text wrapper's own buffer would hide lines from select.
                output += os.read(server.stdout.fileno(), 65536).decode()
        box = re.search(r"(\+-+\+\n(?:\|.*\|\n)+\+-+\+)", output)
        assert box, output
        # Last: after the server's own banner and warning.
        assert output.index("Starting development server") < box.start()
        assert f"Open http://localhost:{port}/ in your browser" in box.group(1)
        password = re.search(r"Password:\s+(\S+)", box.group(1)).group(1)
        assert "Institution ID:  demo" in box.group(1)
        assert "printed here (development only)" in box.group(1)
        with urllib.request.urlopen(f"http://localhost:{port}/account/sign-in/", timeout=10) as page:
            assert page.status == 200
        check = (
            "from django.contrib.auth import authenticate; "
            f"print(authenticate(username='demo', password={password!r}) is not None)"
        )
        signed = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", check], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert signed.stdout.strip().splitlines()[-1] == "True", signed.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
