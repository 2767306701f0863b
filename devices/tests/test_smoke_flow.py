import re

from testsupport import fresh_code


def test_wizard_then_sign_in(client, user, sign_in):
    sign_in(client, user)
    r = client.post("/enroll/device-type/", {"kind": "mobile"})
    assert r.status_code == 302
    phone_url = r["Location"]
    r = client.post(phone_url, {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    assert r.status_code == 302, r.content.decode()[r.content.decode().find("<main") :][:1500]
    r = client.post(r["Location"], {"platform": "android"})
    install_url = r["Location"]
    assert client.get(install_url).status_code == 200
    r = client.post(install_url)
    activate_url = r["Location"]
    page = client.get(activate_url)
    assert page.status_code == 200
    reg = user.registrations.get()
    qr = client.get(f"/enroll/{reg.pk}/qr.svg")
    assert qr["Cache-Control"].startswith("no-store")
    r = client.post(activate_url, {"code": fresh_code(reg.app_device)})
    assert r.status_code == 302 and r["Location"].endswith("/done/")
    assert client.get(r["Location"]).status_code == 200
    reg.refresh_from_db()
    assert reg.status == "active"
    assert re.search(rb"\*\*23", client.get("/devices/").content)
    client.post("/account/sign-out/")
    sign_in(client, user)
    assert client.get("/devices/").status_code == 200
