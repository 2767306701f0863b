import pytest


@pytest.fixture(autouse=True)
def _no_resend_pause(settings):
    settings.PHONE_RESEND_SECONDS = 0


def test_landline_enroll_and_sign_in_by_call(
    client, user, sign_in, recording_gateway, django_capture_on_commit_callbacks
):
    sign_in(client, user)
    r = client.post("/enroll/device-type/", {"kind": "landline"})
    assert r.status_code == 302, r
    r = client.post(r["Location"], {"phone_number": "617-555-0199", "number_is_correct": "on"})
    verify_url = r["Location"]
    assert verify_url.endswith("/verify-phone/")
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(verify_url, {"action": "send", "channel": "voice"})
    assert r.status_code == 302
    call = recording_gateway.last_to("+16175550199")
    assert call.channel == "voice"
    r = client.post(verify_url, {"action": "confirm", "code": call.code})
    assert r.status_code == 302 and r["Location"].endswith("/done/"), r.content[-3000:]
    client.post("/account/sign-out/")
    client.post("/account/sign-in/", {"username": "jdoe", "password": "correct horse battery staple 42"})
    from django_otp import devices_for_user

    device = next(devices_for_user(user))
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/account/sign-in/second-factor/", {"send": f"{device.persistent_id}|voice"}, follow=True)
    assert r.status_code == 200
    code = recording_gateway.last_to("+16175550199").code
    r = client.post("/account/sign-in/second-factor/", {"device": device.persistent_id, "code": code})
    assert r.status_code == 302, r.content[-2000:]
    client.post("/account/sign-out/")
    client.post("/account/sign-in/", {"username": "jdoe", "password": "correct horse battery staple 42"})
    r = client.post("/account/sign-in/second-factor/", {"device": device.persistent_id, "code": code})
    assert r.status_code == 200  # replayed code refused
