"""The deploy check refuses the example file's placeholders (identity.E105), and `make check-deploy` still passes."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings

from identity.checks import _looks_hand_made, check_no_placeholders

from .test_http_security import example_values

ROOT = Path(settings.BASE_DIR)


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_files_placeholders_fail_the_deploy_check():
    result = deploy_check(example_values())
    assert result.returncode != 0
    refused = [line for line in result.stderr.splitlines() if "identity.E105" in line]
    for name in (
        "SECRET_KEY",
        "AUDIT_CHECKPOINT_KEY",
        "FACTOR_ENCRYPTION_KEYS[0]",
        "the DATABASE_URL password",
        "the EMAIL_URL password",
        "TWILIO_AUTH_TOKEN",
    ):
        assert any(f") {name} is a placeholder" in line for line in refused), (name, result.stderr)
    # Secrets are named, never printed.
    assert example_values()["SECRET_KEY"] not in result.stderr


def test_generated_values_pass_like_make_check_deploy_substitutes_them():
    env = {name: value.replace("replace-me", "9f3c2a71d0e84b6c") for name, value in example_values().items()}
    env["SECRET_KEY"] = "Vb2-" + os.urandom(32).hex()
    env["AUDIT_CHECKPOINT_KEY"] = "Ck7-" + os.urandom(32).hex()
    env["FACTOR_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    del env["DATABASE_URL"]  # no database here, as in make check-deploy: the role check says it was skipped
    result = deploy_check(env)
    assert result.returncode == 0, result.stderr
    assert "identity.I106" in result.stderr


def test_a_typed_fernet_key_is_told_from_a_generated_one():
    assert _looks_hand_made(example_values()["FACTOR_ENCRYPTION_KEYS"])
    assert not any(_looks_hand_made(Fernet.generate_key().decode()) for _ in range(200))


@override_settings(SECRET_KEY="please-change-me-" + "x" * 40, FACTOR_ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
def test_a_reminder_in_the_secret_key_is_refused():
    assert [problem.msg.split(" is ")[0] for problem in check_no_placeholders(None)] == ["SECRET_KEY"]
