"""Settings that would widen the VPN gate's windows fail ``manage.py check`` (API-02, API-05)."""

import pytest
from django.core import checks


def vpn_errors() -> set[str]:
    return {problem.id for problem in checks.run_checks(tags=[checks.Tags.security]) if problem.id.startswith("vpn.")}


def test_the_defaults_pass():
    assert vpn_errors() == set()


@pytest.mark.parametrize("seconds", [0, 301, 86400])
def test_api02_a_signature_window_beyond_300_seconds_fails_the_check(settings, seconds):
    settings.VPN_SIGNATURE_MAX_SKEW_SECONDS = seconds
    assert vpn_errors() == {"vpn.E001"}


def test_api05_a_challenge_lifetime_beyond_2_minutes_fails_the_check(settings):
    settings.RADIUS_CHALLENGE_TTL_SECONDS = 600
    assert vpn_errors() == {"vpn.E002"}


def test_a_misspelled_radius_password_mode_fails_the_check(settings):
    settings.RADIUS_PASSWORD_MODE = "code-only"
    assert vpn_errors() == {"vpn.E003"}


@pytest.mark.parametrize("seconds", [-1, 61, 3600])
def test_api03_an_integration_cache_beyond_a_minute_fails_the_check(settings, seconds):
    settings.VPN_INTEGRATION_CACHE_SECONDS = seconds
    assert vpn_errors() == {"vpn.E004"}
