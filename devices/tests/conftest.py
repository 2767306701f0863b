import pytest
from freezegun import freeze_time

from .fakes import RecordingGateway
from .helpers import MOBILE, new_key, register, step_start


@pytest.fixture
def clock():
    """Time frozen a few seconds into a TOTP step; move it with ``clock.tick(seconds)``."""
    with freeze_time(step_start()) as frozen:
        yield frozen


@pytest.fixture
def person(make_user):
    """Someone with no device yet, signed in by the test when needed."""
    return make_user("asmith", first_name="Ann", last_name="Smith")


@pytest.fixture
def recording_gateway(settings):
    """Texts and calls go to the in-process recording gateway, for tests to read the codes back."""
    settings.PHONE_GATEWAY = "devices.tests.fakes.RecordingGateway"
    RecordingGateway.delivered.clear()
    yield RecordingGateway
    RecordingGateway.delivered.clear()


@pytest.fixture
def sending(django_capture_on_commit_callbacks):
    """Run what a request queued as its commit would: the send task, in-process, into the recording gateway."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def wizard(client, person, sign_in):
    """``person`` signed in, with a client at the wizard's door."""
    sign_in(client, person)
    return client


@pytest.fixture
def other(make_user):
    """Another person: their numbers and devices are never ``person``'s to reach."""
    return make_user("bjones", first_name="Bob", last_name="Jones")


@pytest.fixture
def no_back_off(settings):
    # django-otp's back-off (1, 2, 4... s after a failure) would refuse the next code unseen under a
    # frozen clock; the back-off itself is tested with the sign-in.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def phone(clock, person, enroll):
    """``person``'s one mobile phone with the app, time frozen."""
    return enroll(person, number=MOBILE)


@pytest.fixture
def upgrading(client, person, phone, sign_in):
    """``person`` signed in with the old phone; returns the client."""
    sign_in(client, person, phone.app_device)
    return client


@pytest.fixture
def key_holder(person):
    """Ann, with one registered security key (and no other device)."""
    key = new_key()
    register(person, key)
    return person, key
