"""Sign-in: password step, device choice and the second factor (OTP-03, OTP-04, OTP-11)."""

import re

import django_otp
import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import SESSION_KEY

from identity import errors, services
from identity.events import describe
from identity.models import AuditEvent
from testsupport import (
    SECOND_FACTOR,
    SIGN_IN,
    details_of,
    fresh_code,
    is_otp_verified,
    post_code,
    post_password,
    signed_in_user_id,
    wrong_code,
)

pytestmark = pytest.mark.django_db


def _page_without_noise(response, username: str) -> str:
    # The attempted ID is echoed back in the form and the CSRF token is masked anew on every render.
    html = response.content.decode().replace(username, "<ID>")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def test_wrong_password_and_unknown_id_look_the_same(client, make_user):
    make_user("known1")
    wrong_password = client.post(SIGN_IN, {"username": "known1", "password": "not the password at all"})
    unknown_id = client.post(SIGN_IN, {"username": "nobody42", "password": "not the password at all"})

    assert wrong_password.status_code == unknown_id.status_code == 200
    assert errors.SIGN_IN_FAILED in wrong_password.content.decode()
    assert _page_without_noise(wrong_password, "known1") == _page_without_noise(unknown_id, "nobody42")
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.action for e in events] == ["signin.password_failed", "signin.password_failed"]
    assert set(details_of(events[0])) == set(details_of(events[1])) == {"attempt"}  # a keyed hash of the typed ID only
    # Whatever was typed into the ID field is not stored (people type passwords there).
    assert "nobody42" not in str([(e.details, e.action) for e in events])
    assert signed_in_user_id(client) is None


def test_correct_password_without_device_signs_in_and_goes_to_wizard(client, user, password):
    response = post_password(client, user, password)

    assert response.status_code == 302
    assert response["Location"] == "/enroll/"
    assert signed_in_user_id(client) == user.pk
    assert not is_otp_verified(client)
    assert client.get("/enroll/").status_code == 200


def test_correct_password_with_device_asks_for_second_factor(client, two_devices, user, password):
    response = post_password(client, user, password)

    assert response.status_code == 302
    assert response["Location"] == SECOND_FACTOR
    assert SESSION_KEY not in client.session  # not signed in until the second factor
    page = client.get(SECOND_FACTOR)
    assert page.status_code == 200
    for device in two_devices:
        assert f'value="{device.persistent_id}"' in page.content.decode()
    # Any page behind sign-in still sends the person back.
    assert client.get("/devices/")["Location"].startswith(SIGN_IN)


def test_second_factor_page_without_password_step_goes_back_to_sign_in(client, enrolled_user):
    device = enrolled_user.registrations.get().app_device
    response = post_code(client, device, fresh_code(device))

    assert response.status_code == 302
    assert response["Location"] == SIGN_IN
    assert signed_in_user_id(client) is None


def test_good_code_signs_in_verified(client, two_devices, user, password):
    phone, tablet = two_devices
    post_password(client, user, password)
    response = post_code(client, tablet, fresh_code(tablet))

    assert response.status_code == 302
    assert response["Location"] == "/devices/"
    assert signed_in_user_id(client) == user.pk
    assert client.session[django_otp.DEVICE_ID_SESSION_KEY] == tablet.persistent_id
    assert client.get("/devices/").status_code == 200


def test_otp03_code_checked_only_against_the_chosen_device(client, two_devices, user, password):
    phone, tablet = two_devices
    tablet_code = fresh_code(tablet)
    tablet_last_t = tablet.last_t
    post_password(client, user, password)

    refused = post_code(client, phone, tablet_code)  # the tablet's good code, sent for the phone

    assert refused.status_code == 200
    assert errors.WRONG_CODE in refused.content.decode()
    tablet.refresh_from_db()
    assert tablet.throttling_failure_count == 0
    assert tablet.last_t == tablet_last_t  # not consumed by the attempt on the phone
    accepted = post_code(client, tablet, tablet_code)
    assert accepted.status_code == 302
    assert client.session[django_otp.DEVICE_ID_SESSION_KEY] == tablet.persistent_id


def test_otp03_wrong_code_on_one_device_does_not_throttle_another(client, two_devices, user, password, settings):
    # A long back-off keeps the phone throttled for the whole test, whatever the machine's speed.
    settings.OTP_TOTP_THROTTLE_FACTOR = 3600
    phone, tablet = two_devices
    post_password(client, user, password)

    post_code(client, phone, wrong_code(phone))

    phone.refresh_from_db()
    tablet.refresh_from_db()
    assert phone.throttling_failure_count == 1
    assert phone.verify_is_allowed()[0] is False
    assert tablet.throttling_failure_count == 0
    assert tablet.verify_is_allowed() == (True, None)
    response = post_code(client, tablet, fresh_code(tablet))
    assert response.status_code == 302
    assert signed_in_user_id(client) == user.pk
    phone.refresh_from_db()
    assert phone.verify_is_allowed()[0] is False  # still throttled: the tablet's success is its own


def test_otp03_another_persons_device_is_not_a_choice(client, user, make_user, enroll, password):
    enroll(user)
    other = make_user("other1")
    others_device = enroll(other).app_device
    post_password(client, user, password)

    response = post_code(client, others_device, fresh_code(others_device))

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert signed_in_user_id(client) is None
    others_device.refresh_from_db()
    assert others_device.throttling_failure_count == 0
    user.refresh_from_db()
    assert user.second_factor_failures == 0


def test_back_off_refuses_even_a_good_code(client, enrolled_user, password, settings):
    """django-otp's exponential back-off: after a failure the device refuses until the delay has passed."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 3600
    device = enrolled_user.registrations.get().app_device
    post_password(client, enrolled_user, password)
    post_code(client, device, wrong_code(device))
    device.refresh_from_db()
    last_t = device.last_t

    response = post_code(client, device, fresh_code(device))

    assert response.status_code == 200
    # One message, saying how long: the hour of back-off in minutes.
    assert errors.CODE_THROTTLED.format(wait="60 minutes") in response.content.decode()
    assert signed_in_user_id(client) is None
    device.refresh_from_db()
    assert device.last_t == last_t  # the good code was not looked at, so it is not used up
    enrolled_user.refresh_from_db()
    assert enrolled_user.second_factor_failures == 2  # the refused attempt counts toward OTP-01


def test_back_off_lifts_after_the_delay(client, enrolled_user, password, settings):
    from freezegun import freeze_time

    device = enrolled_user.registrations.get().app_device
    with freeze_time() as frozen:
        post_password(client, enrolled_user, password)
        post_code(client, device, wrong_code(device))
        page = post_code(client, device, "123456").content.decode()
        # Right after a single miss: how long to wait (django-otp's first delay), not "too many wrong codes".
        assert errors.CODE_THROTTLED.format(wait=f"{settings.OTP_TOTP_THROTTLE_FACTOR} second") in page
        assert "Too many" not in page
        device.refresh_from_db()
        assert device.throttling_failure_count == 1  # refused unseen: the back-off did not grow
        frozen.tick(settings.OTP_TOTP_THROTTLE_FACTOR + 1)

        response = post_code(client, device, fresh_code(device))

    assert response.status_code == 302
    assert signed_in_user_id(client) == enrolled_user.pk


def test_otp04_code_accepted_once_at_sign_in(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device
    code = fresh_code(device)
    post_password(client, enrolled_user, password)
    assert post_code(client, device, code).status_code == 302
    client.post("/account/sign-out/")

    post_password(client, enrolled_user, password)
    replay = post_code(client, device, code)

    assert replay.status_code == 200
    assert errors.WRONG_CODE in replay.content.decode()
    assert signed_in_user_id(client) is None
    assert AuditEvent.objects.filter(action="signin.second_factor_ok").count() == 1
    assert AuditEvent.objects.filter(action="signin.second_factor_failed").count() == 1


def test_otp11_email_is_never_a_sign_in_factor():
    device_classes = list(django_otp.device_classes())
    assert device_classes, "django-otp found no device classes at all"
    for device_class in device_classes:
        assert "email" not in device_class.__name__.lower()
        assert "email" not in device_class._meta.label_lower
    assert "django_otp.plugins.otp_email" not in settings.INSTALLED_APPS
    assert not [model for model in apps.get_models() if model.__name__ == "EmailDevice"]


def test_otp11_second_factor_page_offers_no_email_option(client, enrolled_user, password):
    post_password(client, enrolled_user, password)
    page = client.get(SECOND_FACTOR).content.decode().lower()
    assert "email" not in page.split("<main", 1)[1].split("</main>", 1)[0]


def test_password_guessing_pauses_sign_in_for_that_id_whether_it_exists_or_not(client, make_user, settings):
    settings.PASSWORD_FAILURES_PER_ID = 3
    make_user("realperson")
    for username in ("realperson", "nosuchperson"):
        for _ in range(3):
            client.post("/account/sign-in/", {"username": username, "password": "wrong-guess"})
        response = client.post(
            "/account/sign-in/", {"username": username, "password": "correct horse battery staple 42"}
        )
        assert response.status_code == 200
        assert "Too many sign-in attempts" in response.content.decode()
    throttled = AuditEvent.objects.filter(action="signin.password_throttled")
    assert throttled.count() == 2
    assert {describe(e.action, e.details) for e in throttled} == {
        "Sign-in refused: too many wrong passwords for this institution ID"
    }
    other = client.post("/account/sign-in/", {"username": "someoneelse", "password": "x"})
    assert "Too many sign-in attempts" not in other.content.decode()


def test_password_guessing_from_one_address_pauses_it(client, make_user, settings):
    settings.PASSWORD_FAILURES_PER_ADDRESS = 4
    person = make_user("victim")
    for n in range(4):
        client.post("/account/sign-in/", {"username": f"guess{n}", "password": "x"}, REMOTE_ADDR="203.0.113.9")
    blocked = client.post(
        "/account/sign-in/",
        {"username": person.username, "password": "correct horse battery staple 42"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert "Too many sign-in attempts" in blocked.content.decode()
    event = AuditEvent.objects.get(action="signin.password_throttled")
    assert describe(event.action, event.details) == "Sign-in refused: too many wrong passwords from this address"
    allowed = client.post(
        "/account/sign-in/",
        {"username": person.username, "password": "correct horse battery staple 42"},
        REMOTE_ADDR="198.51.100.1",
    )
    assert allowed.status_code == 302


def test_a_door_that_counts_per_id_only_audits_its_throttle_as_per_id(client, make_user, settings):
    """RADIUS asks without the address (API-09): its refusals never say "from this address"."""
    settings.PASSWORD_FAILURES_PER_ADDRESS = settings.PASSWORD_FAILURES_PER_ID = 2
    for _ in range(2):
        client.post("/account/sign-in/", {"username": "guessed", "password": "x"}, REMOTE_ADDR="203.0.113.9")
    assert not services.password_sign_in_throttled("someone", ip="203.0.113.9", by_address=False)
    assert services.password_sign_in_throttled("guessed", ip="203.0.113.9", by_address=False)
    event = AuditEvent.objects.filter(action="signin.password_throttled").latest("sequence")
    assert event.details["limit"] == "id"
    assert describe(event.action, event.details) == (
        "Sign-in refused: too many wrong passwords for this institution ID"
    )


def _sign_in_through_proxy(client, username, password, forwarded_for):
    # What a request looks like behind one TLS proxy: it connects from the proxy, which appends the client.
    return client.post(
        "/account/sign-in/",
        {"username": username, "password": password},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_behind_a_trusted_proxy_one_address_guessing_does_not_pause_everyone(client, make_user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.PASSWORD_FAILURES_PER_ADDRESS = 4
    person = make_user("victim")
    for n in range(4):
        # A forged entry on the left is the client's own words: the guesses still count for its real address.
        _sign_in_through_proxy(client, f"guess{n}", "x", f"198.51.100.{n}, 203.0.113.9")

    blocked = _sign_in_through_proxy(client, person.username, "correct horse battery staple 42", "203.0.113.9")
    assert "Too many sign-in attempts" in blocked.content.decode()
    allowed = _sign_in_through_proxy(client, person.username, "correct horse battery staple 42", "198.51.100.1")
    assert allowed.status_code == 302
    assert AuditEvent.objects.filter(action="signin.password_throttled", ip="203.0.113.9").exists()


@pytest.mark.postgres
def test_ac09_a_sign_in_from_an_ipv4_mapped_address_behind_the_proxy_keeps_the_chain_verifying(
    client, make_user, settings
):
    from identity import audit

    settings.TRUSTED_PROXY_COUNT = 1
    person = make_user("mapped")
    before = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    _sign_in_through_proxy(client, person.username, "wrong-guess", "::ffff:203.0.113.5")
    event = AuditEvent.objects.get(action="signin.password_failed", sequence__gt=before)
    assert event.ip == "::ffff:203.0.113.5"
    assert audit.verify_chain() is None


@pytest.mark.parametrize(
    ("count", "forwarded_for", "seen"),
    [
        (0, "203.0.113.9", "10.0.0.5"),  # no trusted proxy: the header is anyone's to write
        (1, "203.0.113.9", "203.0.113.9"),
        (2, "192.0.2.1, 203.0.113.9, 10.0.0.4", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.5"),  # fewer entries than proxies: not trusted
        (1, "not-an-address", "10.0.0.5"),
    ],
)
def test_client_address_is_what_the_outermost_trusted_proxy_saw(rf, settings, count, forwarded_for, seen):
    from identity.web import client_ip

    settings.TRUSTED_PROXY_COUNT = count
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_ip(request) == seen
