"""The staff admin: second factor required (SES-09), roles (AC-03), read-only audit log (AC-08), no secrets (OTP-09)."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from devices.models import AuthenticatorAppDevice, Registration
from identity import audit
from identity.admin_site import site
from identity.models import AuditEvent
from testsupport import PASSWORD

pytestmark = pytest.mark.django_db

SIGN_IN = "/account/sign-in/"


def _final_location(client, url: str) -> str:
    response = client.get(url, follow=True)
    assert response.redirect_chain, f"{url} did not redirect"
    return response.redirect_chain[-1][0]


# --- SES-09 ---------------------------------------------------------------------------------------------------


def test_ses09_admin_refuses_staff_signed_in_with_password_only(client, make_user):
    # A staff member with no device is signed in after the password step (to enroll), but never verified.
    staff = make_user("staff2", is_staff=True, is_superuser=True)
    response = client.post(SIGN_IN, {"username": staff.username, "password": PASSWORD})
    assert response["Location"] == "/enroll/"

    for url in ("/admin/", "/admin/identity/auditevent/", "/admin/identity/user/"):
        assert _final_location(client, url) == f"{SIGN_IN}?next={url}"


def test_ses09_admin_refuses_staff_between_password_and_second_factor(client, staff_member):
    response = client.post(SIGN_IN, {"username": staff_member.username, "password": PASSWORD})
    assert response["Location"] == "/account/sign-in/second-factor/"

    assert _final_location(client, "/admin/").startswith(SIGN_IN)
    assert client.get("/admin/identity/auditevent/").status_code == 302


def test_ses09_admin_refuses_session_not_verified_with_second_factor(client, staff_member):
    client.force_login(staff_member)  # an authenticated session that never passed a second factor

    assert _final_location(client, "/admin/").startswith(SIGN_IN)


def test_ses09_admin_lets_verified_staff_in(client, staff_member, sign_in):
    sign_in(client, staff_member)

    response = client.get("/admin/")

    assert response.status_code == 200
    assert b"People, devices and audit" in response.content


def test_ses09_admin_lets_verified_auditor_in(client, auditor, sign_in):
    sign_in(client, auditor)

    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/identity/auditevent/").status_code == 200


def test_ses09_verified_person_who_is_not_staff_is_refused(client, enrolled_user, sign_in):
    sign_in(client, enrolled_user)

    response = client.get("/admin/", follow=True)

    # Refused outright: sending a fully signed-in person back to sign in would loop.
    assert response.status_code == 403
    assert client.get("/admin/identity/user/", follow=True).status_code == 403


def test_ses09_admin_login_page_is_our_sign_in(client):
    """The admin's own password-only login form is never served."""
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{SIGN_IN}?next=/admin/"


# --- AC-03: roles from the data migration ---------------------------------------------------------------------


def _codenames(group_name: str) -> set[str]:
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def test_ac03_roles_exist():
    assert set(Group.objects.filter(name__in=["Help desk", "Auditor"]).values_list("name", flat=True)) == {
        "Help desk",
        "Auditor",
    }


def test_ac03_auditor_has_only_view_permissions():
    codenames = _codenames("Auditor")
    assert codenames
    assert all(codename.startswith("view_") for codename in codenames), codenames
    assert "view_auditevent" in codenames


def test_ac03_help_desk_cannot_add_or_delete_anything():
    codenames = _codenames("Help desk")
    assert "view_auditevent" in codenames
    assert not [c for c in codenames if c.startswith(("add_", "delete_"))], codenames


def test_ac03_no_role_may_change_the_audit_log():
    held = Permission.objects.filter(group__name__in=["Help desk", "Auditor"], codename__endswith="_auditevent")
    assert set(held.values_list("codename", flat=True)) == {"view_auditevent"}


def test_ac03_auditor_cannot_change_a_person(client, auditor, sign_in, make_user):
    person = make_user("person9", department="Radiology")
    sign_in(client, auditor)
    url = reverse("admin:identity_user_change", args=[person.pk])

    assert client.get(url).status_code == 200  # view permission: a read-only page
    response = client.post(url, {"username": person.username, "department": "Changed"})

    assert response.status_code == 403
    person.refresh_from_db()
    assert person.department == "Radiology"


# --- The audit log in the admin is read-only, even for a superuser ------------------------------------------


@pytest.fixture
def verified_superuser_client(client, superuser, sign_in):
    sign_in(client, superuser)
    return client


def test_ac08_superuser_cannot_add_audit_events(verified_superuser_client):
    before = AuditEvent.objects.count()
    url = reverse("admin:identity_auditevent_add")

    assert verified_superuser_client.get(url).status_code == 403
    assert verified_superuser_client.post(url, {"action": "forged"}).status_code == 403
    assert AuditEvent.objects.count() == before


def test_ac08_superuser_cannot_change_an_audit_event(verified_superuser_client, superuser):
    event = audit.record("test.event", subject=superuser, details={"n": 1})
    url = reverse("admin:identity_auditevent_change", args=[event.pk])

    page = verified_superuser_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # shown read-only, with nothing to submit
    response = verified_superuser_client.post(url, {"action": "forged", "details": "{}"})

    assert response.status_code == 403
    event.refresh_from_db()
    assert (event.action, event.details) == ("test.event", {"n": 1})
    assert audit.verify_chain() is None


def test_ac08_superuser_cannot_delete_an_audit_event(verified_superuser_client, superuser):
    event = audit.record("test.event", subject=superuser)
    url = reverse("admin:identity_auditevent_delete", args=[event.pk])

    assert verified_superuser_client.get(url).status_code == 403
    assert verified_superuser_client.post(url, {"post": "yes"}).status_code == 403
    # Nor through the change list's bulk action.
    changelist = reverse("admin:identity_auditevent_changelist")
    verified_superuser_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert audit.verify_chain() is None


# --- OTP-09 / BND-09: the admin never shows or reaches a factor secret -----------------------------------------


def test_otp09_raw_device_admins_not_reachable(verified_superuser_client):
    assert not site.is_registered(AuthenticatorAppDevice)
    assert site.is_registered(Registration)  # what staff see of a device instead
    for url in (
        "/admin/devices/authenticatorappdevice/",
        "/admin/otp_totp/totpdevice/",
        "/admin/otp_static/staticdevice/",
    ):
        assert verified_superuser_client.get(url).status_code == 404


def test_otp09_registration_admin_shows_no_secret(verified_superuser_client, superuser):
    import base64

    registration = superuser.registrations.get()
    device = registration.app_device
    secret_b32 = base64.b32encode(device.secret_bytes()).decode()
    url = reverse("admin:devices_registration_change", args=[registration.pk])

    page = verified_superuser_client.get(url)
    listing = verified_superuser_client.get(reverse("admin:devices_registration_changelist"))

    assert page.status_code == listing.status_code == 200
    for response in (page, listing):
        content = response.content.decode()
        assert secret_b32 not in content
        assert secret_b32.rstrip("=").lower() not in content.lower()
        assert device.encrypted_secret not in content
        assert "otpauth://" not in content
        assert "+16175550123" not in content  # the number is masked


# --- A list filters only on what it declares: no field's value read a character at a time -----------------------


def _registered():
    from django.apps import apps

    registered = [(model, site.get_model_admin(model)) for model in apps.get_models() if site.is_registered(model)]
    assert len(registered) >= 12  # every admin of helpdesk/admin/, the VPN's and the campaigns'
    return registered


def _list_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def test_ac13_lists_refuse_a_lookup_on_a_secret_field(client, staff_member, auditor, superuser, sign_in):
    from devices.models import OutboundMessage
    from identity.models import User

    for person in (staff_member, auditor):
        client.logout()
        sign_in(client, person)
        for model, field in ((User, "password"), (Registration, "phone_number"), (OutboundMessage, "recipient")):
            url = f"{_list_url(model)}?{field}__startswith=%2B"
            assert client.get(url).status_code == 400, url
        # The whole hash as the prefix: no row is listed either way, the request itself is refused.
        hash_ = User.objects.get(pk=superuser.pk).password
        assert client.get(_list_url(User), {"password__startswith": hash_}).status_code == 400


def test_ac13_every_list_on_the_staff_site_refuses_a_lookup_on_any_undeclared_field(verified_superuser_client):
    for model, model_admin in _registered():
        names, filtered = model_admin.allowed_lookups(None)
        for field in model._meta.concrete_fields:
            if field.name in filtered or field.attname in filtered or field.name in names:
                continue
            for lookup in (field.attname, f"{field.name}__startswith", f"{field.name}__exact"):
                url = f"{_list_url(model)}?{lookup}=1"
                assert verified_superuser_client.get(url).status_code == 400, url


def test_every_list_on_the_staff_site_takes_its_declared_filters(verified_superuser_client, superuser):
    from identity.models import User

    checks = {
        User: "locked=yes&vpn_access__exact=none&is_staff__exact=1&department=Radiology&enrolled=no",
        AuditEvent: f"action=account.unlocked&subject={superuser.pk}&created_at__year=2026&created_at__month=1",
        Registration: "kind=passkey&status__exact=active",
    }
    for model, query in checks.items():
        assert verified_superuser_client.get(f"{_list_url(model)}?{query}").status_code == 200, model


def test_ac13_every_model_admin_of_the_staff_site_has_the_allow_list():
    from django.contrib import admin as django_admin
    from django.core.exceptions import ImproperlyConfigured

    from identity.admin_site import StaffAdminSite, StaffModelAdmin

    assert all(isinstance(model_admin, StaffModelAdmin) for _, model_admin in _registered())
    with pytest.raises(ImproperlyConfigured):
        StaffAdminSite(name="other").register(AuditEvent, django_admin.ModelAdmin)


def test_person_page_links_to_that_persons_events_only(desk_client, caller, make_user):
    import re

    other = make_user("caller12")
    audit.record("account.unlocked", subject=other, details={"reason": "for caller12 only"})
    audit.record("account.unlocked", subject=caller, details={"reason": "for caller1"})

    page = desk_client.get(reverse("admin:identity_user_change", args=[caller.pk])).content.decode()
    link = re.search(r'href="([^"]*)">All events of this person<', page).group(1)
    events = desk_client.get(link.replace("&amp;", "&")).content.decode()

    assert "for caller1" in events or "caller1" in events
    assert "caller12" not in events
