"""The words a person reads: device names, the step counter, the sign-in choice, lost-phone pages."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from devices import services
from testsupport import fresh_code, post_code, post_password, wrong_code

from .fakes import RecordingGateway
from .helpers import add_app_device, events, text, walk_to_activate


@pytest.fixture
def wizard_client(client, person, sign_in):
    sign_in(client, person)
    return client


def progress(response) -> str:
    return re.sub(r"<[^>]+>", "", re.search(r'<p class="progress">(.*?)</p>', text(response)).group(1))


def activate(client, registration):
    response = client.post(f"/enroll/{registration.pk}/activate/", {"code": fresh_code(registration.app_device)})
    assert response["Location"] == f"/enroll/{registration.pk}/done/", text(response)[:2000]
    return response


# --- The tablet's platform page ---------------------------------------------------------------


def test_tablet_platform_page_speaks_of_tablets(wizard_client):
    response = wizard_client.post("/enroll/device-type/", {"kind": "tablet"})
    page = text(wizard_client.get(response["Location"]))
    assert "What kind of tablet is it?" in page
    choices = re.findall(r'<label for="id_platform_\d">(.*?)</label>', page)
    assert choices == ["iPad", "Android tablet", "Other"]
    words = re.sub(r"<[^>]+>", " ", page.split("<main", 1)[1].split("</main>")[0])
    assert "phone" not in words.lower()


def test_tablet_platform_refusal_speaks_of_tablets(wizard_client):
    response = wizard_client.post("/enroll/device-type/", {"kind": "tablet"})
    for bad in ({"platform": "windows-phone"}, {}):
        refused = wizard_client.post(response["Location"], bad)
        assert refused.status_code == 200
        assert "Choose iPad, Android tablet or Other." in text(refused)


def test_mobile_platform_page_speaks_of_phones(wizard_client):
    response = wizard_client.post("/enroll/device-type/", {"kind": "mobile"})
    response = wizard_client.post(response["Location"], {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    page = text(wizard_client.get(response["Location"]))
    assert "What kind of phone is it?" in page
    assert re.findall(r'<label for="id_platform_\d">(.*?)</label>', page) == ["iPhone", "Android phone", "Other"]


# --- Names: a distinct default, asked for at the end ------------------------------------------------


def test_three_android_tablets_get_three_names(person, wizard_client):
    names = []
    for _ in range(3):
        registration = walk_to_activate(wizard_client, kind="tablet", platform="android")
        activate(wizard_client, registration)
        registration.refresh_from_db()
        names.append(registration.label)
    assert names == ["Android tablet", "Android tablet 2", "Android tablet 3"]
    page = text(wizard_client.get("/devices/"))
    rows = re.findall(r'<th scope="row">(.*?)</th>', page)
    assert sorted(rows) == names


def test_an_ipad_is_called_an_ipad(person, wizard_client):
    registration = walk_to_activate(wizard_client, kind="tablet", platform="iphone")
    activate(wizard_client, registration)
    registration.refresh_from_db()
    assert registration.label == "iPad"
    assert "Tablet, iPad" in text(wizard_client.get("/devices/"))


def test_removed_device_frees_its_name(person):
    first = add_app_device(person, kind="tablet", platform="android")
    add_app_device(person, kind="tablet", platform="iphone")  # still signs in, so the loss holds no setup
    services.report_lost(first, actor=person, verified_at=timezone.now())
    second = add_app_device(person, kind="tablet", platform="android")
    assert second.label == "Android tablet"


def test_end_of_wizard_asks_for_a_name_with_the_default_filled_in(person, client, sign_in):
    add_app_device(person, kind="tablet", platform="android")
    sign_in(client, person)
    wizard_client = client
    registration = walk_to_activate(wizard_client, kind="tablet", platform="android")
    activate(wizard_client, registration)
    page = text(wizard_client.get(f"/enroll/{registration.pk}/done/"))
    assert "Name this device" in page
    assert re.search(r'<input[^>]*name="label"[^>]*value="Android tablet 2"', page)

    response = wizard_client.post(f"/enroll/{registration.pk}/done/", {"label": "  Kitchen tablet "})
    assert response["Location"] == "/devices/"
    registration.refresh_from_db()
    assert registration.label == "Kitchen tablet"
    assert events("device.renamed", details__to="Kitchen tablet").count() == 1
    assert "Kitchen tablet" in text(wizard_client.get("/devices/"))


def test_end_of_wizard_refuses_an_empty_name_and_keeps_the_default(person, wizard_client):
    registration = walk_to_activate(wizard_client, kind="tablet", platform="android")
    activate(wizard_client, registration)
    response = wizard_client.post(f"/enroll/{registration.pk}/done/", {"label": "   "})
    assert response.status_code == 200
    assert "Give the device a name of 1 to 64 characters." in text(response)
    registration.refresh_from_db()
    assert registration.label == "Android tablet"
    assert not events("device.renamed").exists()


@pytest.mark.parametrize("page", ["remove", "rename", "lost"])
def test_pages_about_one_device_say_which_one(person, sign_in, client, page):
    add_app_device(person, kind="tablet", platform="android")
    phone = add_app_device(person, kind="mobile", platform="android", number="+16175550167")
    sign_in(client, person)
    body = text(client.get(f"/devices/{phone.pk}/{page}/"))
    added = timezone.localtime(phone.activated_at).strftime("%-d %b %Y")
    assert f"Mobile phone (Android phone), number {phone.masked_phone_number}, added {added}." in body
    assert phone.masked_phone_number.endswith("67") and "555" not in phone.masked_phone_number


# --- The step counter ---------------------------------------------------------------------------


def test_step_counter_counts_the_pages_a_tablet_shows(wizard_client):
    assert progress(wizard_client.get("/enroll/device-type/")) == "Step 1 of 5 · Device type"  # a mobile, preselected
    response = wizard_client.post("/enroll/device-type/", {"kind": "tablet"})
    seen = [progress(wizard_client.get(response["Location"]))]
    response = wizard_client.post(response["Location"], {"platform": "android"})
    seen.append(progress(wizard_client.get(response["Location"])))
    response = wizard_client.post(response["Location"])
    seen.append(progress(wizard_client.get(response["Location"])))
    assert seen == ["Step 2 of 4 · Tablet", "Step 3 of 4 · Tablet", "Step 4 of 4 · Tablet"]


def test_step_counter_has_no_gap_when_the_number_check_is_skipped(wizard_client):
    response = wizard_client.post("/enroll/device-type/", {"kind": "mobile"})
    seen = [progress(wizard_client.get(response["Location"]))]
    response = wizard_client.post(response["Location"], {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    assert response["Location"].endswith("/platform/")
    seen.append(progress(wizard_client.get(response["Location"])))
    response = wizard_client.post(response["Location"], {"platform": "android"})
    seen.append(progress(wizard_client.get(response["Location"])))
    response = wizard_client.post(response["Location"])
    seen.append(progress(wizard_client.get(response["Location"])))
    assert [s.split(" · ")[0] for s in seen] == ["Step 2 of 5", "Step 3 of 5", "Step 4 of 5", "Step 5 of 5"]


def test_step_counter_counts_the_number_check_when_there_is_one(wizard_client, make_user, enroll):
    enroll(make_user("other"), number="+16175550123")  # the number is on record: the check applies
    response = wizard_client.post("/enroll/device-type/", {"kind": "mobile"})
    response = wizard_client.post(response["Location"], {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    assert response["Location"].endswith("/verify-phone/")
    assert progress(wizard_client.get(response["Location"])) == "Step 3 of 6 · Mobile phone"


def test_step_counter_for_a_landline(wizard_client):
    response = wizard_client.post("/enroll/device-type/", {"kind": "landline"})
    assert progress(wizard_client.get(response["Location"])) == "Step 2 of 3 · Landline"


# --- Plain words on the app pages ------------------------------------------------------------------


def test_install_and_activate_pages_use_plain_words(wizard_client):
    response = wizard_client.post("/enroll/device-type/", {"kind": "tablet"})
    response = wizard_client.post(response["Location"], {"platform": "android"})
    install = text(wizard_client.get(response["Location"]))
    for name in ("Google Authenticator", "Microsoft Authenticator", "Duo Mobile"):
        assert name in install
    assert "standard QR codes" not in install and "time-based" not in install
    assert "no internet or phone signal is needed" in install
    response = wizard_client.post(response["Location"])
    page = text(wizard_client.get(response["Location"]))
    assert "internet access" not in page
    assert "Cannot scan?" not in page
    assert "Can't scan the code?" in page and "Enter a setup key" in page


# --- Sign-in: devices as the person named them, and only what they have ------------------------------


def test_sign_in_names_devices_as_named_and_hints_only_the_app(person, client, password):
    tablet = add_app_device(person, kind="tablet", platform="android")
    services.rename_registration(tablet, label="Kitchen tablet", actor=person)
    post_password(client, person, password)
    page = text(client.get("/account/sign-in/second-factor/"))
    assert re.findall(r'<label for="id_device_\d">(.*?)</label>', page) == ["Kitchen tablet"]
    assert "From your authenticator app." in page
    assert "text or call" not in page


def test_sign_in_names_texts_and_backup_codes_when_the_person_has_them(
    person, client, password, recording_gateway, django_capture_on_commit_callbacks
):
    phone = add_app_device(person, kind="mobile", platform="iphone", number="+16175550167")
    services.rename_registration(phone, label="Work phone", actor=person)
    with django_capture_on_commit_callbacks(execute=True):
        services.send_phone_code(phone, channel="sms", actor=person, verified_at=timezone.now())
    services.confirm_phone_code(
        phone, code=RecordingGateway.last_to("+16175550167").code, actor=person, verified_at=timezone.now()
    )
    services.generate_backup_codes(person, actor=person, verified_at=timezone.now())
    post_password(client, person, password)
    page = text(client.get("/account/sign-in/second-factor/"))
    # The phone's two factors are named both: which is the app, which the texts.
    assert re.findall(r'<label for="id_device_\d">(.*?)</label>', page) == [
        "Work phone: authenticator app",
        f"Work phone: texts or calls to {phone.masked_phone_number}",
        "Backup codes",
    ]
    assert "From your authenticator app, the text or call you asked for or one of your backup codes." in page


def test_two_devices_with_one_name_are_told_apart(person, client, password):
    first = add_app_device(person, kind="tablet", platform="android")
    second = add_app_device(person, kind="tablet", platform="android")
    services.rename_registration(second, label=first.label, actor=person)
    type(first.app_device).objects.filter(pk=first.app_device_id).update(created_at=timezone.now() - timedelta(days=3))
    post_password(client, person, password)
    page = text(client.get("/account/sign-in/second-factor/"))
    labels = re.findall(r'<label for="id_device_\d">(.*?)</label>', page)
    assert len(set(labels)) == 2 and all(label.startswith("Android tablet (added ") for label in labels), labels


# --- Around a lost phone ------------------------------------------------------------------------------


def test_code_page_after_the_last_device_was_lost_says_what_to_do(person, client, password, settings):
    settings.HELP_DESK_CONTACT = "the IT help desk at 555-0100"
    tablet = add_app_device(person, kind="tablet", platform="android")
    post_password(client, person, password)
    services.report_lost(tablet, actor=person, verified_at=timezone.now())
    page = text(client.get("/account/sign-in/second-factor/"))
    assert "Ask for a code below" not in page
    assert "You have no device left to sign in with" in page
    assert "the IT help desk at 555-0100" in page


def test_page_after_it_is_lost_warns_and_offers_the_new_setup(person, client, sign_in):
    tablet = add_app_device(person, kind="tablet", platform="android")
    sign_in(client, person)
    response = client.post(f"/devices/{tablet.pk}/lost/")
    page = text(client.get(response["Location"]))
    assert "Set up your new device now" in page
    assert "a password alone will not open the setup again" in page
    # One button starts the setup: no "Start setup" beside "Set up my new device now" doing the same.
    assert re.findall(r'<a class="button[^"]*" href="([^"]+)">([^<]+)</a>', page) == [
        ("/enroll/device-type/", "Set up my new device now")
    ]


def test_report_lost_page_points_to_the_new_phone_choice(person, client, sign_in):
    add_app_device(person, kind="tablet", platform="android")
    phone = add_app_device(person, kind="mobile", platform="android")
    sign_in(client, person)
    page = text(client.get(f"/devices/{phone.pk}/lost/"))
    assert "My old phone is lost or stolen" in page
    assert f'href="/devices/{phone.pk}/new-phone/"' in page


def test_old_phone_code_after_a_move_hears_that_the_app_was_replaced(person, client, password, clock):
    phone = add_app_device(person, kind="mobile", platform="android")
    old = phone.app_device
    old_code_device = type(old).objects.get(pk=old.pk)
    secret = old_code_device.secret_bytes()
    clock.tick(45)  # the new phone comes later than the first activation
    services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    phone.refresh_from_db()
    services.confirm_reactivation(
        phone, code=fresh_code(phone.pending_app_device), actor=person, verified_at=timezone.now()
    )
    phone.refresh_from_db()
    clock.tick(60)
    post_password(client, person, password)
    from devices import totp

    old_code = totp.code_at(secret, totp.current_step())
    response = post_code(client, phone.app_device, old_code)
    assert "this phone's app was replaced" in text(response)
    assert "That code is not right" in text(response)


def test_a_wrong_code_on_a_first_app_gets_the_plain_message(person, client, password):
    phone = add_app_device(person, kind="mobile", platform="android")
    post_password(client, person, password)
    response = post_code(client, phone.app_device, wrong_code(phone.app_device))
    assert "was replaced" not in text(response)


# --- Times in emails ---------------------------------------------------------------------------------


def test_emails_give_times_in_the_institution_time_zone(person, settings, django_capture_on_commit_callbacks):
    from zoneinfo import ZoneInfo

    from django.core import mail
    from django.utils.dateformat import format as date_format

    from devices.models import ActivationLink

    from .helpers import pending_app_registration

    settings.TIME_ZONE = "America/New_York"
    new_york = ZoneInfo("America/New_York")
    # Whatever zone happens to be active when an email is written, it speaks the institution's.
    with timezone.override("UTC"), django_capture_on_commit_callbacks(execute=True):
        registration = pending_app_registration(person, kind="tablet")
        services.send_activation_link(registration, actor=person)
        add_app_device(person, kind="tablet", platform="iphone")
    link = ActivationLink.objects.get(registration=registration)
    expires = date_format(timezone.localtime(link.expires_at, new_york), "j M Y, H:i T")
    assert expires.endswith(("EST", "EDT"))
    link_email = next(m for m in mail.outbox if "/activate/" in m.body)
    assert f"expires {expires}." in link_email.body
    notice = next(m for m in mail.outbox if m.body.count("When: "))
    when = re.search(r"When: (.*)", notice.body).group(1)
    assert when.endswith(("EST", "EDT")) and "UTC" not in notice.body and "UTC" not in link_email.body
