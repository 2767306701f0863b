"""AC-11: the key that signs the audit chain's checkpoints is a secret of its own, required in production."""

import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings

from identity import audit
from identity.checks import check_audit_checkpoint_key

from .test_http_security import check_deploy

PROBE = (
    "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup(); "
    "from django.conf import settings as s; "
    "print(s.AUDIT_CHECKPOINT_KEY == s.SECRET_KEY, s.AUDIT_CHECKPOINT_KEY == s.DEV_AUDIT_CHECKPOINT_KEY)"
)


def test_ac_11_the_checkpoint_key_is_never_derived_from_the_secret_key():
    env = {name: value for name, value in os.environ.items() if name != "AUDIT_CHECKPOINT_KEY"}
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == ["False", "True"], result.stderr


def test_ac_11_the_deploy_check_requires_a_key_of_its_own(settings):
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    settings.FACTOR_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    for key, said in (
        (settings.DEV_AUDIT_CHECKPOINT_KEY, "AUDIT_CHECKPOINT_KEY is not set"),
        ("k" * 20, "shorter than 32 characters"),
        (settings.SECRET_KEY, "the same as SECRET_KEY"),
        (settings.FACTOR_ENCRYPTION_KEYS[0], "the same as FACTOR_ENCRYPTION_KEYS"),
    ):
        settings.AUDIT_CHECKPOINT_KEY = key
        [problem] = check_audit_checkpoint_key(None)
        assert problem.id == "identity.E107" and said in problem.msg, problem.msg
        assert key not in problem.msg  # named, never printed
    settings.AUDIT_CHECKPOINT_KEY = secrets.token_urlsafe(50)
    assert check_audit_checkpoint_key(None) == []


def test_ac_11_production_without_the_key_fails_the_deploy_check():
    result = check_deploy(AUDIT_CHECKPOINT_KEY=None, DATABASE_URL=None)
    assert result.returncode != 0
    assert "(identity.E107) AUDIT_CHECKPOINT_KEY is not set" in result.stderr, result.stderr


@pytest.mark.django_db
def test_ac_11_a_checkpoint_is_bound_to_its_key_not_to_the_secret_key(settings, user):
    audit.record("test.event", subject=user)
    settings.AUDIT_CHECKPOINT_KEY = secrets.token_urlsafe(50)
    checkpoint = audit.make_checkpoint()
    assert audit.verify_chain(checkpoints=[checkpoint]) is None
    settings.AUDIT_CHECKPOINT_KEY = secrets.token_urlsafe(50)  # the same SECRET_KEY, another checkpoint key
    assert "signature invalid" in audit.verify_chain(checkpoints=[checkpoint]).reason
