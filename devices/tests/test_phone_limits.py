"""SMS-06: how often codes may be sent, per number and per person, and that a resend kills the old code.

Time is frozen and moved by hand; the limits are counted from rows in the database (REL-07), so
they hold for every purpose (wizard check, turning texts on, sign-in) and every person together.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from devices import errors, kinds, services
from devices.models import OutboundMessage, PhoneDevice, PhoneVerification
from devices.tests.fakes import RecordingGateway
from identity import errors as identity_errors

from .helpers import events, put_on_record, text

pytestmark = pytest.mark.django_db

NUMBER = "+16175550188"
OTHER_NUMBER = "+16175550177"
SECOND_FACTOR = "/account/sign-in/second-factor/"
FOUR_MINUTES = 4 * 60  # sends this far apart never meet the 10-minute limit of a number


@pytest.fixture
def sending(django_capture_on_commit_callbacks):
    """Run what a request queued as its commit would: the send task, in-process, into the recording gateway."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(autouse=True)
def _defaults(settings):
    # The limits under test are the shipped defaults, not values picked to make the tests short.
    assert settings.PHONE_RESEND_SECONDS == 60
    assert settings.PHONE_SENDS_PER_NUMBER_PER_10_MINUTES == 3
    assert settings.PHONE_DAILY_CAP_PER_PERSON == 10
    assert settings.PHONE_DAILY_CAP_PER_NUMBER == 10


def pending_landline(person, number=NUMBER):
    registration = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    return services.set_phone_number(registration, phone_number=number, actor=person, verified_at=timezone.now())


def pending_mobile_on_record(person, owner, number):
    """A pending mobile of ``person`` whose number ``owner`` has on record, so the wizard checks it."""
    put_on_record(owner, number, "active")
    registration = services.start_enrollment(person, kind="mobile", verified_at=timezone.now())
    registration = services.set_phone_number(
        registration, phone_number=number, actor=person, verified_at=timezone.now()
    )
    assert kinds.phone_check_required(registration)
    return registration


def active_landline(person, number, sending) -> PhoneDevice:
    """A landline proven by a call (which is itself one send); returns its sign-in device."""
    registration = pending_landline(person, number)
    with sending():
        services.send_phone_code(registration, channel="voice", actor=person)
    services.confirm_phone_code(
        registration, code=RecordingGateway.last_to(number).code, actor=person, verified_at=timezone.now()
    )
    return PhoneDevice.objects.get(registration=registration)


def send_check(registration):
    return services.send_phone_code(registration, channel="voice", actor=registration.user)


def refusal(send, *args, **kwargs) -> ValidationError:
    """Call ``send`` and return its refusal, checking that it left nothing behind."""
    before = (PhoneVerification.objects.count(), OutboundMessage.objects.count(), events("phone.code_sent").count())
    sign_in_sends = events("signin.code_sent").count()
    with pytest.raises(ValidationError) as refused:
        send(*args, **kwargs)
    after = (PhoneVerification.objects.count(), OutboundMessage.objects.count(), events("phone.code_sent").count())
    assert after == before and events("signin.code_sent").count() == sign_in_sends
    return refused.value


def sends_to(number) -> int:
    return PhoneVerification.objects.filter(number=number).count()


# --- Between two sends ---------------------------------------------------------------------------


def test_sms06_sixty_seconds_between_sends_to_a_number_whoever_asks(person, make_user, clock):
    mine = pending_landline(person)
    theirs = pending_landline(make_user("bjones"))
    send_check(mine)

    clock.tick(59)
    for registration in (mine, theirs):
        refused = refusal(send_check, registration)
        assert refused.code == "too_soon"
        assert refused.messages == ["We just sent a code. Wait 60 seconds before asking for another one."]

    clock.tick(2)
    send_check(theirs)
    assert sends_to(NUMBER) == 2


def test_sms06_sixty_seconds_between_sends_for_a_person_whatever_the_number(person, make_user, clock):
    landline = pending_landline(person, NUMBER)
    mobile = pending_mobile_on_record(person, make_user("bjones"), OTHER_NUMBER)
    send_check(landline)

    clock.tick(30)
    assert refusal(send_check, mobile).code == "too_soon"

    clock.tick(31)
    send_check(mobile)
    assert sends_to(OTHER_NUMBER) == 1


def test_sms06_wizard_says_how_long_to_wait(client, person, sign_in, clock, recording_gateway, sending):
    sign_in(client, person)
    registration = pending_landline(person)
    url = f"/enroll/{registration.pk}/verify-phone/"
    with sending():
        client.post(url, {"action": "send", "channel": "voice"})

    with sending():
        page = text(client.post(url, {"action": "send", "channel": "voice"}, follow=True))

    assert errors.PHONE_RESEND_TOO_SOON.format(seconds=60) in page
    assert len(recording_gateway.delivered) == 1


# --- Per number in ten minutes ----------------------------------------------------------------------


def test_sms06_at_most_three_sends_to_a_number_in_ten_minutes(person, make_user, clock):
    mine = pending_landline(person)
    theirs = pending_landline(make_user("bjones"))
    first_at = timezone.now()
    for _ in range(3):
        send_check(mine)
        clock.tick(61)

    refused = refusal(send_check, mine)
    assert refused.code == "too_many" and refused.messages == [errors.PHONE_TOO_MANY_SENDS]
    # The number is protected, not the person: someone else asking for it is refused too.
    assert refusal(send_check, theirs).code == "too_many"

    clock.move_to(first_at + timedelta(minutes=10, seconds=1))
    send_check(theirs)
    assert sends_to(NUMBER) == 4


def test_sms06_sign_in_codes_and_wizard_checks_share_a_numbers_limits(
    client, person, password, make_user, clock, recording_gateway, sending
):
    device = active_landline(person, NUMBER, sending)
    clock.tick(61)
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    with sending():
        client.post(SECOND_FACTOR, {"send": f"{device.persistent_id}|voice"})
    clock.tick(61)
    with sending():
        client.post(SECOND_FACTOR, {"send": f"{device.persistent_id}|voice"})
    clock.tick(61)
    assert sends_to(NUMBER) == 3

    # Someone else claiming the number in the wizard cannot make it ring a fourth time.
    assert refusal(send_check, pending_landline(make_user("bjones"))).code == "too_many"
    with sending():
        page = text(client.post(SECOND_FACTOR, {"send": f"{device.persistent_id}|voice"}, follow=True))
    assert errors.PHONE_TOO_MANY_SENDS in page
    assert len(recording_gateway.delivered) == 3


# --- Per day ----------------------------------------------------------------------------------------


def test_sms06_daily_cap_per_person(person, clock, recording_gateway, sending):
    devices = [active_landline(person, NUMBER, sending)]
    clock.tick(61)
    devices.append(active_landline(person, OTHER_NUMBER, sending))
    clock.tick(timedelta(days=1, seconds=1))  # the setup's sends no longer count
    first_at = timezone.now()
    for n in range(10):
        services.send_signin_code(devices[n % 2], channel="voice")
        clock.tick(FOUR_MINUTES)

    refused = refusal(services.send_signin_code, devices[0], channel="voice")

    assert refused.code == "daily_cap" and refused.messages == [errors.PHONE_DAILY_CAP]
    assert refusal(services.send_signin_code, devices[1], channel="voice").code == "daily_cap"
    # Each number has had only half of its own cap: it is the person's cap that holds.
    today = PhoneVerification.objects.filter(created_at__gte=first_at)
    assert today.filter(number=NUMBER).count() == today.filter(number=OTHER_NUMBER).count() == 5

    clock.move_to(first_at + timedelta(days=1, seconds=1))
    services.send_signin_code(devices[0], channel="voice")


def test_sms06_daily_cap_per_number(person, make_user, clock, recording_gateway, sending):
    asker, other_asker, latecomer = person, make_user("bjones"), make_user("cdavis")
    devices = {}
    for someone in (asker, other_asker, latecomer):
        devices[someone] = active_landline(someone, NUMBER, sending)
        clock.tick(timedelta(minutes=10, seconds=1))  # each proves a number others proved: two in ten minutes
    clock.tick(timedelta(days=1, seconds=1))
    first_at = timezone.now()
    for n in range(10):
        services.send_signin_code(devices[(asker, other_asker)[n % 2]], channel="voice")
        clock.tick(FOUR_MINUTES)

    refused = refusal(services.send_signin_code, devices[latecomer], channel="voice")

    assert refused.code == "daily_cap"
    assert not PhoneVerification.objects.filter(user=latecomer, created_at__gte=first_at).exists()
    clock.move_to(first_at + timedelta(days=1, seconds=1))
    services.send_signin_code(devices[latecomer], channel="voice")


def test_sms06_someone_typing_in_a_number_cannot_use_up_its_owners_sign_in_codes(
    person, make_user, clock, recording_gateway, sending
):
    owner_device = active_landline(person, NUMBER, sending)
    clock.tick(timedelta(days=1, seconds=1))
    intruder = pending_landline(make_user("bjones"))
    for _ in range(2):
        send_check(intruder)
        clock.tick(61)
    # Of the number's three sends in ten minutes, the last is kept for the person who proved it.
    assert refusal(send_check, intruder).code == "too_many"
    services.send_signin_code(owner_device, channel="voice")
    # The number's own limits still count every send: nobody gets a fourth.
    clock.tick(61)
    assert refusal(services.send_signin_code, owner_device, channel="voice").code == "too_many"

    for _ in range(12):  # the intruder spends what it may of the day, a few at a time
        clock.tick(FOUR_MINUTES)
        try:
            send_check(intruder)
        except ValidationError as refused:
            assert refused.code in ("too_many", "daily_cap")
    assert refusal(send_check, intruder).code == "daily_cap"
    # Half the number's day (every send counted, the owner's too) is all a stranger may use.
    assert sends_to(NUMBER) - 1 == 5  # less the setup call of the day before

    clock.tick(FOUR_MINUTES)
    services.send_signin_code(owner_device, channel="voice")
    assert PhoneVerification.objects.filter(user=person, purpose="signin").count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sms06_people_asking_for_one_number_at_once_are_counted_one_after_another(make_user):
    registrations = [pending_landline(make_user(f"racer{i}")) for i in range(6)]
    start = threading.Barrier(len(registrations))

    def ask(registration):
        start.wait()
        try:
            send_check(registration)
            return "sent"
        except ValidationError as refused:
            return refused.code
        finally:
            connection.close()

    with ThreadPoolExecutor(len(registrations)) as pool:
        outcomes = list(pool.map(ask, registrations))

    # Sixty seconds between sends to a number: one of them gets the call, the others wait.
    assert sorted(outcomes) == ["sent"] + ["too_soon"] * 5
    assert sends_to(NUMBER) == 1


# --- A resend kills the old code ------------------------------------------------------------------------


def test_sms06_resend_invalidates_the_old_sign_in_code(client, person, password, clock, recording_gateway, sending):
    device = active_landline(person, NUMBER, sending)
    clock.tick(61)
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    with sending():
        client.post(SECOND_FACTOR, {"send": f"{device.persistent_id}|voice"})
    old_code = recording_gateway.last_to(NUMBER).code
    clock.tick(61)
    with sending():
        client.post(SECOND_FACTOR, {"send": f"{device.persistent_id}|voice"})
    new_code = recording_gateway.last_to(NUMBER).code
    if new_code == old_code:  # one chance in a million: nothing to tell apart
        pytest.skip("the two random codes happen to be equal")

    response = client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": old_code})

    assert response.status_code == 200 and identity_errors.WRONG_CODE in text(response)
    old, new = PhoneVerification.objects.filter(device=device).order_by("created_at")
    assert old.superseded_at is not None and old.consumed_at is None and new.superseded_at is None
    clock.tick(2)  # past django-otp's back-off after the refused code
    response = client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": new_code})
    assert response["Location"] == "/devices/"


def test_sms06_resend_invalidates_the_old_wizard_code(person, clock, recording_gateway, sending):
    registration = pending_landline(person)
    with sending():
        send_check(registration)
    old_code = recording_gateway.last_to(NUMBER).code
    clock.tick(61)
    with sending():
        send_check(registration)
    new_code = recording_gateway.last_to(NUMBER).code
    if new_code == old_code:
        pytest.skip("the two random codes happen to be equal")

    with pytest.raises(ValidationError) as refused:
        services.confirm_phone_code(registration, code=old_code, actor=person, verified_at=timezone.now())

    assert refused.value.messages == [errors.PHONE_WRONG_CODE]
    services.confirm_phone_code(registration, code=new_code, actor=person, verified_at=timezone.now())
