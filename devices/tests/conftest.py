import pytest
from freezegun import freeze_time

from .fakes import RecordingGateway
from .helpers import step_start


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
