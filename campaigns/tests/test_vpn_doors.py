"""The policy for people not yet enrolled at both VPN doors: the unmodified ``duo_client`` against the live server
and Debian's ``radclient`` against the RADIUS server process, before and after a campaign's deadline; an enrolled
person is unaffected."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns import texts
from devices import services as device_services
from identity import errors
from identity import services as identity_services
from identity.models import AuditEvent
from testsupport import PASSWORD, CapturedStatements, details_of, fresh_code, post_password
from vpn import services
from vpn.tests.test_radius import app_device, pbkdf2_password, radclient

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def newcomer(make_user, approve):
    """Approved for the VPN, not enrolled."""
    person = make_user("newcomer", department="Physics")
    approve(person)
    pbkdf2_password(person)
    person.refresh_from_db()
    return person


@pytest.fixture
def before_deadline(make_campaign):
    return make_campaign(name="Physics 2027", days=10, cohort="departments", values=["Physics"])


@pytest.fixture
def after_deadline(make_campaign):
    now = timezone.now()
    return make_campaign(
        name="Physics 2027",
        starts_at=now - timedelta(days=20),
        days=None,
        deadline=now - timedelta(days=1),
        reminder_days=[3],
        cohort="departments",
        values=["Physics"],
    )


def test_before_the_deadline_duo_preauth_allows_with_the_date_and_address(duo, newcomer, before_deadline):
    answer = duo().preauth(username="newcomer", ipaddr="10.0.0.1")
    policy = campaign_services.effective_policy(newcomer)
    assert answer["result"] == "allow"
    assert (
        answer["status_msg"]
        == f"Set up two-step sign-in by {texts.deadline_text(policy)}: {texts.enrollment_address()}"
    )
    event = AuditEvent.objects.get(action="vpn.password_alone_allowed")
    assert event.subject == newcomer
    assert details_of(event) == {
        "integration": duo().ikey,
        "user_ip": "10.0.0.1",
        "door": "auth_api",
        "campaign": before_deadline.pk,
        "campaign_name": "Physics 2027",
        "deadline": before_deadline.deadline.isoformat(),
    }


def test_after_the_deadline_duo_preauth_sends_them_to_enroll(duo, newcomer, after_deadline):
    answer = duo().preauth(username="newcomer", ipaddr="10.0.0.1")
    assert answer["result"] == "enroll"
    assert answer["enroll_portal_url"] == texts.enrollment_address()
    assert answer["status_msg"].startswith("The deadline for two-step sign-in was ")
    assert texts.enrollment_address() in answer["status_msg"]
    event = AuditEvent.objects.get(action="vpn.preauth", subject=newcomer)
    assert (event.details["result"], event.details["campaign"]) == ("enroll", after_deadline.pk)
    assert not AuditEvent.objects.filter(action="vpn.password_alone_allowed").exists()


def test_the_vpn_processes_name_the_enrollment_address_with_their_own_urls(settings, newcomer, after_deadline):
    """The Auth API's and the RADIUS server's processes run config.urls_api, which serves no page of the site: the
    address they give is still the site's wizard."""
    settings.ROOT_URLCONF = "config.urls_api"
    policy = campaign_services.effective_policy(newcomer)
    assert texts.enrollment_address() == f"{settings.SITE_URL}/enroll/"
    assert texts.enrollment_address() in texts.enroll_first(policy)


def test_a_campaign_that_requires_enrollment_from_its_start_sends_them_to_enroll(duo, newcomer, make_campaign):
    make_campaign(days=10, policy_before_deadline=campaign_services.Policy.REQUIRE_ENROLLMENT)
    answer = duo().preauth(username="newcomer")
    assert answer["result"] == "enroll"
    assert answer["status_msg"] == f"Set up two-step sign-in to use the VPN: {texts.enrollment_address()}"


def test_a_campaign_opens_nothing_to_someone_without_vpn_access_or_outside_it(duo, make_user, newcomer, make_campaign):
    make_user("waiting", department="Physics")
    make_campaign(days=10, cohort="departments", values=["Physics"])
    assert duo().preauth(username="waiting", ipaddr="10.0.0.1")["result"] == "deny"
    newcomer.department = "History"
    newcomer.save()
    assert duo().preauth(username="newcomer", ipaddr="10.0.0.2")["result"] == "enroll"
    assert not AuditEvent.objects.filter(action="vpn.password_alone_allowed").exists()


def test_an_enrolled_person_in_the_campaign_is_unaffected(duo, vpn_person, make_campaign):
    make_campaign(days=10)
    answer = duo().preauth(username="vpnuser")
    assert answer["result"] == "auth"
    code = fresh_code(app_device(vpn_person))
    assert duo().auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "allow"
    assert not AuditEvent.objects.filter(action="vpn.password_alone_allowed").exists()


def test_an_enrolled_persons_checks_never_read_the_campaigns(integration, vpn_person, make_campaign):
    make_campaign(days=10)
    with CapturedStatements() as captured:
        assert services.preauth(integration, {"username": "vpnuser"}, client_ip="10.0.0.1")["result"] == "auth"
        code = fresh_code(app_device(vpn_person))
        answer = services.auth(
            integration, {"username": "vpnuser", "factor": "passcode", "passcode": code}, client_ip=None
        )
        assert answer["result"] == "allow"
    assert captured.captured_queries
    assert not [q["sql"] for q in captured.captured_queries if "campaigns_" in q["sql"]]


# --- RADIUS ---------------------------------------------------------------------------------------------------


def ask(port, secret, attributes) -> str:
    # The server hashes passwords with the production hasher: on a loaded machine that alone takes seconds.
    return radclient(port, secret, attributes, timeout=15)


def reply_message(out: str) -> str:
    return " ".join(re.findall(r'Reply-Message = "([^"]*)"', out))


def test_before_the_deadline_radius_accepts_the_password_alone_with_a_reply_message(
    radius_server, radius_client, newcomer, before_deadline
):
    out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": PASSWORD})
    assert "Received Access-Accept" in out, out
    policy = campaign_services.effective_policy(newcomer)
    assert (
        reply_message(out) == f"Set up two-step sign-in by {texts.deadline_text(policy)}: {texts.enrollment_address()}"
    )
    event = AuditEvent.objects.get(action="vpn.password_alone_allowed")
    assert details_of(event)["door"] == "radius"
    assert (details_of(event)["campaign"], details_of(event)["radius_client"]) == (before_deadline.pk, "ASA")
    # The password still has to be right.
    out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": "wrong"})
    assert "Received Access-Reject" in out
    assert AuditEvent.objects.filter(action="vpn.password_alone_allowed").count() == 1


def test_after_the_deadline_radius_rejects_saying_where_to_go(
    radius_server, radius_client, newcomer, after_deadline, radius_log
):
    out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": PASSWORD})
    assert "Received Access-Reject" in out, out + "".join(radius_log)
    assert reply_message(out).startswith("The deadline for two-step sign-in was ")
    assert reply_message(out).endswith(texts.enrollment_address())
    event = AuditEvent.objects.get(action="vpn.radius_rejected", subject=newcomer)
    assert event.details["campaign"] == after_deadline.pk
    assert not AuditEvent.objects.filter(action="vpn.password_alone_allowed").exists()


def test_radius_for_an_enrolled_person_in_the_campaign_is_unaffected(
    radius_server, radius_client, vpn_person, before_deadline
):
    pbkdf2_password(vpn_person)
    out = ask(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": PASSWORD})
    assert "Received Access-Challenge" in out
    code = fresh_code(app_device(vpn_person))
    out = ask(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"})
    assert "Received Access-Accept" in out
    assert reply_message(out) == "Welcome."
    assert not AuditEvent.objects.filter(action="vpn.password_alone_allowed").exists()


def test_radius_for_someone_outside_every_campaign_is_challenged_as_before(radius_server, radius_client, newcomer):
    out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": PASSWORD})
    assert "Received Access-Challenge" in out


@pytest.fixture
def code_only(settings):
    # Before the server starts: it reads the mode from this process's settings.
    settings.RADIUS_PASSWORD_MODE = "code_only"


def test_in_code_only_mode_the_vpns_password_check_is_the_password_alone(
    code_only, radius_server, radius_client, newcomer, before_deadline
):
    out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": "123456"})
    assert "Received Access-Accept" in out, out
    assert details_of(AuditEvent.objects.get(action="vpn.password_alone_allowed"))["door"] == "radius"
    # Someone unknown, with the same "code", is refused as ever.
    out = ask(radius_server, radius_client.secret, {"User-Name": "nobody", "User-Password": "123456"})
    assert "Received Access-Reject" in out
    assert reply_message(out) == services.RADIUS_DENIED


# --- The last device reported lost (BND-02) ---------------------------------------------------------------------


@pytest.fixture
def lost_last_device(newcomer, enroll, before_deadline):
    """The newcomer's only phone, reported lost: nothing left to sign in with, in a campaign that lets people who
    have not enrolled in with their password alone."""
    registration = enroll(newcomer)
    device_services.report_lost(registration, actor=newcomer, verified_at=timezone.now())
    newcomer.refresh_from_db()
    assert newcomer.lost_last_factor_at is not None
    return newcomer


def test_bnd_02_after_the_last_device_is_reported_lost_neither_door_takes_the_password_alone(
    duo, radius_server, radius_client, lost_last_device, client, staff, settings
):
    held = texts.held_at_the_vpn()
    answer = duo().preauth(username="newcomer", ipaddr="10.0.0.1")
    assert (answer["result"], answer["status_msg"]) == ("deny", held)
    # The password alone, and the password with something typed as a code.
    for password in (PASSWORD, f"{PASSWORD},123456"):
        out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": password})
        assert "Received Access-Reject" in out, out
        assert reply_message(out) == held
    assert not AuditEvent.objects.filter(action="vpn.password_alone_allowed").exists()
    assert AuditEvent.objects.get(action="vpn.preauth", subject=lost_last_device).details["reason"] == (
        "last device reported lost"
    )
    rejected = AuditEvent.objects.filter(action="vpn.radius_rejected", subject=lost_last_device)
    assert {e.details["reason"] for e in rejected} == {"last device reported lost"}
    # The web agrees: the password alone is refused there too (the password is hashed as the server process hashes
    # it, which this process's fast test hasher does not read).
    settings.PASSWORD_HASHERS = [*settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    page = post_password(client, lost_last_device).content.decode()
    assert errors.LAST_FACTOR_LOST.format(help_desk=settings.HELP_DESK_CONTACT) in page.replace("&#x27;", "'")
    pbkdf2_password(lost_last_device)  # a right password is stored again with the fast hasher

    # The help desk's audited unlock lifts the hold: the campaign's policy applies again.
    identity_services.unlock_user(lost_last_device, actor=staff, reason="identity checked")
    assert duo().preauth(username="newcomer", ipaddr="10.0.0.1")["result"] == "allow"
    out = ask(radius_server, radius_client.secret, {"User-Name": "newcomer", "User-Password": PASSWORD})
    assert "Received Access-Accept" in out, out
