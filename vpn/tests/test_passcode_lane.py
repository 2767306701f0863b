"""A passcode at the VPN's doors decides exactly as the web's path does (OTP-01, OTP-03, OTP-04).

Each case is run twice on the same data: once through :func:`vpn.services.passcode.verify_passcode` as the doors call
it, once through ``verify_typed_code`` (the web's path), each in a transaction rolled back afterwards; the outcomes,
the rows and the audit events must agree. Each case also says whether the doors' first read settled it (the common
case, on the web's rule applied to the rows it locked) or handed it to the general path before writing anything.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import AuthenticatorAppDevice
from devices.services import generate_backup_codes
from identity.models import AuditEvent, User
from identity.services import SecondFactorOutcome, verify_typed_code
from testsupport import fresh_code, wrong_code
from vpn.services import passcode, vpn_factors

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CONTEXT = {"integration": "DITEST", "user_ip": ""}


class Rollback(Exception):
    pass


def _state(person_id: int, since: int) -> dict:
    person = User.objects.get(pk=person_id)
    apps = AuthenticatorAppDevice.objects.filter(user_id=person_id).order_by("id")
    return {
        "failures": person.second_factor_failures,
        "locked": person.locked_at is not None,
        "apps": [
            (a.last_t, a.throttling_failure_count, a.throttling_failure_timestamp is None, a.last_used_at is None)
            for a in apps
        ],
        "audit": list(
            AuditEvent.objects.filter(sequence__gt=since)
            .order_by("sequence")
            .values_list("action", "subject_id", "actor_id", "details")
        ),
    }


def _run(decide, person_id: int):
    since = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    result = {}
    try:
        with transaction.atomic():
            result["outcome"] = decide()
            result["state"] = _state(person_id, since)
            raise Rollback
    except Rollback:
        pass
    return result


HANDED_OVER = []  # the people the doors handed to the general path during the current test


@pytest.fixture(autouse=True)
def _count_hand_overs(monkeypatch):
    def counted(user, **kwargs):
        HANDED_OVER.append(user.pk)
        return verify_typed_code(user, **kwargs)

    HANDED_OVER.clear()
    monkeypatch.setattr(passcode, "verify_typed_code", counted)


def lane(person, code):
    """The doors' check, as they call it; ``handed_over``: whether the general path decided it."""
    before = len(HANDED_OVER)
    result = _run(
        lambda: passcode.verify_passcode(person.username, code, ip="10.0.0.9", entry_point="vpn", context=CONTEXT),
        person.pk,
    )
    return result | {"handed_over": len(HANDED_OVER) > before}


def general(person, code):
    def decide():
        user = User.objects.get(pk=person.pk)
        devices = vpn_factors(user).typed
        return verify_typed_code(user, devices=devices, code=code, ip="10.0.0.9", entry_point="vpn", context=CONTEXT)

    return _run(decide, person.pk)


def assert_same(person, code, expected, *, handed_over=False):
    fast, slow = lane(person, code), general(person, code)
    assert fast["handed_over"] is handed_over
    assert fast["outcome"] == passcode.Verdict(expected, person.pk)
    assert slow["outcome"] == expected
    assert fast["state"] == slow["state"]
    return fast["state"]


@pytest.fixture
def person(make_user, enroll, approve):
    person = make_user("lane1")
    enroll(person)
    approve(person)
    return person


def app_of(person, n=0):
    return AuthenticatorAppDevice.objects.filter(user=person, confirmed=True).order_by("id")[n]


def test_otp04_a_good_code_is_consumed_and_resets_the_failures_as_the_general_path_does(person):
    User.objects.filter(pk=person.pk).update(second_factor_failures=2)
    state = assert_same(person, fresh_code(app_of(person)), SecondFactorOutcome.OK)
    assert state["failures"] == 0 and state["audit"][0][0] == "signin.second_factor_ok"


def test_otp01_a_wrong_code_counts_once_on_the_person_and_the_app(person):
    state = assert_same(person, wrong_code(app_of(person)), SecondFactorOutcome.WRONG)
    assert state["failures"] == 1 and state["apps"][0][1] == 1
    assert state["audit"][0][3]["consecutive_failures"] == 1


def test_otp04_a_code_already_consumed_is_wrong(person):
    device = app_of(person)
    code = fresh_code(device)
    assert verify_typed_code(person, devices=[device], code=code, ip=None) == SecondFactorOutcome.OK
    assert_same(person, code, SecondFactorOutcome.WRONG)


def test_otp01_a_throttled_app_is_not_tried_but_the_attempt_still_counts(person):
    AuthenticatorAppDevice.objects.filter(user=person).update(
        throttling_failure_count=3, throttling_failure_timestamp=timezone.now()
    )
    state = assert_same(person, fresh_code(app_of(person)), SecondFactorOutcome.THROTTLED)
    assert state["failures"] == 1 and state["apps"][0][1] == 3


def test_otp03_the_second_apps_code_leaves_the_first_app_untouched(person, enroll):
    enroll(person)
    first = app_of(person)
    state = assert_same(person, fresh_code(app_of(person, 1)), SecondFactorOutcome.OK)
    assert state["apps"][0] == (first.last_t, 0, True, first.last_used_at is None)
    assert state["apps"][1][0] > -1


def test_a_wrong_code_with_two_apps_counts_on_both(person, enroll):
    enroll(person)
    state = assert_same(person, wrong_code(app_of(person)), SecondFactorOutcome.WRONG)
    assert [app[1] for app in state["apps"]] == [1, 1]
    assert state["audit"][0][3]["factor"] == "passcode"


def test_with_other_devices_a_good_app_code_is_settled_by_the_first_read_the_rest_by_the_general_path(person):
    codes = generate_backup_codes(person, actor=person, verified_at=timezone.now())
    assert_same(person, codes[0], SecondFactorOutcome.OK, handed_over=True)
    assert_same(person, wrong_code(app_of(person)), SecondFactorOutcome.WRONG, handed_over=True)
    assert_same(person, fresh_code(app_of(person)), SecondFactorOutcome.OK)


def test_otp01_the_failure_that_locks_locks_as_on_the_web(person, settings):
    User.objects.filter(pk=person.pk).update(second_factor_failures=settings.LOCKOUT_THRESHOLD - 1)
    state = assert_same(person, wrong_code(app_of(person)), SecondFactorOutcome.LOCKED)
    assert state["locked"] is True
    assert [event[0] for event in state["audit"]] == ["signin.second_factor_failed", "account.locked"]


def test_a_lock_whose_release_is_due_is_lifted_by_the_general_path(person):
    past = timezone.now() - timedelta(minutes=1)
    User.objects.filter(pk=person.pk).update(locked_at=past - timedelta(hours=1), locked_until=past)
    state = assert_same(person, fresh_code(app_of(person)), SecondFactorOutcome.OK, handed_over=True)
    assert state["audit"][0][0] == "account.auto_unlocked"


def test_api04_who_may_not_use_the_vpn_is_refused_with_nothing_written(person, make_user, enroll):
    User.objects.filter(pk=person.pk).update(locked_at=timezone.now(), locked_until=None)
    locked = lane(person, fresh_code(app_of(person)))
    assert locked["outcome"] == passcode.Verdict(passcode.REFUSED, person.pk) and locked["state"]["audit"] == []
    unapproved = make_user("lane2")
    enroll(unapproved)
    assert lane(unapproved, "123456")["outcome"] == passcode.Verdict(passcode.REFUSED, unapproved.pk)
    nobody = passcode.verify_passcode("nobody", "123456", ip=None, entry_point="vpn", context={})
    assert nobody == passcode.Verdict(passcode.REFUSED, None)
    assert HANDED_OVER == []


def test_a_person_without_devices_is_refused(make_user, approve):
    bare = make_user("lane3")
    approve(bare)
    assert lane(bare, "123456")["outcome"] == passcode.Verdict(passcode.REFUSED, bare.pk)
