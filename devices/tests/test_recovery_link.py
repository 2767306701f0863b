"""The recovery link for a person with no working factor (BND-07), and where it leads.

The help desk sends it (its identity check and four-eyes rules are tested in ``helpdesk/tests``); here the link
comes from devices' own service and the real email the outbox sends, and the new phone is what reads the QR code
on the page the link opens.
"""

import pyotp
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from devices import errors, services
from devices.models import ActivationLink, OutboundMessage, Registration
from devices.views import RECOVERY_SESSION_KEY
from identity.models import AuditEvent
from testsupport import PASSWORD, details_of, fresh_code, totp_for

from .helpers import LINK_RE, add_app_device, events, secret_b32, text
from .test_reactivation import page_secret, qr_secret

pytestmark = pytest.mark.django_db

# What the help desk records with the link: how it made sure who asked.
DESK_CHECK = {"identity_check": "photo_id_in_person", "reference": "INC-20417"}
LANDING = "/activate/"


@pytest.fixture(autouse=True)
def _no_back_off(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def phone(clock, person, enroll):
    """``person``'s one phone with the app, which they no longer have. Time is frozen."""
    return enroll(person)


@pytest.fixture
def staff(make_user):
    return make_user("helpdesk1", is_staff=True)


@pytest.fixture
def send_link(staff, django_capture_on_commit_callbacks, mailoutbox):
    """Send a recovery link as the help desk does and return the token from the email that went out."""

    def send(person, *, actor=None, **kwargs) -> str:
        sent_before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            services.send_recovery_link(person, actor=actor or staff, details=DESK_CHECK, **kwargs)
        assert len(mailoutbox) == sent_before + 1
        return LINK_RE.search(mailoutbox[-1].body).group(2)

    return send


def open_link(token, browser=None):
    """Open the link in a browser (a new one unless given); returns (browser, landing page)."""
    browser = browser or Client()
    response = browser.post(LANDING, {"token": token})  # as the link's page does with the token after "#"
    assert response.status_code == 302 and response["Location"] == LANDING
    return browser, browser.get(LANDING)


def new_phone_url(registration) -> str:
    return f"/devices/{registration.pk}/new-phone/"


def recover(token) -> Client:
    """Open the link and give the password; returns the browser, now in a recovery session."""
    browser, landing = open_link(token)
    assert landing.status_code == 200
    response = browser.post(LANDING, {"password": PASSWORD})
    assert response.status_code == 302, text(response)
    return browser


def is_verified(browser) -> bool:
    return bool(browser.session.get(DEVICE_ID_SESSION_KEY))


def nothing_sent():
    assert not ActivationLink.objects.exists()
    assert not OutboundMessage.objects.filter(template="recovery_link").exists()
    assert not events("recovery.link_sent").exists()


# --- Sending: only to a person who can open it, for a device with an app in use ------------------------------


def test_bnd07_no_recovery_link_for_a_person_without_email(make_user, enroll, staff):
    person = make_user("noemail", email=None)
    enroll(person)
    with pytest.raises(ValidationError) as refused:
        services.send_recovery_link(person, actor=staff)
    assert refused.value.messages == [errors.NO_EMAIL_FOR_RECOVERY]
    nothing_sent()


def test_bnd07_another_persons_registration_cannot_be_passed(person, phone, staff, make_user, enroll):
    other = make_user("bystander")
    theirs = enroll(other)
    with pytest.raises(ValidationError) as refused:
        services.send_recovery_link(person, actor=staff, registration=theirs)
    assert refused.value.messages == [errors.NO_APP_TO_RECOVER]
    nothing_sent()


def test_bnd07_only_a_device_in_use_with_an_app_can_be_recovered(person, phone, staff, clock):
    unfinished = services.start_enrollment(person, kind="tablet", verified_at=timezone.now())
    retired = add_app_device(person, kind="tablet")
    services.retire_registration(retired, actor=person, verified_at=timezone.now())
    for registration in (unfinished, retired):
        with pytest.raises(ValidationError) as refused:
            services.send_recovery_link(person, actor=staff, registration=registration)
        assert refused.value.messages == [errors.NO_APP_TO_RECOVER]
    nothing_sent()


def test_bnd07_no_recovery_link_without_an_app_device(person, staff):
    with pytest.raises(ValidationError) as refused:
        services.send_recovery_link(person, actor=staff)
    assert refused.value.messages == [errors.NO_APP_TO_RECOVER]
    nothing_sent()


def test_bnd07_recovery_link_is_audited_with_the_check_and_never_the_token(person, phone, staff, send_link, mailoutbox):
    token = send_link(person)

    event = events("recovery.link_sent").get()
    link = ActivationLink.objects.get()
    assert event.actor == staff and event.subject == person
    assert event.details == {
        "registration": phone.pk,
        "link": link.pk,
        "identity_check": "photo_id_in_person",
        "reference": "INC-20417",
    }
    assert link.purpose == ActivationLink.Purpose.RECOVERY and link.sent_by == staff and link.user == person
    assert link.expires_at == timezone.now() + settings.ACTIVATION_LINK_TTL
    assert len(token) >= 22 and link.token_hash == services.hash_token(token)
    for row in AuditEvent.objects.values():
        assert token not in str(row)
    assert token not in str(list(ActivationLink.objects.values()))
    message = OutboundMessage.objects.get(template="recovery_link")
    assert message.holds_secret and message.recipient == person.email
    assert token not in str(list(OutboundMessage.objects.values()))
    (email,) = mailoutbox
    assert email.to == [person.email]
    assert email.body.count(token) == 1 and settings.SITE_URL + f"/activate/#{token}" in email.body
    # Sending a link changes nothing yet: the old phone's secret stays until a new one is confirmed.
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.app_device.confirmed


# --- Opening it: password, then only the new-phone page -------------------------------------------------------


def test_bnd07_link_and_password_start_the_reactivation_confined_to_the_new_phone_page(person, phone, staff, send_link):
    second = add_app_device(person, kind="tablet")
    token = send_link(person, registration=phone)
    browser, landing = open_link(token)
    assert person.username in text(landing) and 'type="password"' in text(landing)
    assert "otpauth" not in text(landing)
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE  # opening the link alone starts nothing

    response = browser.post(LANDING, {"password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == new_phone_url(phone)
    assert response["Referrer-Policy"] == "same-origin"
    phone.refresh_from_db()
    new = phone.pending_app_device
    assert phone.status == Registration.Status.REACTIVATING and new is not None and not new.confirmed
    assert browser.session[RECOVERY_SESSION_KEY] == phone.pk and not is_verified(browser)
    page = browser.get(new_phone_url(phone))
    assert page.status_code == 200
    assert page_secret(page) == qr_secret(browser, phone) == secret_b32(new)
    assert secret_b32(phone.app_device) not in text(page)
    assert "Cancel the phone change" not in text(page)

    # Every other page sends the person back there; nothing else can be changed from this session.
    for url in (
        "/devices/",
        "/enroll/",
        "/enroll/device-type/",
        "/devices/backup-codes/",
        f"/devices/{phone.pk}/lost/",
        f"/devices/{phone.pk}/remove/",
        f"/devices/{phone.pk}/rename/",
        f"/devices/{second.pk}/lost/",
    ):
        assert browser.get(url)["Location"] == new_phone_url(phone), url
        assert browser.post(url, {"kind": "tablet", "label": "x"})["Location"] == new_phone_url(phone), url
    cancel = browser.post(new_phone_url(phone), {"action": "cancel"})
    assert cancel.status_code == 200
    phone.refresh_from_db()
    second.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING and phone.pending_app_device_id == new.pk
    assert second.status == Registration.Status.ACTIVE and second.label == "Android tablet"
    assert not Registration.objects.filter(user=person, kind="tablet").exclude(pk=second.pk).exists()
    assert not events("backup_codes.generated").exists() and not events("device.reported_lost").exists()
    # Another of the person's devices is not open to this session either.
    assert browser.get(new_phone_url(second))["Location"].startswith("/account/sign-in/")
    assert details_of(events("recovery.started").get()) == {"registration": phone.pk, "sent_by": staff.pk}


def test_bnd07_confirming_the_new_phone_signs_the_person_in_fully(person, phone, send_link, clock, mailoutbox):
    old = phone.app_device
    old_phone = totp_for(old)
    token = send_link(person)
    browser = recover(token)
    new_phone = pyotp.TOTP(qr_secret(browser, phone))

    clock.tick(30)
    refused = browser.post(new_phone_url(phone), {"action": "confirm", "code": old_phone.now()})
    assert refused.status_code == 200 and errors.REACTIVATION_WRONG_CODE in text(refused)
    assert not is_verified(browser)
    assert browser.get("/devices/")["Location"] == new_phone_url(phone)

    response = browser.post(new_phone_url(phone), {"action": "confirm", "code": new_phone.now()})

    assert response.status_code == 302 and response["Location"] == "/devices/"
    phone.refresh_from_db()
    old.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.app_device.confirmed
    assert secret_b32(phone.app_device) == new_phone.secret
    assert not old.confirmed and old.encrypted_secret == ""
    assert RECOVERY_SESSION_KEY not in browser.session
    assert browser.session[DEVICE_ID_SESSION_KEY] == phone.app_device.persistent_id
    assert browser.get("/devices/").status_code == 200
    assert browser.get("/devices/backup-codes/").status_code == 200
    assert events("device.reactivated").get().actor == person
    assert OutboundMessage.objects.filter(template="notice:device.reactivated").count() == 1
    # From now on the old phone is refused at sign-in, the new one signs in.
    clock.tick(30)
    laptop = Client()
    laptop.post("/account/sign-in/", {"username": person.username, "password": PASSWORD})
    second_factor = "/account/sign-in/second-factor/"
    refused = laptop.post(second_factor, {"device": old.persistent_id, "code": old_phone.now()})
    assert refused.status_code == 200
    accepted = laptop.post(second_factor, {"device": phone.app_device.persistent_id, "code": new_phone.now()})
    assert accepted["Location"] == "/devices/"


def test_bnd07_recovery_session_gets_no_verification_once_the_change_is_over(person, phone, send_link, sign_in, clock):
    """The person cancels from a session of their own: the recovery session ends, and no code gets it in."""
    old = phone.app_device
    token = send_link(person)
    browser = recover(token)
    owner = Client()
    clock.tick(30)
    sign_in(owner, person, old)
    owner.post(new_phone_url(phone), {"action": "cancel"})
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE

    clock.tick(30)
    for code in ("000000", fresh_code(old)):
        response = browser.post(new_phone_url(phone), {"action": "confirm", "code": code})
        assert response.status_code == 302 and response["Location"].startswith("/account/sign-in/")
        assert not is_verified(browser) and RECOVERY_SESSION_KEY not in browser.session
    assert browser.get("/devices/")["Location"].startswith("/account/sign-in/")
    assert browser.post(new_phone_url(phone), {"action": "start"})["Location"].startswith("/account/sign-in/")
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.pending_app_device is None
    assert not events("device.reactivated").exists()


def test_bnd07_a_recovery_session_left_open_gets_nothing_of_a_later_phone_change(person, phone, send_link, clock):
    """A link opened on a shared computer and left there; a second link, opened on the person's own phone, begins
    the change again: whoever sits at the shared computer sees no new secret and confirms nothing."""
    shared = recover(send_link(person))
    qr_secret(shared, phone)
    own = recover(send_link(person))
    phone.refresh_from_db()
    new = phone.pending_app_device
    new_phone = totp_for(new)
    assert page_secret(own.get(new_phone_url(phone))) == secret_b32(new)

    clock.tick(30)
    refused = shared.post(new_phone_url(phone), {"action": "confirm", "code": new_phone.now()})

    assert refused.status_code == 302 and refused["Location"].startswith("/account/sign-in/")
    assert RECOVERY_SESSION_KEY not in shared.session and not is_verified(shared)
    signed_out = shared.get(refused["Location"])
    assert errors.RECOVERY_OVER in text(signed_out) and secret_b32(new) not in text(signed_out)
    for url in (new_phone_url(phone), f"/enroll/{phone.pk}/qr.svg", "/devices/"):
        response = shared.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/account/sign-in/"), url
    phone.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING and phone.pending_app_device_id == new.pk
    assert not events("device.reactivated").exists()
    # The person's own phone finishes the change.
    assert own.post(new_phone_url(phone), {"action": "confirm", "code": new_phone.now()})["Location"] == "/devices/"
    assert is_verified(own)


def test_bnd07_a_recovery_session_ends_with_its_phone_change(person, phone, send_link, sign_in, clock):
    """Cancelled from another session and begun again there: the recovery session sees none of the new secret."""
    browser = recover(send_link(person))
    owner = Client()
    clock.tick(30)
    sign_in(owner, person, phone.app_device)
    owner.post(new_phone_url(phone), {"action": "cancel"})
    owner.post(new_phone_url(phone), {"action": "start"})
    phone.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING

    response = browser.get(new_phone_url(phone))

    assert response.status_code == 302 and response["Location"].startswith("/account/sign-in/")
    assert RECOVERY_SESSION_KEY not in browser.session


def test_bnd07_the_service_asks_a_second_factor_for_a_change_begun_again(person, phone, send_link, clock):
    first = services.open_activation_link(
        services.find_activation_link(services.hash_token(send_link(person))), password=PASSWORD
    ).registration.pending_app_device_id
    second = services.open_activation_link(
        services.find_activation_link(services.hash_token(send_link(person))), password=PASSWORD
    ).registration.pending_app_device
    assert second.pk != first

    with pytest.raises(services.ReauthRequired):
        services.confirm_reactivation(
            phone, code=fresh_code(second), actor=person, verified_at=None, recovery_for=first
        )
    phone.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING and phone.pending_app_device_id == second.pk
    services.confirm_reactivation(
        phone, code=fresh_code(second), actor=person, verified_at=None, recovery_for=second.pk
    )
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.app_device_id == second.pk


def test_ses09_the_admin_refuses_a_recovery_session(make_user, enroll, staff, send_link):
    colleague = make_user("helpdesk2", is_staff=True, is_superuser=True)
    registration = enroll(colleague)
    browser = recover(send_link(colleague))
    assert browser.session[RECOVERY_SESSION_KEY] == registration.pk

    response = browser.get("/admin/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert browser.get("/admin/identity/user/").status_code == 302


# --- A link that is not valid ----------------------------------------------------------------------------------


def assert_not_valid(browser, landing):
    assert landing.status_code == 410
    assert errors.LINK_NOT_VALID in text(landing)
    assert browser.post(LANDING, {"password": PASSWORD}).status_code == 410


def test_bnd07_recovery_link_works_once(person, phone, send_link):
    token = send_link(person)
    browser = recover(token)
    assert ActivationLink.objects.get().consumed_at is not None

    for again in (Client(), browser):
        assert_not_valid(*open_link(token, again))
    stranger = Client()
    assert_not_valid(*open_link(token, stranger))
    assert RECOVERY_SESSION_KEY not in stranger.session and stranger.get("/devices/")["Location"].startswith(
        "/account/sign-in/"
    )
    assert events("activation_link.used").count() == 1 and events("recovery.started").count() == 1
    assert events("device.reactivation_started").count() == 1


def test_bnd07_recovery_link_expires_after_24_hours(person, phone, send_link, clock):
    token = send_link(person)
    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() - 60)
    _, landing = open_link(token)
    assert landing.status_code == 200

    clock.tick(61)

    assert_not_valid(*open_link(token))
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.pending_app_device is None
    assert ActivationLink.objects.get().consumed_at is None


def test_bnd07_recovery_link_is_bound_to_its_person(person, phone, send_link, make_user, sign_in, enroll):
    other = make_user("bystander")
    enroll(other)
    other.set_password("the bystander's own password 7")
    other.save()
    token = send_link(person)
    bystander = Client()
    bystander.post("/account/sign-in/", {"username": other.username, "password": "the bystander's own password 7"})

    _, landing = open_link(token, bystander)
    assert person.username in text(landing)
    refused = bystander.post(LANDING, {"password": "the bystander's own password 7"})

    assert refused.status_code == 200 and errors.LINK_WRONG_PASSWORD in text(refused)
    assert RECOVERY_SESSION_KEY not in bystander.session
    link = ActivationLink.objects.get()
    assert (link.password_failures, link.consumed_at) == (1, None)
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE
    assert not Registration.objects.filter(user=other, status=Registration.Status.REACTIVATING).exists()


def test_bnd07_five_wrong_passwords_revoke_the_recovery_link(person, phone, send_link):
    token = send_link(person)
    browser, _ = open_link(token)
    for attempt in range(1, settings.ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS + 1):
        response = browser.post(LANDING, {"password": f"guess {attempt}"})
        expected = errors.LINK_TOO_MANY_PASSWORDS if attempt == 5 else errors.LINK_WRONG_PASSWORD
        assert expected in text(response), attempt
    assert ActivationLink.objects.get().revoked_at is not None

    assert browser.post(LANDING, {"password": PASSWORD}).status_code == 410
    assert_not_valid(*open_link(token))
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE
    assert not events("recovery.started").exists()


def test_bnd07_a_newer_link_revokes_the_older_one(person, phone, send_link, clock):
    first = send_link(person)
    second = send_link(person)
    assert_not_valid(*open_link(first))
    assert recover(second).session[RECOVERY_SESSION_KEY] == phone.pk


def test_bnd07_a_device_reported_lost_takes_its_recovery_link_with_it(person, phone, send_link):
    token = send_link(person)
    services.report_lost(phone, actor=person, verified_at=timezone.now())
    assert_not_valid(*open_link(token))


def test_bnd07_a_change_finished_elsewhere_takes_the_recovery_link_with_it(person, phone, send_link, clock):
    token = send_link(person)
    registration = services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    services.confirm_reactivation(
        registration, code=fresh_code(registration.pending_app_device), actor=person, verified_at=timezone.now()
    )
    assert_not_valid(*open_link(token))


def test_bnd07_act06_a_recovery_link_during_a_stale_phone_change_starts_afresh(person, phone, send_link, clock):
    """The person began a change a day ago and never finished it; the help desk's link must still work."""
    registration = services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    stale = registration.pending_app_device
    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() - 3600)
    token = send_link(person)
    clock.tick(2 * 3600)

    browser = recover(token)
    page = browser.get(new_phone_url(phone))

    assert page.status_code == 200, page.get("Location")
    phone.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING and phone.pending_app_device_id != stale.pk
    new_phone = pyotp.TOTP(page_secret(page))
    assert browser.post(new_phone_url(phone), {"action": "confirm", "code": new_phone.now()})["Location"] == (
        "/devices/"
    )
    assert is_verified(browser)
