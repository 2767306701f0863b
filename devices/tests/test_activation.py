"""Activation: the emailed link (ACT-01..03) and the QR code (ACT-04)."""

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from django.conf import settings
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone
from django_otp import devices_for_user

from devices import errors, selectors, services
from devices.models import ActivationLink, Registration
from devices.views import LINK_SESSION_KEY
from testsupport import details_of, fresh_code, totp_for

from .helpers import LINK_RE, email_link, events, pending_app_registration, secret_b32, text, walk_to_activate


@pytest.fixture
def enrolling(client, person, sign_in):
    """A signed-in person on the activation step of a mobile phone; returns (client, registration)."""
    sign_in(client, person)
    return client, walk_to_activate(client)


def open_link(token, client=None):
    """Open the link as a phone would: a new browser, unless one is given. Returns (client, landing response)."""
    client = client or Client()
    opening = client.get("/activate/")  # the link's address: its token is after "#", which is never sent
    assert opening.status_code == 200 and "activation-link.js" in text(opening)
    response = client.post("/activate/", {"token": token})  # what the page's script does
    assert response.status_code == 302 and response["Location"] == "/activate/"
    return client, client.get(response["Location"])


def assert_no_secret(response, registration):
    page = text(response)
    key = secret_b32(registration.app_device)
    assert "otpauth" not in page
    assert key not in page and key[:4] + " " + key[4:8] not in page


# --- ACT-01 -------------------------------------------------------------------------------------------------


def test_act01_link_asks_for_password_before_showing_the_secret(
    enrolling, person, password, django_capture_on_commit_callbacks
):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    phone, landing = open_link(token)
    assert landing.status_code == 200
    assert person.username in text(landing)
    assert 'type="password"' in text(landing)
    assert_no_secret(landing, registration)

    ready = phone.post("/activate/", {"password": password})
    assert ready.status_code == 200
    assert selectors.otpauth_uri(registration) in text(ready)
    assert selectors.manual_entry_secret(registration) in text(ready)
    # Opening the link binds nothing: only a code from the app does.
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING
    assert not registration.app_device.confirmed


def test_act01_token_is_long_random_and_stored_hashed(enrolling, django_capture_on_commit_callbacks):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    link = ActivationLink.objects.get(registration=registration)
    assert len(token) >= 22  # >= 128 bits in urlsafe base64
    assert link.token_hash == services.hash_token(token) != token
    assert token not in str(list(ActivationLink.objects.values()))


def test_act01_link_works_once(enrolling, password, django_capture_on_commit_callbacks):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    phone, _ = open_link(token)
    assert phone.post("/activate/", {"password": password}).status_code == 200
    assert ActivationLink.objects.get().consumed_at is not None

    for again in (phone, Client()):
        _, landing = open_link(token, again)
        assert landing.status_code == 410
        assert errors.LINK_NOT_VALID in text(landing)
        assert_no_secret(landing, registration)
    # Posting the password again on the clean URL gives nothing either.
    again = phone.post("/activate/", {"password": password})
    assert again.status_code == 410
    assert_no_secret(again, registration)
    assert events("activation_link.used").count() == 1


def test_act01_link_expires_after_24_hours(clock, enrolling, password, django_capture_on_commit_callbacks):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    assert ActivationLink.objects.get().expires_at <= timezone.now() + settings.ACTIVATION_LINK_TTL
    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() - 60)
    _, landing = open_link(token)
    assert landing.status_code == 200

    clock.tick(61)
    phone, landing = open_link(token)
    assert landing.status_code == 410
    assert phone.post("/activate/", {"password": password}).status_code == 410
    assert ActivationLink.objects.get().consumed_at is None


def test_act01_link_is_bound_to_its_owner(
    enrolling, person, password, make_user, sign_in, django_capture_on_commit_callbacks
):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    other = make_user("bystander")
    other.set_password("the bystander's own password 7")
    other.save()
    other_client = Client()
    sign_in_response = other_client.post(
        "/account/sign-in/", {"username": other.username, "password": "the bystander's own password 7"}
    )
    assert sign_in_response.status_code == 302

    _, landing = open_link(token, other_client)
    # The page asks for the owner's password, whoever is signed in.
    assert person.username in text(landing) and other.username not in text(landing).split("<main", 1)[1]
    refused = other_client.post("/activate/", {"password": "the bystander's own password 7"})
    assert refused.status_code == 200
    assert errors.LINK_WRONG_PASSWORD in text(refused)
    assert_no_secret(refused, registration)
    link = ActivationLink.objects.get()
    assert (link.password_failures, link.consumed_at) == (1, None)
    # Nothing of the bystander changed, and the link did not move to them.
    assert not Registration.objects.filter(user=other).exists()
    assert events("activation_link.password_failed").get().subject == person


def test_act01_five_wrong_passwords_revoke_the_link(
    enrolling, person, password, clock, django_capture_on_commit_callbacks
):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    phone, _ = open_link(token)
    for attempt in range(1, settings.ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS + 1):
        response = phone.post("/activate/", {"password": f"guess {attempt}"})
        expected = errors.LINK_TOO_MANY_PASSWORDS if attempt == 5 else errors.LINK_WRONG_PASSWORD
        assert expected in text(response), attempt
        assert_no_secret(response, registration)
    link = ActivationLink.objects.get()
    assert link.revoked_at is not None and link.password_failures == 5

    # Even the right password now gets nothing, in this browser or a new one.
    assert phone.post("/activate/", {"password": password}).status_code == 410
    _, landing = open_link(token)
    assert landing.status_code == 410
    assert events("activation_link.password_failed", subject=person).count() == 5
    assert details_of(events("activation_link.password_failed").order_by("-sequence").first()) == {
        "link": link.pk,
        "failures": 5,
        "revoked": True,
    }
    assert not events("activation_link.used").exists()


def test_act01_a_new_link_revokes_the_old_one(clock, enrolling, password, django_capture_on_commit_callbacks):
    client, registration = enrolling
    first = email_link(client, registration, django_capture_on_commit_callbacks)
    too_soon = client.post(f"/enroll/{registration.pk}/email-link/", follow=True)
    assert errors.LINK_RESEND_TOO_SOON in text(too_soon)
    assert ActivationLink.objects.count() == 1

    clock.tick(settings.ACTIVATION_LINK_RESEND_SECONDS + 1)
    second = email_link(client, registration, django_capture_on_commit_callbacks)
    assert first != second
    old, new = ActivationLink.objects.order_by("pk")
    assert old.revoked_at is not None and new.revoked_at is None

    _, landing = open_link(first)
    assert landing.status_code == 410
    phone, landing = open_link(second)
    assert landing.status_code == 200
    assert phone.post("/activate/", {"password": password}).status_code == 200


def test_act01_confirming_the_device_revokes_its_open_links(enrolling, django_capture_on_commit_callbacks):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    client.post(f"/enroll/{registration.pk}/activate/", {"code": fresh_code(registration.app_device)})
    _, landing = open_link(token)
    assert landing.status_code == 410
    assert ActivationLink.objects.get().revoked_at is not None


def test_act01_no_link_without_an_email_address(client, make_user, sign_in, mailoutbox):
    person = make_user("noemail", email=None)
    sign_in(client, person)
    registration = walk_to_activate(client)
    assert "We have no email address" in text(client.get(f"/enroll/{registration.pk}/activate/"))
    response = client.post(f"/enroll/{registration.pk}/email-link/", follow=True)
    assert errors.NO_EMAIL in text(response)
    assert not ActivationLink.objects.exists() and mailoutbox == []


# --- ACT-02 -------------------------------------------------------------------------------------------------

THIRD_PARTY = re.compile(r"""(?:src|href|action)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


def assert_landing_headers(response):
    # Only the token URL is no-referrer; a form under it would post with Origin: null and fail CSRF (ACT-02).
    assert response["Referrer-Policy"] == "same-origin"
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(None, 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    for name, sources in directives.items():
        for source in sources.split():
            assert source in ("'self'", "'none'"), f"{name} allows {source}"
    assert not THIRD_PARTY.search(text(response)), "a landing page loads or links something from another origin"


def test_otp09_the_emailed_link_keeps_its_token_out_of_every_request_line(
    enrolling, django_capture_on_commit_callbacks
):
    """Access logs record the request line; the part after "#" is never in it (OTP-09, ACT-02)."""
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    url = urlsplit(LINK_RE.search(mail.outbox[-1].body).group(1))
    assert (url.path, url.query, url.fragment) == ("/activate/", "", token)
    phone = Client()
    opening = phone.get(url.path)
    assert token not in text(opening) and LINK_SESSION_KEY not in phone.session
    moved = phone.post("/activate/", {"token": token})
    assert moved.status_code == 302 and moved["Location"] == "/activate/"
    assert phone.session[LINK_SESSION_KEY] == services.hash_token(token)
    assert token not in str(dict(phone.session))
    assert "Activate your authenticator app" in text(phone.get("/activate/"))


def test_act02_a_link_with_the_token_in_its_path_still_works_and_redirects_to_a_clean_url(
    enrolling, django_capture_on_commit_callbacks
):
    """Emails sent before links moved the token after "#" still work until they expire."""
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    phone = Client()
    response = phone.get(f"/activate/{token}/")
    assert response.status_code == 302
    assert response["Location"] == "/activate/"
    assert token not in response["Location"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    # The session holds only the token's hash, never the token that opens the link from any browser.
    assert phone.session[LINK_SESSION_KEY] == services.hash_token(token)
    assert token not in str(dict(phone.session))


def test_act02_clean_landing_pages_send_same_origin_referrer_and_strict_csp(
    enrolling, password, django_capture_on_commit_callbacks
):
    client, registration = enrolling
    token = email_link(client, registration, django_capture_on_commit_callbacks)
    phone, password_page = open_link(token)
    assert password_page.status_code == 200
    assert_landing_headers(password_page)
    wrong = phone.post("/activate/", {"password": "not it at all"})
    assert_landing_headers(wrong)
    ready = phone.post("/activate/", {"password": password})
    assert ready.status_code == 200
    assert_landing_headers(ready)
    assert "no-store" in ready["Cache-Control"]
    _, invalid = open_link(token)
    assert invalid.status_code == 410
    assert_landing_headers(invalid)


# --- ACT-03 -------------------------------------------------------------------------------------------------


@override_settings(SITE_URL="https://enroll.example.edu", ALLOWED_HOSTS=["evil.example", "testserver"])
def test_act03_link_is_built_from_site_url_not_host_header(enrolling, django_capture_on_commit_callbacks):
    client, registration = enrolling
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/enroll/{registration.pk}/email-link/", HTTP_HOST="evil.example")
    assert response.status_code == 302
    body = mail.outbox[-1].body
    url = LINK_RE.search(body).group(1)
    assert url.startswith("https://enroll.example.edu/activate/#")
    assert "evil.example" not in body
    assert "testserver" not in body


# --- ACT-04 -------------------------------------------------------------------------------------------------


def test_act04_qr_code_is_svg_from_our_server_and_never_cached(enrolling):
    client, registration = enrolling
    response = client.get(f"/enroll/{registration.pk}/qr.svg")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert "no-store" in response["Cache-Control"]
    assert b"<svg" in response.content
    assert b"otpauth" not in response.content  # the URI is drawn as modules, not carried as text
    assert b"http" not in response.content.replace(b"http://www.w3.org/", b"")


@override_settings(INSTITUTION_NAME="Northwind Medical School")
def test_act04_otpauth_uri_names_the_institution_and_the_person(person):
    registration = pending_app_registration(person)
    uri = selectors.otpauth_uri(registration)
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    issuer_prefix, account = unquote(parts.path.lstrip("/")).split(":", 1)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert issuer_prefix == query["issuer"][0] == "Northwind Medical School"
    assert account.strip() == person.username
    assert query["digits"] == ["6"]
    assert query["secret"] == [secret_b32(registration.app_device)]
    # Any standard app reading this URI makes the codes the server expects.
    assert pyotp.parse_uri(uri).now() == totp_for(registration.app_device).now()


def test_act04_qr_code_only_for_the_owner(enrolling, make_user, sign_in):
    _, registration = enrolling
    stranger = Client()
    assert stranger.get(f"/enroll/{registration.pk}/qr.svg").status_code == 302  # anonymous: to sign-in
    sign_in(stranger, make_user("stranger"))
    assert stranger.get(f"/enroll/{registration.pk}/qr.svg").status_code == 404


def test_act04_qr_code_gone_after_activation(enrolling):
    client, registration = enrolling
    client.post(f"/enroll/{registration.pk}/activate/", {"code": fresh_code(registration.app_device)})
    assert client.get(f"/enroll/{registration.pk}/qr.svg").status_code == 404


def test_act04_pending_device_is_never_offered_at_sign_in(client, person, password):
    registration = pending_app_registration(person, kind="mobile")
    assert list(devices_for_user(person, confirmed=True)) == []
    response = client.post("/account/sign-in/", {"username": person.username, "password": password})
    assert response["Location"] == "/enroll/"
    page = text(client.get("/enroll/"))
    assert f"/enroll/{registration.pk}/activate/" in page  # offered to finish the setup, not to sign in


def test_act04_pending_device_cannot_pass_the_second_factor(client, person, password, enroll):
    active = enroll(person)
    pending = pending_app_registration(person)
    response = client.post("/account/sign-in/", {"username": person.username, "password": password})
    assert response["Location"] == "/account/sign-in/second-factor/"
    page = text(client.get("/account/sign-in/second-factor/"))
    assert active.app_device.persistent_id in page
    assert pending.app_device.persistent_id not in page
    response = client.post(
        "/account/sign-in/second-factor/",
        {"device": pending.app_device.persistent_id, "code": fresh_code(pending.app_device)},
    )
    assert response.status_code == 200
    assert client.get("/devices/").status_code == 302  # still not signed in
