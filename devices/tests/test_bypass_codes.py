"""Help-desk bypass codes (BND-10): single use, expiring, only after the password, counted toward OTP-01."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp import devices_for_user
from freezegun import freeze_time

from devices.bypass_codes import current_bypass_codes, issue_bypass_codes
from devices.models import BypassCode, BypassCodeDevice, OutboundMessage
from identity.models import AuditEvent
from identity.services import SecondFactorOutcome, verify_second_factor
from testsupport import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

SIGN_IN = "/account/sign-in/"
SECOND_FACTOR = "/account/sign-in/second-factor/"


@pytest.fixture
def desk(make_user):
    return make_user("desk1", is_staff=True)


def _device(person):
    return current_bypass_codes(person)


def test_bnd10_codes_are_random_hashed_and_single_use(enrolled_user, desk):
    codes = issue_bypass_codes(enrolled_user, actor=desk, count=3, valid_minutes=15)

    assert len(set(codes)) == 3
    stored = list(BypassCode.objects.values_list("code_hash", flat=True))
    assert not set(codes) & set(stored)
    device = _device(enrolled_user)
    assert verify_second_factor(enrolled_user, device=device, code=codes[0], ip=None) == SecondFactorOutcome.OK
    assert verify_second_factor(enrolled_user, device=device, code=codes[0], ip=None) == SecondFactorOutcome.WRONG
    device.throttle_reset()
    assert verify_second_factor(enrolled_user, device=device, code=codes[1], ip=None) == SecondFactorOutcome.OK


def test_bnd10_codes_expire_and_the_device_is_listed_only_while_valid(enrolled_user, desk):
    codes = issue_bypass_codes(enrolled_user, actor=desk, count=1, valid_minutes=15)
    device = _device(enrolled_user)
    assert device in list(devices_for_user(enrolled_user, confirmed=True))

    with freeze_time(timezone.now() + timedelta(minutes=16)):
        assert _device(enrolled_user) is None
        assert not [d for d in devices_for_user(enrolled_user, confirmed=True) if isinstance(d, BypassCodeDevice)]
        assert not device.verify_token(codes[0])


@pytest.mark.parametrize("count,minutes", [(0, 15), (11, 15), (1, 90), (1, 5)])
def test_bnd10_count_and_lifetime_are_bounded(enrolled_user, desk, count, minutes):
    with pytest.raises(ValidationError):
        issue_bypass_codes(enrolled_user, actor=desk, count=count, valid_minutes=minutes)
    assert not BypassCodeDevice.objects.exists()


def test_bnd10_a_new_set_ends_the_old_one(enrolled_user, desk):
    old = issue_bypass_codes(enrolled_user, actor=desk, count=2, valid_minutes=15)
    old_device = _device(enrolled_user)
    issue_bypass_codes(enrolled_user, actor=desk, count=2, valid_minutes=15)

    old_device.refresh_from_db()
    assert not old_device.confirmed
    assert not old_device.verify_token(old[0])
    assert _device(enrolled_user) != old_device


def test_bnd10_bnd03_issue_is_audited_and_notified(enrolled_user, desk):
    issue_bypass_codes(enrolled_user, actor=desk, count=2, valid_minutes=30)

    event = AuditEvent.objects.get(action="bypass_codes.issued")
    assert (event.actor, event.subject, event.details["count"], event.details["valid_minutes"]) == (
        desk,
        enrolled_user,
        2,
        30,
    )
    assert OutboundMessage.objects.filter(user=enrolled_user, template="notice:bypass_codes.issued").exists()


def test_bnd10_refused_before_the_password_step(client, enrolled_user, desk):
    codes = issue_bypass_codes(enrolled_user, actor=desk, count=1, valid_minutes=15)
    device = _device(enrolled_user)

    response = client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": codes[0]})

    assert response.status_code == 302 and response["Location"].startswith(SIGN_IN)
    assert BypassCode.objects.get().used_at is None


def test_bnd10_signs_in_after_the_password_and_says_it_was_used(client, enrolled_user, desk):
    codes = issue_bypass_codes(enrolled_user, actor=desk, count=2, valid_minutes=15)
    device = _device(enrolled_user)
    client.post(SIGN_IN, {"username": enrolled_user.username, "password": PASSWORD})
    assert b"Bypass codes from the help desk" in client.get(SECOND_FACTOR).content

    response = client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": codes[1]}, follow=True)

    assert response.status_code == 200
    assert b"bypass code from the help desk" in response.content and b"1 code is left" in response.content
    ok = AuditEvent.objects.filter(action="signin.second_factor_ok", subject=enrolled_user).latest("sequence")
    assert ok.details["factor"] == "bypass_code"


def test_otp01_wrong_bypass_codes_count_toward_the_lockout(enrolled_user, desk, settings):
    issue_bypass_codes(enrolled_user, actor=desk, count=1, valid_minutes=15)
    device = _device(enrolled_user)
    outcomes = [
        verify_second_factor(enrolled_user, device=device, code="aaaa-bbbb-cccc-dddd", ip=None)
        for _ in range(settings.LOCKOUT_THRESHOLD)
    ]
    enrolled_user.refresh_from_db()
    assert outcomes[-1] == SecondFactorOutcome.LOCKED
    assert enrolled_user.is_locked


def test_bnd09_codes_never_appear_in_the_admin_afterwards(client, enrolled_user, sign_in, make_user, enroll):
    from django.contrib.auth.models import Group

    agent = make_user("agent9", is_staff=True)
    agent.groups.add(Group.objects.get(name="Help desk"))
    enroll(agent)
    codes = issue_bypass_codes(enrolled_user, actor=agent, count=3, valid_minutes=15)
    staff = Client()
    sign_in(staff, agent)

    for url in (
        f"/admin/identity/user/{enrolled_user.pk}/change/",
        "/admin/identity/user/",
        "/admin/identity/auditevent/",
        "/admin/devices/outboundmessage/",
    ):
        content = staff.get(url).content.decode()
        assert not [code for code in codes if code in content], url
