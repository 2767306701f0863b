"""Passkeys: registered as discoverable credentials that verify the person, used as a second factor and alone
(passwordless), with a random user handle per person and what the authenticator says of syncing recorded."""

import base64
import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from devices import errors, retention, services
from devices.models import Registration, SecurityKeyDevice, WebAuthnChallenge, WebAuthnUserHandle
from devices.services import security_keys
from devices.webauthn import SessionChallenge, user_handle
from identity import errors as identity_errors
from identity import lifetimes
from identity import session as signin_session
from identity.events import describe
from identity.models import AuditEvent, PersonSession
from identity.services import SecondFactorOutcome
from testsupport import details_of, signed_in_user_id

from .helpers import IP, events, failures, new_key, register, registration_challenge, sign_in

pytestmark = pytest.mark.usefixtures("relying_party")

PasswordlessOutcome = security_keys.PasswordlessOutcome


def new_passkey(**kwargs):
    """A passkey on a phone or computer: resident, verifying the person, device-bound unless told otherwise."""
    return new_key(resident=True, **kwargs)


def pending_passkey(person) -> Registration:
    return services.start_enrollment(person, kind=Registration.Kind.PASSKEY, verified_at=timezone.now())


def register_passkey(person, key, *, session="session-a", label="My phone") -> Registration:
    registration = pending_passkey(person)
    options, claim = registration_challenge(person, session=session, registration=registration)
    return security_keys.register_security_key(
        person,
        registration=registration,
        response_json=key.create(options),
        challenge=claim,
        label=label,
        actor=person,
        ip=IP,
        verified_at=timezone.now(),
    )


def passwordless_challenge(*, session="session-p"):
    options, challenge = security_keys.start_passwordless_sign_in(session_key=session, ip=IP)
    return json.loads(options), SessionChallenge(challenge.pk, session)


def passwordless(key, *, session="session-p", tamper=None):
    options, claim = passwordless_challenge(session=session)
    response = key.get(options)
    if tamper:
        response = json.dumps(tamper(json.loads(response)))
    return security_keys.sign_in_with_passkey(response_json=response, challenge=claim, ip=IP)


@pytest.fixture(autouse=True)
def _no_back_off(settings):
    # django-otp's back-off between wrong answers is not what these tests are about; the lockout is.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture(name="passkey_holder")
def passkey_holder_fixture(person):
    key = new_passkey()
    register_passkey(person, key)
    return person, key


# --- WA-01: registration ----------------------------------------------------------------------------


def test_WA_01_passkey_is_asked_for_as_a_discoverable_credential_that_verifies_the_person(person):
    options, _ = registration_challenge(person, registration=pending_passkey(person))
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required" and selection["requireResidentKey"] is True
    assert selection["userVerification"] == "required"
    assert options["extensions"] == {"credProps": True}


def test_WA_01_a_registered_passkey_is_recorded_as_discoverable_and_user_verified(person):
    registration = register_passkey(person, new_passkey())
    device = registration.security_key_device
    assert registration.kind == Registration.Kind.PASSKEY and registration.status == Registration.Status.ACTIVE
    assert device.form == SecurityKeyDevice.Form.PASSKEY and device.factor_name == "passkey"
    assert device.discoverable and device.user_verified and device.confirmed
    event = events("device.bound").get()
    assert event.details == {
        "registration": registration.pk,
        "kind": "passkey",
        "factor": "passkey",
        "backed_up": False,
    }


def test_WA_01_a_passkey_that_did_not_verify_the_person_is_refused(person):
    with pytest.raises(ValidationError) as refused:
        register_passkey(person, new_passkey(verifies_user=False))
    assert refused.value.messages == [errors.PASSKEY_REGISTRATION_FAILED]
    assert not SecurityKeyDevice.objects.exists()
    assert events("enrollment.security_key_rejected").get().details["reason"] == "invalid_response"
    assert Registration.objects.get().status == Registration.Status.PENDING


def test_WA_01_a_passkey_the_browser_did_not_make_discoverable_is_refused(person):
    # credProps says rk=false: the authenticator kept no resident credential, so it could never sign in alone.
    with pytest.raises(ValidationError) as refused:
        register_passkey(person, new_key(resident=False))
    assert refused.value.messages == [errors.PASSKEY_REGISTRATION_FAILED]
    assert not SecurityKeyDevice.objects.exists()
    assert events("enrollment.security_key_rejected").get().details["reason"] == "not_discoverable"


def test_WA_01_a_credential_registered_before_to_anyone_is_refused(make_user):
    first, second = make_user("first1"), make_user("second1")
    key = new_passkey()
    register_passkey(first, key)
    # The browser would refuse only the person's own credentials (excludeCredentials); the server refuses any.
    with pytest.raises(ValidationError) as refused:
        register_passkey(second, key)
    assert refused.value.messages == [errors.PASSKEY_ALREADY_REGISTERED]
    assert SecurityKeyDevice.objects.get().user == first
    assert events("enrollment.security_key_rejected").get().details["reason"] == "credential_registered"


# --- As a second factor -------------------------------------------------------------------------------


def test_a_passkey_signs_in_as_a_second_factor_through_the_one_verification_entry(passkey_holder):
    person, key = passkey_holder
    assert sign_in(person, key) == SecondFactorOutcome.OK
    event = events("signin.second_factor_ok").get()
    assert event.details == {"factor": "passkey", "entry_point": "web"}
    assert SecurityKeyDevice.objects.get().sign_count == 1


def test_a_synced_passkey_that_always_reports_counter_zero_is_accepted(person):
    key = new_passkey(counter_step=0, backup_eligible=True, backed_up=True)
    register_passkey(person, key)
    assert [sign_in(person, key, session=f"s{n}") for n in range(3)] == [SecondFactorOutcome.OK] * 3
    assert not events("security_key.counter_regressed").exists()


def test_a_wrong_passkey_answer_counts_toward_the_lockout_across_factors(passkey_holder, settings):
    person, key = passkey_holder
    wrong = new_passkey()  # not registered: its answer is checked against the person's passkey and fails
    for n in range(settings.LOCKOUT_THRESHOLD):
        assert sign_in(person, wrong, session=f"s{n}") in (SecondFactorOutcome.WRONG, SecondFactorOutcome.LOCKED)
    person.refresh_from_db()
    assert person.is_locked
    assert sign_in(person, key, session="after") == SecondFactorOutcome.LOCKED


# --- WA-02: passwordless ------------------------------------------------------------------------------


def test_WA_02_passwordless_options_name_nobody_and_require_user_verification(db):
    options, claim = passwordless_challenge()
    assert options["userVerification"] == "required" and options.get("allowCredentials", []) == []
    row = WebAuthnChallenge.objects.get(pk=claim.challenge_id)
    assert row.user is None and row.ceremony == WebAuthnChallenge.Ceremony.PASSWORDLESS


def test_WA_02_a_passkey_that_verifies_the_person_signs_in_alone_and_the_audit_says_passwordless(passkey_holder):
    person, key = passkey_holder
    before = AuditEvent.objects.count()
    outcome, device = passwordless(key)
    assert outcome == SecondFactorOutcome.OK and device.user == person
    recorded = list(AuditEvent.objects.order_by("sequence")[before:])
    assert [e.action for e in recorded] == ["signin.second_factor_ok"]
    assert recorded[0].details == {"factor": "passkey", "entry_point": "web", "method": "passwordless"}
    assert recorded[0].subject == person
    assert describe(recorded[0].action, recorded[0].details) == (
        "Signed in with a passkey (web sign-in), without a password (passkey alone)"
    )


def test_WA_02_without_user_verification_a_passkey_never_signs_anyone_in_alone(passkey_holder):
    person, key = passkey_holder
    key.verifies_user = False  # the same credential, answering with user presence only
    outcome, _ = passwordless(key)
    assert outcome == SecondFactorOutcome.WRONG
    assert failures(person) == 1
    assert not events("signin.second_factor_ok").exists()
    # As a second factor, after the password, presence alone is still enough (WA-02 is about signing in alone).
    assert sign_in(person, key) == SecondFactorOutcome.OK


def test_WA_02_a_security_key_never_signs_in_without_the_password(person):
    key = new_key(resident=True)  # even one that happens to keep a resident credential
    register(person, key)
    outcome, device = passwordless(key)
    assert outcome == PasswordlessOutcome.UNKNOWN and device is None
    assert events("signin.passwordless_refused").get().details == {"reason": "not_in_use"}


def test_WA_02_a_passwordless_challenge_is_single_use(passkey_holder):
    _, key = passkey_holder
    options, claim = passwordless_challenge()
    first = security_keys.sign_in_with_passkey(response_json=key.get(options), challenge=claim, ip=IP)
    again = security_keys.sign_in_with_passkey(response_json=key.get(options), challenge=claim, ip=IP)
    assert first[0] == SecondFactorOutcome.OK and again[0] == security_keys.CHALLENGE_NOT_OPEN


def test_an_unknown_passkeys_answer_to_a_spent_challenge_writes_no_audit_row(person):
    """Nobody's credential, its answer sent again and again with the one challenge it was given: the first is
    refused and audited; the others find no open challenge and write nothing, so they cannot fill the audit log."""
    options, claim = passwordless_challenge()
    assertion = new_passkey().get(options)
    first = security_keys.sign_in_with_passkey(response_json=assertion, challenge=claim, ip=IP)
    again = [security_keys.sign_in_with_passkey(response_json=assertion, challenge=claim, ip=IP) for _ in range(5)]
    assert first == (PasswordlessOutcome.UNKNOWN, None)
    assert again == [(security_keys.CHALLENGE_NOT_OPEN, None)] * 5
    assert events("signin.passwordless_refused").count() == 1


def test_otp01_answers_to_a_closed_passkey_challenge_are_throttled_by_the_back_off(passkey_holder, clock, settings):
    """Anyone who knows a passkey's credential id may answer a spent challenge again and again, with no password.
    Each answer counts in the passkey's back-off as a wrong one does (not toward the lockout); while the back-off
    holds, the answers are refused unaudited, so they cannot fill the audit log, and answered as an unknown
    credential's are, so they do not tell which ids are passkeys (WA-03)."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 1
    person, key = passkey_holder
    options, claim = passwordless_challenge()
    assertion = key.get(options)
    assert (
        security_keys.sign_in_with_passkey(response_json=assertion, challenge=claim, ip=IP)[0] == SecondFactorOutcome.OK
    )

    def answer_again():
        return security_keys.sign_in_with_passkey(response_json=assertion, challenge=claim, ip=IP)[0]

    flood = [answer_again() for _ in range(20)]

    unknown = json.loads(assertion) | {"id": "bm90LWEtcGFzc2tleQ", "rawId": "bm90LWEtcGFzc2tleQ"}
    stranger = security_keys.sign_in_with_passkey(response_json=json.dumps(unknown), challenge=claim, ip=IP)[0]
    assert set(flood) == {stranger} == {security_keys.CHALLENGE_NOT_OPEN}
    assert events("signin.key_challenge_not_open").count() == 1
    assert failures(person) == 0
    device = SecurityKeyDevice.objects.get()
    assert device.throttling_failure_count == 1
    # Past the back-off the next is audited again, and waits twice as long after it.
    clock.tick(1)
    assert [answer_again(), answer_again()] == [security_keys.CHALLENGE_NOT_OPEN] * 2
    assert events("signin.key_challenge_not_open").count() == 2
    # The person's own passkey signs in once the back-off is over, and that clears it.
    clock.tick(2)
    assert passwordless(key)[0] == SecondFactorOutcome.OK
    device.refresh_from_db()
    assert device.throttling_failure_count == 0 and failures(person) == 0


def test_one_session_asking_again_and_again_is_given_its_one_open_challenge(db):
    first, claim = passwordless_challenge()
    for _ in range(20):
        again, claim_again = passwordless_challenge()
    assert claim_again == claim and again["challenge"] == first["challenge"]
    assert WebAuthnChallenge.objects.filter(ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS).count() == 1


def test_a_session_whose_challenge_is_half_spent_or_answered_gets_a_new_one(passkey_holder, settings):
    _, key = passkey_holder
    options, claim = passwordless_challenge()
    half_gone = timezone.now() + settings.WEBAUTHN_CHALLENGE_TTL / 2 - timedelta(seconds=1)
    WebAuthnChallenge.objects.filter(pk=claim.challenge_id).update(expires_at=half_gone)
    _, fresher = passwordless_challenge()
    assert fresher.challenge_id != claim.challenge_id
    assert WebAuthnChallenge.objects.get(pk=claim.challenge_id).consumed_at is not None  # withdrawn
    options, claim = passwordless_challenge()
    assert claim == fresher
    security_keys.sign_in_with_passkey(response_json=key.get(options), challenge=claim, ip=IP)
    _, after_answer = passwordless_challenge()
    assert after_answer.challenge_id != claim.challenge_id


def test_many_newcomers_from_one_address_write_a_bounded_number_of_rows_and_are_told_to_wait(db, settings):
    settings.PASSWORDLESS_CHALLENGES_PER_ADDRESS = 3
    sessions_before = PersonSession.objects.count()
    answers = [Client().post("/passkey/sign-in/options/", REMOTE_ADDR="198.51.100.7") for _ in range(10)]

    assert [a.status_code for a in answers] == [200] * 3 + [429] * 7
    wait = lifetimes.in_words(settings.WEBAUTHN_CHALLENGE_TTL)
    assert answers[-1].json() == {"error": identity_errors.SIGN_IN_THROTTLED.format(wait=wait)}
    assert answers[-1]["Retry-After"] == str(int(settings.WEBAUTHN_CHALLENGE_TTL.total_seconds()))
    assert WebAuthnChallenge.objects.filter(ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS).count() == 3
    assert PersonSession.objects.count() - sessions_before == 3  # a refused newcomer gets no session row
    # Audited once per address and window, not once per refusal; another address is not held back.
    throttled = events("signin.passwordless_throttled")
    assert throttled.count() == 1 and throttled.get().ip == "198.51.100.7"
    assert describe("signin.passwordless_throttled", {}) != "signin.passwordless_throttled"
    assert Client().post("/passkey/sign-in/options/", REMOTE_ADDR="198.51.100.8").status_code == 200


def test_page_loads_behind_one_address_that_nobody_answers_do_not_refuse_a_persons_passkey(db, passkey_holder):
    """9 am behind a campus NAT: the sign-in page's autofill asks for options on every load, in each browser's own
    session, and nobody answers most of them. More loads than the old per-address limit (300), then a person from
    the same address signs in with their passkey."""
    person, key = passkey_holder
    nat = {"REMOTE_ADDR": "198.51.100.30"}
    for _ in range(301):
        browser = Client()
        browser.get("/account/sign-in/", **nat)
        assert browser.post("/passkey/sign-in/options/", **nat).status_code == 200
        assert browser.post("/passkey/sign-in/options/", **nat).status_code == 200  # a reload: the same challenge
    assert WebAuthnChallenge.objects.filter(client_address="198.51.100.30").count() == 301
    browser = Client()
    browser.get("/account/sign-in/", **nat)
    options = browser.post("/passkey/sign-in/options/", **nat)
    assert options.status_code == 200
    browser.post("/passkey/sign-in/", {"credential": key.get(json.loads(options.content))}, **nat)
    assert signed_in_user_id(browser) == person.pk
    assert not events("signin.passwordless_throttled").exists()


def test_one_session_asking_again_and_again_is_told_to_wait_alone(db, passkey_holder, settings):
    """A session that answers and asks for a new challenge in a loop meets its own limit; another browser behind
    the same address is not held back."""
    settings.PASSWORDLESS_CHALLENGES_PER_SESSION = 3
    _, key = passkey_holder
    looping = Client()
    answers = []
    for _ in range(5):
        response = looping.post("/passkey/sign-in/options/")
        answers.append(response.status_code)
        if response.status_code == 200:  # a wrong answer spends the challenge: the next ask is a new one
            looping.post("/passkey/sign-in/", {"credential": new_passkey().get(json.loads(response.content))})
    assert answers == [200, 200, 200, 429, 429]
    assert Client().post("/passkey/sign-in/options/").status_code == 200


def test_ipv6_addresses_are_counted_by_their_64_taken_from_the_trusted_proxy(db, settings):
    """One /64 is one subscriber, who may rotate through its addresses at will: they share one count. Another /64
    has its own. The address is the one the trusted proxy saw, as everywhere on the site (identity.web.client_ip)."""
    settings.PASSWORDLESS_CHALLENGES_PER_ADDRESS = 2
    settings.TRUSTED_PROXY_COUNT = 1

    def ask(address):
        # A client's own X-Forwarded-For entry (left) proves nothing; the proxy appends what it saw (right).
        forwarded = f"2001:db8:ffff::1, {address}"
        return Client().post("/passkey/sign-in/options/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    one_64 = ["2001:db8:1:2::1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2:ffff:ffff:ffff:ffff"]
    assert [ask(address).status_code for address in one_64] == [200, 200, 429]
    # Next door (another /64 of the same /48) and a mapped IPv4 address are counted apart.
    assert ask("2001:db8:1:3::1").status_code == 200
    assert ask("2001:db8:1:3::2").status_code == 200
    assert ask("2001:db8:1:3::3").status_code == 429
    assert ask("::ffff:198.51.100.9").status_code == 200
    assert ask("198.51.100.9").status_code == 200
    assert ask("198.51.100.10").status_code == 200  # IPv4: each address on its own
    assert ask("198.51.100.9").status_code == 429

    throttled = events("signin.passwordless_throttled").order_by("sequence")
    assert [(event.ip, event.details["network"]) for event in throttled] == [
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::3", "2001:db8:1:3::/64"),
        ("198.51.100.9", "198.51.100.9/32"),
    ]
    assert ask("2001:db8:1:2::99").status_code == 429  # refused again, not audited again
    assert throttled.count() == 3
    assert describe("signin.passwordless_throttled", {"network": "2001:db8:1:2::/64"}).endswith("(2001:db8:1:2::/64)")


def test_a_session_holding_an_open_challenge_keeps_it_while_its_address_is_throttled(db, client, settings):
    settings.PASSWORDLESS_CHALLENGES_PER_ADDRESS = 1
    first = client.post("/passkey/sign-in/options/")
    others = Client().post("/passkey/sign-in/options/")
    again = client.post("/passkey/sign-in/options/")
    assert (first.status_code, others.status_code, again.status_code) == (200, 429, 200)
    assert again.json()["challenge"] == first.json()["challenge"]


def test_expired_passwordless_challenges_are_purged(db, settings):
    _, claim = passwordless_challenge()
    _, open_claim = passwordless_challenge(session="session-q")
    long_ago = timezone.now() - timedelta(hours=2)
    WebAuthnChallenge.objects.filter(pk=claim.challenge_id).update(expires_at=long_ago)
    assert retention.purge_expired_records()["webauthn_challenges"] == 1
    assert set(WebAuthnChallenge.objects.values_list("pk", flat=True)) == {open_claim.challenge_id}


# --- WA-03: the user handle, and unknown or retired credentials ------------------------------------------


def test_WA_03_the_user_handle_is_random_per_person_and_at_least_128_bits(make_user):
    ann, bob = make_user("ann1"), make_user("bob1")
    handles = [user_handle(ann), user_handle(bob)]
    assert all(len(handle) * 8 >= 128 for handle in handles) and handles[0] != handles[1]
    assert user_handle(ann) == handles[0]  # made once, kept
    for person, handle in zip((ann, bob), handles, strict=True):
        assert person.username.encode() not in handle and str(person.pk).encode() != handle
    options, _ = registration_challenge(ann, registration=pending_passkey(ann))
    assert base64.urlsafe_b64decode(options["user"]["id"] + "==") == handles[0]


def test_WA_03_a_passkey_answering_with_another_persons_handle_is_refused(passkey_holder, make_user):
    person, key = passkey_holder
    other = user_handle(make_user("other1"))

    def other_handle(response):
        response["response"]["userHandle"] = base64.urlsafe_b64encode(other).rstrip(b"=").decode()
        return response

    outcome, _ = passwordless(key, tamper=other_handle)
    assert outcome == SecondFactorOutcome.WRONG
    assert not events("signin.second_factor_ok").exists()


def test_WA_03_unknown_and_retired_passkeys_get_the_same_answer_as_a_wrong_one(client, passkey_holder, enroll):
    person, key = passkey_holder
    enroll(person)  # another device, so the passkey may be removed

    def attempt(answering_key, tamper=None):
        client.get("/account/sign-in/")
        options = json.loads(client.post("/passkey/sign-in/options/").content)
        response = answering_key.get(options)
        if tamper:
            response = json.dumps(tamper(json.loads(response)))
        return client.post("/passkey/sign-in/", {"credential": response}, follow=True)

    def bad_signature(response):
        response["response"]["signature"] = response["response"]["signature"][:-4] + "AAAA"
        return response

    wrong = attempt(key, tamper=bad_signature)
    unknown = attempt(new_passkey())
    passkey = Registration.objects.get(user=person, kind=Registration.Kind.PASSKEY)
    services.retire_registration(passkey, actor=person, verified_at=timezone.now())
    retired = attempt(key)
    pages = [wrong, unknown, retired]
    assert all(page.redirect_chain == [("/account/sign-in/", 302)] for page in pages)
    said = [[str(m) for m in page.context["messages"]] for page in pages]
    assert said == [[errors.PASSKEY_NOT_ACCEPTED]] * 3
    assert not any(page.wsgi_request.user.is_authenticated for page in pages)
    reasons = [e.details["reason"] for e in events("signin.passwordless_refused").order_by("sequence")]
    assert reasons == ["unknown_credential", "not_in_use"]


# --- WA-04: synced or bound to one device -------------------------------------------------------------


def test_WA_04_backed_up_or_device_bound_is_recorded_at_registration_and_shown_to_auditors(
    make_user, enroll, client, sign_in
):
    person = make_user("holder1")
    synced = register_passkey(person, new_passkey(backup_eligible=True, backed_up=True), label="Synced phone")
    bound = register_passkey(person, new_passkey(), label="Work laptop", session="session-c")
    synced_device, bound_device = synced.security_key_device, bound.security_key_device
    assert (synced_device.backup_eligible, synced_device.backed_up) == (True, True)
    assert (bound_device.backup_eligible, bound_device.backed_up) == (False, False)
    assert [details_of(e)["backed_up"] for e in events("device.bound").order_by("sequence")] == [True, False]

    auditor = make_user("auditor1", is_staff=True)
    auditor.groups.add(Group.objects.get(name="Auditor"))
    enroll(auditor)
    sign_in(client, auditor)
    listing = client.get("/admin/devices/registration/?kind=passkey")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "Synced (backed up to the person&#x27;s account)" in page and "Bound to one device" in page
    detail = client.get(f"/admin/devices/registration/{bound.pk}/change/").content.decode()
    assert "Bound to one device" in detail and "Synced" not in detail


# --- The migration: a random handle for everyone who had a key -------------------------------------------


def test_people_with_security_keys_get_a_random_handle_from_the_migration(person):
    register(person, new_key())
    WebAuthnUserHandle.objects.all().delete()
    migration = importlib.import_module("devices.migrations.0009_passkeys")
    migration.give_key_holders_random_handles(django_apps, None)
    migration.give_key_holders_random_handles(django_apps, None)  # again: nothing changes
    [row] = WebAuthnUserHandle.objects.all()
    assert row.user == person and len(bytes(row.handle)) == 32


# --- Passwordless never touches the password: the directory on or off ------------------------------------


def _passwordless_through_the_views(client, key):
    client.get("/account/sign-in/")
    options = json.loads(client.post("/passkey/sign-in/options/").content)
    return client.post("/passkey/sign-in/", {"credential": key.get(options)})


def _signed_in_fully_with(client, person, device) -> bool:
    return signed_in_user_id(client) == person.pk and client.session.get(DEVICE_ID_SESSION_KEY) == (
        device.persistent_id
    )


def test_passwordless_signs_in_fully_with_local_passwords(client, passkey_holder):
    person, key = passkey_holder
    response = _passwordless_through_the_views(client, key)
    assert response.status_code == 302 and response.url == "/devices/"
    assert _signed_in_fully_with(client, person, SecurityKeyDevice.objects.get(user=person))
    assert not events("signin.password_ok").exists() and not events("signin.password_failed").exists()


def test_passwordless_signs_a_directory_person_in_with_the_directory_down(client, directory_person, ldap_directory):
    alice = directory_person("alice")
    key = new_passkey()
    register_passkey(alice, key)
    ldap_directory.stop()  # any password check would now fail: passwordless makes none
    response = _passwordless_through_the_views(client, key)
    assert response.status_code == 302 and response.url == "/devices/"
    assert _signed_in_fully_with(client, alice, SecurityKeyDevice.objects.get(user=alice))
    assert not AuditEvent.objects.filter(action__startswith="signin.directory").exists()
    assert not events("signin.password_ok").exists()


def test_a_passkey_confirms_a_signed_in_person_before_a_device_is_added(client, passkey_holder):
    person, key = passkey_holder
    _passwordless_through_the_views(client, key)
    page = client.get("/account/sign-in/confirm/?next=/enroll/").content.decode()
    assert "or your passkey" in page and "Use your passkey" in page
    stamped = client.session[signin_session.VERIFIED_AT]
    options = json.loads(client.post("/security-key/sign-in/options/", {"purpose": "confirm"}).content)
    assert [d["id"] for d in options["allowCredentials"]] == [key.id]
    response = client.post(
        "/security-key/sign-in/", {"purpose": "confirm", "next": "/enroll/", "credential": key.get(options)}
    )
    assert response.status_code == 302 and response.url == "/enroll/"
    assert client.session[signin_session.VERIFIED_AT] > stamped
    assert events("signin.second_factor_ok", details__factor="passkey").count() == 2
