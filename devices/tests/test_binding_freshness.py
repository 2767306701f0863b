"""BND-01 where a factor is bound, not only where its setup starts; BND-02 and OTP-01 edges found in review.

A setup or a phone change stays open for a day. The session that finishes it must have passed a second factor
within the last few minutes, as the one that started it did: otherwise a session verified hours earlier (a
borrowed computer, a stolen cookie) could bind its own authenticator, or copy the owner's pending secret.
"""

import pyotp
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from devices import errors, services
from devices.models import Registration
from identity import services as identity_services
from testsupport import PASSWORD, fresh_code

from .helpers import LINK_RE, add_app_device, pending_app_registration, secret_b32

pytestmark = pytest.mark.django_db
STALE = settings.REAUTH_MAX_AGE_SECONDS + 3600


def signed_in(person, device) -> Client:
    client = Client()
    client.post("/account/sign-in/", {"username": person.username, "password": PASSWORD})
    response = client.post(
        "/account/sign-in/second-factor/", {"device": device.persistent_id, "code": fresh_code(device)}
    )
    assert response.status_code == 302
    return client


def asks_to_confirm_identity(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/account/sign-in/confirm/")


def test_bnd01_a_session_verified_long_ago_cannot_finish_a_setup_left_open(person, enroll, clock):
    phone = enroll(person)
    left_open = services.start_enrollment(person, kind="tablet", verified_at=timezone.now())
    stale = signed_in(person, phone.app_device)
    clock.tick(STALE)

    stale.post(f"/enroll/{left_open.pk}/platform/", {"platform": "android"})  # harmless: no secret, no binding
    assert asks_to_confirm_identity(stale.post(f"/enroll/{left_open.pk}/install/"))
    left_open.refresh_from_db()
    assert left_open.app_device is None

    # The owner had got as far as the secret; the stale session may neither see it nor confirm it.
    fresh = services.issue_app_secret(left_open, actor=person, verified_at=timezone.now())
    assert asks_to_confirm_identity(stale.get(f"/enroll/{left_open.pk}/activate/"))
    assert stale.get(f"/enroll/{left_open.pk}/qr.svg").status_code == 404
    code = pyotp.TOTP(secret_b32(fresh.app_device)).now()
    assert asks_to_confirm_identity(stale.post(f"/enroll/{left_open.pk}/activate/", {"code": code}))
    left_open.refresh_from_db()
    assert left_open.status == Registration.Status.PENDING

    # Nor, of course, remove the owner's phone.
    assert asks_to_confirm_identity(stale.post(f"/devices/{phone.pk}/remove/"))
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE


def test_bnd01_a_session_verified_long_ago_cannot_see_or_confirm_a_phone_change(person, enroll, clock):
    phone = enroll(person)
    services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    stale = signed_in(person, phone.app_device)
    clock.tick(STALE)
    phone.refresh_from_db()
    new_secret = secret_b32(phone.pending_app_device)

    page = stale.get(f"/devices/{phone.pk}/new-phone/")
    assert asks_to_confirm_identity(page)
    assert stale.get(f"/enroll/{phone.pk}/qr.svg").status_code == 404
    confirm = {"action": "confirm", "code": pyotp.TOTP(new_secret).now()}
    assert asks_to_confirm_identity(stale.post(f"/devices/{phone.pk}/new-phone/", confirm))
    phone.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING


@pytest.mark.parametrize(
    "bind",
    [
        lambda r, at: services.confirm_activation(r, code="000000", actor=r.user, verified_at=at),
        lambda r, at: services.issue_app_secret(r, actor=r.user, verified_at=at),
        lambda r, at: services.set_phone_number(r, phone_number="+16175550144", actor=r.user, verified_at=at),
        lambda r, at: services.confirm_phone_code(r, code="000000", actor=r.user, verified_at=at),
    ],
    ids=["confirm activation", "issue secret", "set number", "confirm number"],
)
def test_bnd01_each_binding_step_refuses_a_stale_verification(person, enroll, clock, bind):
    enroll(person)
    registration = pending_app_registration(person, kind="mobile", number="+16175550199")
    long_ago = timezone.now()
    clock.tick(STALE)
    with pytest.raises(services.ReauthRequired):
        bind(registration, long_ago)


def test_bnd01_the_first_device_needs_no_earlier_second_factor(person):
    registration = pending_app_registration(person, kind="tablet", verified_at=None)
    registration = services.confirm_activation(
        registration, code=fresh_code(registration.app_device), actor=person, verified_at=None
    )
    assert registration.status == Registration.Status.ACTIVE


def test_bnd02_a_device_that_cannot_sign_in_yet_does_not_count_as_the_replacement(person, enroll, clock):
    phone = enroll(person)
    tablet = add_app_device(person, kind="tablet")
    # The tablet's old phone was lost: until the new one is confirmed, the tablet signs nobody in.
    services.start_reactivation(tablet, actor=person, verified_at=timezone.now(), old_phone_lost=True)

    with pytest.raises(ValidationError) as refused:
        services.retire_registration(phone, actor=person, verified_at=timezone.now())

    assert refused.value.code == "last_device"
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE


@pytest.fixture
def locked(person, enroll):
    phone = enroll(person)
    for _ in range(settings.LOCKOUT_THRESHOLD):
        identity_services.record_second_factor_failure(person, factor="authenticator_app", ip=None)
    person.refresh_from_db()
    assert person.is_locked
    return phone


def test_otp01_no_recovery_link_is_sent_to_a_locked_account(person, locked, make_user):
    desk = make_user("desk1", is_staff=True)
    with pytest.raises(ValidationError) as refused:
        services.send_recovery_link(person, actor=desk)
    assert refused.value.code == "locked" and refused.value.messages == [errors.ACCOUNT_LOCKED_FOR_RECOVERY]


def test_otp01_a_recovery_link_sent_before_the_lockout_opens_nothing_until_the_unlock(
    person, enroll, make_user, django_capture_on_commit_callbacks, mailoutbox
):
    phone = enroll(person)
    desk = make_user("desk1", is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_recovery_link(person, actor=desk)
    token = LINK_RE.search(mailoutbox[-1].body).group(2)
    for _ in range(settings.LOCKOUT_THRESHOLD):
        identity_services.record_second_factor_failure(person, factor="authenticator_app", ip=None)

    browser = Client()
    browser.post("/activate/", {"token": token})
    page = browser.post("/activate/", {"password": PASSWORD})

    assert "locked" in page.content.decode()
    assert not browser.session.get(DEVICE_ID_SESSION_KEY)
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.pending_app_device_id is None

    identity_services.unlock_user(person, actor=desk, reason="INC-1, photo ID checked")
    assert browser.post("/activate/", {"password": PASSWORD}).status_code == 302


def test_a_wrong_code_that_loses_a_race_to_the_right_one_is_never_a_success(person, monkeypatch):
    """A refused code proves nothing, even when the device was bound meanwhile by another request."""
    from devices.models import AuthenticatorAppDevice

    registration = pending_app_registration(person)
    right = fresh_code(registration.app_device)
    check_code = AuthenticatorAppDevice.verify_token
    raced = []

    def the_other_request_wins_first(device, token):
        if not raced:
            raced.append(True)
            services.confirm_activation(registration, code=right, actor=person, verified_at=None)
        return check_code(device, token)

    monkeypatch.setattr(AuthenticatorAppDevice, "verify_token", the_other_request_wins_first)
    with pytest.raises(ValidationError) as refused:
        services.confirm_activation(registration, code="000000", actor=person, verified_at=None)

    assert refused.value.code == "already_bound"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE
