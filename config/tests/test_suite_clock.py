"""The suite's own habits: a frozen clock is the test's, never pytest's."""

import time
from datetime import UTC, datetime

from _pytest import timing
from freezegun import freeze_time


def test_a_frozen_clock_leaves_the_timing_of_tests_alone():
    with freeze_time("2020-01-01"):
        assert datetime.now(UTC).year == 2020 and time.time() < datetime(2020, 1, 2, tzinfo=UTC).timestamp()
        assert datetime.fromtimestamp(timing.Instant().time, UTC).year >= 2026
