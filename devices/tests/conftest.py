import pytest
from freezegun import freeze_time

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
