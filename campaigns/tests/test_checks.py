"""The deploy check that warns while a campaign lets people onto the VPN without a second factor for good."""

import pytest

from campaigns.checks import check_password_alone_campaigns
from campaigns.models import Campaign
from campaigns.services import close_campaign

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ALLOW = Campaign.Policy.ALLOW_PASSWORD_ALONE


def test_a_campaign_that_requires_enrollment_after_its_deadline_raises_nothing(make_campaign):
    make_campaign(days=7)
    assert check_password_alone_campaigns(None) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"days": 7, "policy_after_deadline": ALLOW},
        {"days": None, "policy_before_deadline": ALLOW},
    ],
    ids=["allows after its deadline", "no deadline"],
)
def test_a_campaign_that_lets_people_in_without_a_second_factor_for_good_is_warned_of(
    make_campaign, campaign_staff, fields
):
    campaign = make_campaign(name="Forever open", **fields)
    [warning] = check_password_alone_campaigns(None)
    assert warning.id == "campaigns.W001"
    assert "Forever open" in warning.msg
    close_campaign(campaign, actor=campaign_staff)
    assert check_password_alone_campaigns(None) == []


def test_a_campaign_without_a_deadline_that_requires_enrollment_is_not_warned_of(make_campaign):
    make_campaign(days=None, policy_before_deadline=Campaign.Policy.REQUIRE_ENROLLMENT)
    assert check_password_alone_campaigns(None) == []
