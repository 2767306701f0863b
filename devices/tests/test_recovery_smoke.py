import re

from django.core import mail
from django.core.management import call_command

from conftest import PASSWORD, fresh_code, totp_for
from devices.models import Registration


def test_phone_upgrade_backup_codes_and_recovery(
    client, make_user, enroll, sign_in, django_capture_on_commit_callbacks, settings
):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    person = make_user("upgrader")
    registration = enroll(person)
    old = registration.app_device
    sign_in(client, person)
    r = client.post(f"/devices/{registration.pk}/new-phone/", {"action": "start"})
    assert r.status_code == 302
    registration.refresh_from_db()
    assert registration.status == "reactivating"
    new = registration.pending_app_device
    page = client.get(f"/devices/{registration.pk}/new-phone/")
    assert page.status_code == 200 and client.get(f"/enroll/{registration.pk}/qr.svg").status_code == 200
    # the old phone's code is refused for the new secret
    r = client.post(f"/devices/{registration.pk}/new-phone/", {"action": "confirm", "code": totp_for(old).now()})
    assert r.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/devices/{registration.pk}/new-phone/", {"action": "confirm", "code": fresh_code(new)})
    assert r.status_code == 302, r.content[-1500:]
    registration.refresh_from_db()
    old.refresh_from_db()
    assert registration.status == "active" and registration.app_device_id == new.pk
    assert not old.confirmed and old.encrypted_secret == ""
    assert any("moved to a new phone" in m.subject for m in mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/devices/backup-codes/")
    codes = re.findall(r"<code>([a-z0-9-]{19})</code>", r.content.decode())
    assert len(codes) == 10
    client.post("/account/sign-out/")
    client.post("/account/sign-in/", {"username": "upgrader", "password": PASSWORD})
    from devices.models import BackupCodeDevice

    backup = BackupCodeDevice.objects.get(user=person, confirmed=True)
    r = client.post("/account/sign-in/second-factor/", {"device": backup.persistent_id, "code": codes[0].upper()})
    assert r.status_code == 302
    client.post("/account/sign-out/")
    client.post("/account/sign-in/", {"username": "upgrader", "password": PASSWORD})
    r = client.post("/account/sign-in/second-factor/", {"device": backup.persistent_id, "code": codes[0]})
    assert r.status_code == 200  # used once

    staff = make_user("helper", is_staff=True)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "send_reactivation_link",
            "upgrader",
            "--by",
            "helper",
            "--method",
            "photo_id_in_person",
            "--reference",
            "T-1",
        )
    url = re.search(r"(http\S+/activate/\S+)", mail.outbox[-1].body).group(1)
    anonymous = client.__class__()
    r = anonymous.get(url.split("8000", 1)[1])
    r = anonymous.post("/activate/", {"password": PASSWORD})
    assert r.status_code == 302 and r["Location"].endswith("/new-phone/"), r
    registration.refresh_from_db()
    assert registration.status == "reactivating"
    third = registration.pending_app_device
    assert anonymous.get("/devices/").status_code == 302  # only the reactivation is open
    r = anonymous.post(f"/devices/{registration.pk}/new-phone/", {"action": "confirm", "code": totp_for(third).now()})
    assert r.status_code == 302
    assert anonymous.get("/devices/").status_code == 200
    assert Registration.objects.get(pk=registration.pk).app_device_id == third.pk
    assert staff
