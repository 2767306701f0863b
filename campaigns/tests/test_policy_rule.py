"""One rule for the password alone (``campaigns.services.password_alone_allowed``): for every combination of a
campaign's policies before and after its deadline, the web sign-in and both VPN doors agree on whether a person who
has not enrolled may go on with their password alone now."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import services, texts
from campaigns.models import Campaign
from testsupport import PASSWORD, post_password
from vpn import services as vpn_services
from vpn.services.radius import radius_authenticate

pytestmark = pytest.mark.django_db

ALLOW, REQUIRE = Campaign.Policy.ALLOW_PASSWORD_ALONE, Campaign.Policy.REQUIRE_ENROLLMENT
WIZARD = reverse("devices:start")
MY_DEVICES = reverse("devices:my_devices")


def _campaign(make_campaign, when: str, before: str, after: str) -> Campaign:
    now = timezone.now()
    fields = {"policy_before_deadline": before, "policy_after_deadline": after}
    if when == "before the deadline":
        return make_campaign(days=10, **fields)
    if when == "after the deadline":
        return make_campaign(starts_at=now - timedelta(days=20), days=None, deadline=now - timedelta(days=1), **fields)
    return make_campaign(days=None, **fields)  # no deadline: its policy before the deadline, for good


@pytest.mark.parametrize("when", ["before the deadline", "after the deadline", "without a deadline"])
@pytest.mark.parametrize("before", [ALLOW, REQUIRE])
@pytest.mark.parametrize("after", [ALLOW, REQUIRE])
def test_the_web_and_both_doors_follow_the_policy_now(
    when, before, after, client, make_user, approve, make_campaign, integration, radius_client
):
    person = make_user("newcomer")
    approve(person)
    _campaign(make_campaign, when, before, after)
    allowed = (after if when == "after the deadline" else before) == ALLOW
    policy = services.effective_policy(person)
    assert services.password_alone_allowed(person, policy) is allowed

    # The web: the person may go where they were going, told by when, only while the password alone is allowed.
    response = post_password(client, person)
    assert response.headers["Location"] == (MY_DEVICES if allowed else WIZARD)
    notice = f"{texts.set_up_by(policy)}."
    assert (notice in client.get(MY_DEVICES, follow=True).content.decode()) is allowed

    # The doors say the same.
    answer = vpn_services.preauth(integration, {"username": person.username}, client_ip="10.0.0.1")
    assert answer["result"] == ("allow" if allowed else "enroll"), answer
    radius = radius_authenticate(radius_client, username=person.username, password=PASSWORD, state=None, ip=None)
    assert radius.outcome == ("accept" if allowed else "reject"), radius
    expected = texts.allowed_for_now(policy) if allowed else texts.enroll_first(policy)
    assert answer["status_msg"] == radius.message == expected


def test_a_person_let_in_after_the_deadline_is_not_told_a_date_that_has_passed(make_user, make_campaign):
    person = make_user("late")
    _campaign(make_campaign, "after the deadline", REQUIRE, ALLOW)
    policy = services.effective_policy(person)
    assert services.password_alone_allowed(person, policy) and policy.past_deadline
    date = texts.deadline_text(policy)
    assert texts.set_up_by(policy) == f"Set up two-step sign-in now (the deadline was {date})"
    assert texts.allowed_for_now(policy) == f"{texts.set_up_by(policy)}: {texts.enrollment_address()}"
