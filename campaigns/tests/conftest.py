from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import services
from vpn.tests.conftest import approve, duo, integration, staff, vpn_person  # noqa: F401
from vpn.tests.test_radius import radius_client, radius_log, radius_server  # noqa: F401


@pytest.fixture
def campaign_staff(make_user):
    return make_user("rollout1", is_staff=True, department="IT")


@pytest.fixture
def make_campaign(campaign_staff):
    """A campaign through the service: started a day ago, deadline in ``days`` days (None: no deadline)."""
    counter = iter(range(1, 1000))

    def make(*, days=7, cohort="everyone", values=(), actor=None, **fields):
        now = timezone.now()
        defaults = {
            "name": f"Campaign {next(counter)}",
            "cohort": cohort,
            "starts_at": now - timedelta(days=1),
            "deadline": None if days is None else now + timedelta(days=days),
            "reminder_days": [] if days is None else [3, 1],
            "email_subject": "Set up two-step sign-in",
            "email_text": "Please set up two-step sign-in by {deadline}.",
        }
        return services.create_campaign(
            actor=actor or campaign_staff, cohort_values=list(values), **{**defaults, **fields}
        )

    return make
