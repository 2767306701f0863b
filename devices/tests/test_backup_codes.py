"""Backup codes (BND-06): 80 random bits each, kept only as keyed hashes, shown once, single-use,
a new set replaces the old one; wrong codes count toward the lockout (OTP-01)."""

import base64
import hashlib
import logging
import re

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user

from devices import backup_codes, crypto, errors, services
from devices.models import BackupCode, BackupCodeDevice, OutboundMessage
from identity import errors as identity_errors
from identity.models import AuditEvent, User
from identity.services import SecondFactorOutcome, verify_second_factor
from testsupport import PASSWORD, details_of, fresh_code, locked_message, race, wrong_code

from .helpers import events, text

pytestmark = pytest.mark.django_db

SIGN_IN = "/account/sign-in/"
SECOND_FACTOR = "/account/sign-in/second-factor/"
PAGE = "/devices/backup-codes/"
SHOWN = re.compile(r"<code>([^<]+)</code>")
WRONG = "zzzz-zzzz-zzzz-zzzz"  # the right shape, never made: "z" is not in the alphabet of the codes


@pytest.fixture(autouse=True)
def _no_back_off(settings):
    # django-otp's back-off would refuse the next attempt unseen; these tests count every failure.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def phone(clock, person, enroll):
    return enroll(person)


@pytest.fixture
def sending(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def signed_in(client, person, phone, sign_in):
    sign_in(client, person, phone.app_device)
    return client


FORM_FIELDS = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def form_of(client) -> dict:
    """The form for a new set, as the backup codes page shows it (without its CSRF token: the test client's
    requests are not checked)."""
    return {name: value for name, value in FORM_FIELDS.findall(text(client.get(PAGE))) if name != "csrfmiddlewaretoken"}


def generate(client) -> list[str]:
    """Make a set through the page and read the codes off it, as the person would."""
    response = client.post(PAGE, form_of(client))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    return SHOWN.findall(text(response))


def backup_device(person) -> BackupCodeDevice:
    return BackupCodeDevice.objects.get(user=person, confirmed=True)


def try_code(person, code, browser=None):
    """Password, then ``code`` for the backup codes; returns (browser, response)."""
    browser = browser or Client()
    assert browser.post(SIGN_IN, {"username": person.username, "password": PASSWORD})["Location"] == SECOND_FACTOR
    return browser, browser.post(SECOND_FACTOR, {"device": backup_device(person).persistent_id, "code": code})


def signed_in_with(browser):
    return browser.session.get(DEVICE_ID_SESSION_KEY)


def failures(person) -> int:
    person.refresh_from_db()
    return person.second_factor_failures


# --- Strength and storage -----------------------------------------------------------------------------------


def test_bnd06_ten_codes_of_80_random_bits(signed_in, person):
    codes = generate(signed_in)

    assert len(codes) == backup_codes.CODE_COUNT == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert re.fullmatch(r"[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}", code), code
        # 16 base32 characters, 5 bits each: 80 bits (>= 64), decoding to 10 random bytes.
        assert len(base64.b32decode(code.replace("-", "").upper())) == 10
    assert backup_codes.CODE_BYTES * 8 >= 64
    device = backup_device(person)
    assert device.codes.count() == 10 and device.unused_count == 10


def test_bnd06_codes_are_random_across_sets(person, phone):
    seen = set()
    for _ in range(20):
        seen.update(services.generate_backup_codes(person, actor=person, verified_at=timezone.now()))
    assert len(seen) == 200
    # Every alphabet character turns up in every position: nothing is fixed or guessable.
    for position in range(16):
        assert len({code.replace("-", "")[position] for code in seen}) > 16


def test_bnd06_codes_are_kept_only_as_keyed_hashes(signed_in, person, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        codes = generate(signed_in)
    try_code(person, codes[0])
    try_code(person, codes[0].upper().replace("-", ""))

    spellings = {form for code in codes for form in (code, code.upper(), code.replace("-", ""))}
    for model in (BackupCode, BackupCodeDevice, AuditEvent, User):
        dumped = str(list(model.objects.values())).lower()
        assert not [code for code in codes if code in dumped or code.replace("-", "") in dumped], model
    bodies = [crypto.decrypt(m.encrypted_body).decode() for m in OutboundMessage.objects.exclude(encrypted_body="")]
    assert bodies and not [s for s in spellings for body in bodies if s in body]
    assert not [s for s in spellings if s in caplog.text]
    # Keyed: the stored value is no plain hash of the code, and the same code hashes differently under another key.
    stored = set(BackupCode.objects.values_list("code_hash", flat=True))
    for code in codes:
        for form in (code, code.replace("-", "")):
            assert hashlib.sha256(form.encode()).hexdigest() not in stored
    assert backup_codes.hash_code(codes[1]) in stored
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "FACTOR_ENCRYPTION_KEYS", [Fernet.generate_key().decode()])
        assert backup_codes.hash_code(codes[1]) not in stored


def test_bnd06_codes_survive_a_rotation_of_the_encryption_key(client, person, clock, enroll, settings, sign_in):
    first = Fernet.generate_key().decode()
    settings.FACTOR_ENCRYPTION_KEYS = [first]
    phone = enroll(person)
    sign_in(client, person, phone.app_device)
    codes = generate(client)

    settings.FACTOR_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), first]  # a new key first; the old still reads

    browser, response = try_code(person, codes[0])
    assert response.status_code == 302 and signed_in_with(browser) == backup_device(person).persistent_id
    assert try_code(person, codes[0])[1].status_code == 200  # still used once only


# --- Shown once ---------------------------------------------------------------------------------------------


def test_bnd06_codes_are_shown_once(signed_in, person):
    before = text(signed_in.get(PAGE))
    assert "You have no backup codes yet." in before

    codes = generate(signed_in)

    for page in (signed_in.get(PAGE), signed_in.get("/devices/")):
        assert page.status_code == 200
        assert not [code for code in codes if code in text(page) or code.upper() in text(page)]
        assert "<code>" not in text(page)
    assert "10 of 10" in text(signed_in.get(PAGE))
    assert details_of(events("backup_codes.generated").get()) == {
        "device": backup_device(person).persistent_id,
        "count": 10,
        "replaced_sets": 0,
    }


def test_bnd06_the_page_only_shows_codes_to_a_post(signed_in, person):
    for _ in range(2):
        assert signed_in.get(PAGE).status_code == 200
    assert not BackupCodeDevice.objects.exists()  # a GET changes nothing (SES-06)


# --- Signing in with one ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spell",
    [
        lambda code: code,
        lambda code: code.upper(),
        lambda code: code.replace("-", ""),
        lambda code: code.replace("-", "").upper(),
        lambda code: " " + code.replace("-", " ") + " ",
    ],
    ids=["as-shown", "upper", "no-dashes", "upper-no-dashes", "spaces"],
)
def test_bnd06_a_backup_code_signs_in_once(signed_in, person, spell):
    codes = generate(signed_in)
    device = backup_device(person)
    assert device.persistent_id in {d.persistent_id for d in devices_for_user(person, confirmed=True)}

    browser, response = try_code(person, spell(codes[3]))

    assert response.status_code == 302 and response["Location"] == "/devices/"
    assert signed_in_with(browser) == device.persistent_id
    assert browser.get("/devices/").status_code == 200
    assert device.codes.filter(used_at__isnull=False).count() == 1
    assert "9 of 10" in text(browser.get(PAGE))
    assert events("signin.second_factor_ok").first().details["factor"] == "backup_code"

    # The same code again, however it is written, is refused, and counts as a failure.
    for again in (codes[3], codes[3].upper().replace("-", "")):
        second, refused = try_code(person, again)
        assert refused.status_code == 200 and identity_errors.WRONG_CODE in text(refused)
        assert signed_in_with(second) is None
    assert failures(person) == 2
    # The other nine still work.
    assert try_code(person, codes[4])[1].status_code == 302
    assert failures(person) == 0


@pytest.mark.parametrize("bad", ["", "     ", WRONG, "a" * 200, "ÄÖÜß-ÄÖÜß-ÄÖÜß-ÄÖÜß", "٠١٢٣٤٥", "' OR 1=1 --"])
def test_bnd06_malformed_backup_codes_are_refused(signed_in, person, bad):
    generate(signed_in)
    browser, response = try_code(person, bad)
    assert response.status_code == 200
    assert signed_in_with(browser) is None
    assert backup_device(person).unused_count == 10


def test_bnd06_a_new_set_invalidates_the_old_one_and_notifies(signed_in, person, mailoutbox, sending):
    with sending():
        old_codes = generate(signed_in)
    old_device = backup_device(person)
    with sending():
        new_codes = generate(signed_in)

    assert not set(old_codes) & set(new_codes)
    new_device = backup_device(person)
    assert new_device.pk != old_device.pk
    old_device.refresh_from_db()
    assert not old_device.confirmed and old_device.codes.count() == 10  # retired, its history kept
    _, refused = try_code(person, old_codes[0])
    assert refused.status_code == 200
    # The old set cannot be used by naming its device either.
    browser = Client()
    browser.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    response = browser.post(SECOND_FACTOR, {"device": old_device.persistent_id, "code": old_codes[1]})
    assert response.status_code == 200 and signed_in_with(browser) is None
    assert try_code(person, new_codes[0])[1].status_code == 302
    assert events("backup_codes.generated").first().details["replaced_sets"] == 1
    notices = OutboundMessage.objects.filter(template="notice:backup_codes.generated", user=person)
    assert notices.count() == 2
    assert [m.subject for m in mailoutbox].count(notices.first().subject) == 2


@pytest.mark.parametrize("had_codes", [False, True], ids=["first-set", "new-set"])
def test_bnd06_a_second_submit_of_the_form_makes_no_new_set(signed_in, person, sending, mailoutbox, had_codes):
    """Reloading the page that shows the codes (or a double click) sends the form again: the set just shown
    stays the one that works, and no second notice goes out."""
    if had_codes:
        generate(signed_in)
    form = form_of(signed_in)
    with sending():
        shown = SHOWN.findall(text(signed_in.post(PAGE, form)))
    device = backup_device(person)
    sent = len(mailoutbox)

    with sending():
        again = signed_in.post(PAGE, form)

    assert again.status_code == 302 and again["Location"] == PAGE
    page = text(signed_in.get(PAGE))
    assert errors.BACKUP_CODES_ALREADY_MADE in page and "<code>" not in page
    assert backup_device(person) == device and BackupCodeDevice.objects.filter(user=person).count() == 1 + had_codes
    assert events("backup_codes.generated").count() == 1 + had_codes
    assert len(mailoutbox) == sent
    assert try_code(person, shown[0])[1].status_code == 302
    # The form as the page shows it now makes a new set.
    assert len(generate(signed_in)) == 10 and backup_device(person) != device


def test_bnd06_codes_of_another_person_are_refused(signed_in, person, make_user, enroll):
    other = make_user("bystander")
    enroll(other)
    theirs = services.generate_backup_codes(other, actor=other, verified_at=timezone.now())
    generate(signed_in)

    browser, response = try_code(person, theirs[0])
    assert response.status_code == 200 and signed_in_with(browser) is None
    # Nor can their set be named as a device by someone else.
    response = browser.post(SECOND_FACTOR, {"device": backup_device(other).persistent_id, "code": theirs[1]})
    assert response.status_code == 200 and signed_in_with(browser) is None
    assert backup_device(other).unused_count == 10


# --- BND-01 --------------------------------------------------------------------------------------------------


def test_bnd01_generating_backup_codes_needs_a_recent_second_factor(signed_in, person, phone, clock):
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)

    response = signed_in.post(PAGE)

    assert response.status_code == 302
    assert response["Location"] == "/account/sign-in/confirm/?next=%2Fdevices%2Fbackup-codes%2F"
    assert not BackupCodeDevice.objects.exists()
    with pytest.raises(services.ReauthRequired):
        services.generate_backup_codes(person, actor=person, verified_at=None)
    # After a fresh code they can.
    clock.tick(30)
    signed_in.post(
        response["Location"], {"device": phone.app_device.persistent_id, "code": fresh_code(phone.app_device)}
    )
    assert len(generate(signed_in)) == 10


def test_bnd01_replacing_a_set_needs_a_recent_second_factor_too(signed_in, person, clock):
    codes = generate(signed_in)
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)
    assert signed_in.post(PAGE)["Location"].startswith("/account/sign-in/confirm/")
    assert try_code(person, codes[0])[1].status_code == 302  # the old set still works


# --- OTP-01: failures count toward the lockout --------------------------------------------------------------


def test_otp01_ten_wrong_backup_codes_lock_the_account(signed_in, person, sending):
    codes = generate(signed_in)
    browser = Client()
    browser.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    device = backup_device(person)
    with sending():
        for _ in range(settings.LOCKOUT_THRESHOLD):
            response = browser.post(SECOND_FACTOR, {"device": device.persistent_id, "code": WRONG})

    person.refresh_from_db()
    assert person.is_locked
    assert locked_message() in text(response)
    details = events("signin.second_factor_failed").first().details
    assert details["factor"] == "backup_code" and details["consecutive_failures"] == 10
    assert OutboundMessage.objects.filter(template="notice:account.locked").count() == 1
    # A right code is refused now, and not used up.
    response = browser.post(SECOND_FACTOR, {"device": device.persistent_id, "code": codes[0]})
    assert locked_message() in text(response) and signed_in_with(browser) is None
    assert device.unused_count == 10


def test_otp01_backup_codes_and_app_codes_fail_toward_one_count(signed_in, person, phone):
    generate(signed_in)
    browser = Client()
    browser.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    app, backup = phone.app_device, backup_device(person)
    for n in range(settings.LOCKOUT_THRESHOLD):
        device, code = (backup, WRONG) if n % 2 else (app, wrong_code(app))
        browser.post(SECOND_FACTOR, {"device": device.persistent_id, "code": code})
    person.refresh_from_db()
    assert person.is_locked
    factors = [e.details["factor"] for e in events("signin.second_factor_failed")]
    assert factors.count("backup_code") == 5 and factors.count("authenticator_app") == 5


# --- OTP-04 style: one use even when two requests race --------------------------------------------------------


@pytest.mark.postgres
# Serialized, as the browser tests that run next are: a plain transactional test before them would leave
# the content types renumbered, and restoring their serialized copy would then fail.
@pytest.mark.django_db(transaction=True)
def test_bnd06_two_simultaneous_uses_of_one_code_give_one_success(make_user, enroll):
    person = make_user("racer")
    enroll(person)
    codes = services.generate_backup_codes(person, actor=person, verified_at=timezone.now())
    device = backup_device(person)

    def use():
        return verify_second_factor(person, device=device, code=codes[0], ip=None)

    outcomes = race(use, use)
    assert sorted(outcomes) == sorted([SecondFactorOutcome.OK, SecondFactorOutcome.WRONG])
    assert device.codes.filter(used_at__isnull=False).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_bnd06_a_double_click_makes_one_set(make_user, enroll):
    """Two submits of the same form at once: one set is made, the other request is told so."""
    person = make_user("clicker")
    enroll(person)

    def submit():
        return len(services.generate_backup_codes(person, actor=person, verified_at=timezone.now(), replacing=""))

    outcomes = race(submit, submit)
    assert sorted(outcomes, key=str) == [10, "already_made"]
    assert BackupCodeDevice.objects.filter(user=person).count() == 1
    assert events("backup_codes.generated").count() == 1
