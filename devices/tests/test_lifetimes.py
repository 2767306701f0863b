"""Every lifetime shown to a person comes from its setting, and a lifetime of 0 is refused by a system check."""

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from identity.lifetimes import in_words

from .helpers import text, walk_to_activate

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def check_ids() -> set[str]:
    return {problem.id for problem in run_checks()}


def test_lifetimes_in_words():
    assert in_words(timedelta(hours=24)) == "24 hours"
    assert in_words(timedelta(hours=24) - timedelta(milliseconds=3)) == "24 hours"  # read as the person would
    assert in_words(timedelta(hours=1)) == "1 hour"
    assert in_words(timedelta(minutes=90)) == "90 minutes"
    assert in_words(timedelta(minutes=1)) == "1 minute"


def test_the_link_message_says_the_configured_lifetime(client, person, sign_in, settings, mailoutbox):
    settings.ACTIVATION_LINK_TTL = timedelta(hours=6)
    sign_in(client, person)
    registration = walk_to_activate(client)
    response = client.post(f"/enroll/{registration.pk}/email-link/", follow=True)
    page = text(response)
    assert "it works once and only for the next 6 hours." in page
    assert "24 hours" not in page


@pytest.mark.parametrize(
    "name, value",
    [
        ("ACTIVATION_LINK_TTL", timedelta(0)),
        ("PENDING_REGISTRATION_TTL", timedelta(0)),
        ("PHONE_CODE_TTL", timedelta(0)),
        ("WEBAUTHN_CHALLENGE_TTL", timedelta(seconds=-1)),
        ("REAUTH_MAX_AGE_SECONDS", 0),
    ],
)
def test_a_lifetime_of_zero_is_refused_by_a_system_check(name, value):
    assert "devices.E005" not in check_ids()
    with override_settings(**{name: value}):
        assert "devices.E005" in check_ids()


def test_lifetimes_longer_than_the_requirements_allow_are_refused():
    with override_settings(ACTIVATION_LINK_TTL=timedelta(hours=48)):
        assert "devices.E006" in check_ids()
    with override_settings(PHONE_CODE_TTL=timedelta(minutes=30)):
        assert "devices.E006" in check_ids()
