"""Who gets which admin page (AC-03, SES-09): anonymous, a person with no staff role, Help desk, Auditor, superuser.

Every URL of the staff admin that this project adds or relies on, and every desk action.
"""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devices.models import WebAuthnChallenge
from helpdesk import runner, services
from helpdesk.actions import ACTIONS
from identity.models import User
from identity.services import request_vpn_access

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

ROLES = ("anonymous", "person", "help_desk", "auditor", "superuser")
SERVED, REFUSED, SIGN_IN = "served", "refused", "sign-in"


@pytest.fixture
def world(make_user, enroll, staff_member, auditor, superuser, caller, sign_in):
    enroll(caller, kind="tablet", platform="android")
    request_vpn_access(caller, reason="remote work")
    # A setup hold, so that every action applies to the caller at once (unlock included).
    User.objects.filter(pk=caller.pk).update(lost_last_factor_at=timezone.now())
    plain = make_user("plain1")
    enroll(plain)
    case = services.open_case(caller, actor=staff_member, category="other")
    check = services.record_identity_check(caller, actor=staff_member, method="photo_id_in_person", reference="I-1")
    services.record_identity_check(caller, actor=superuser, method="photo_id_in_person", reference="I-2")
    other_agent = make_user("staff3", is_staff=True)
    request = runner.perform(
        "sign_out_everywhere",
        other_agent,
        actor=staff_member,
        identity_check=_check(other_agent, staff_member),
        params={"reason": "r"},
    ).request
    clients = {"anonymous": Client()}
    for role, who in (("person", plain), ("help_desk", staff_member), ("auditor", auditor), ("superuser", superuser)):
        clients[role] = Client()
        sign_in(clients[role], who)
    return {"clients": clients, "caller": caller, "case": case, "check": check, "request": request}


def _check(person, agent):
    return services.record_identity_check(person, actor=agent, method="photo_id_in_person", reference="I-3")


def _outcome(response, client=None) -> str:
    if response.status_code == 302 and response["Location"].startswith("/admin/login/") and client is not None:
        # The admin's login page hands over to our sign-in, or refuses a verified person who is not staff.
        response = client.get(response["Location"])
    if response.status_code == 200:
        return SERVED
    if response.status_code == 403:
        return REFUSED
    if response.status_code == 302 and response["Location"].startswith("/account/sign-in/"):
        return SIGN_IN
    return f"{response.status_code} {response.get('Location', '')}"


VIEWING = {"anonymous": SIGN_IN, "person": REFUSED, "help_desk": SERVED, "auditor": SERVED, "superuser": SERVED}
DESK_ONLY = {"anonymous": SIGN_IN, "person": REFUSED, "help_desk": SERVED, "auditor": REFUSED, "superuser": SERVED}

PAGES = [
    ("admin:index", lambda w: [], VIEWING),
    ("admin:identity_user_changelist", lambda w: [], VIEWING),
    ("admin:identity_user_change", lambda w: [w["caller"].pk], VIEWING),
    ("admin:identity_auditevent_changelist", lambda w: [], VIEWING),
    ("admin:devices_registration_changelist", lambda w: [], VIEWING),
    ("admin:devices_outboundmessage_changelist", lambda w: [], VIEWING),
    ("admin:helpdesk_identitycheck_changelist", lambda w: [], VIEWING),
    ("admin:helpdesk_case_changelist", lambda w: [], VIEWING),
    ("admin:helpdesk_case_change", lambda w: [w["case"].pk], VIEWING),
    ("admin:helpdesk_approvalrequest_changelist", lambda w: [], VIEWING),
    ("admin:helpdesk_approvalrequest_change", lambda w: [w["request"].pk], VIEWING),
    ("admin:helpdesk_identity_check", lambda w: [w["caller"].pk], DESK_ONLY),
    ("admin:helpdesk_open_case", lambda w: [w["caller"].pk], DESK_ONLY),
] + [("admin:helpdesk_action", lambda w, key=key: [w["caller"].pk, key], DESK_ONLY) for key in ACTIONS]


@pytest.mark.parametrize(
    "name,args,expected", PAGES, ids=[p[0] + (f"-{i}" if i >= 13 else "") for i, p in enumerate(PAGES)]
)
def test_ac03_ses09_who_gets_each_admin_page(world, name, args, expected):
    url = reverse(name, args=args(world))
    got = {role: _outcome(world["clients"][role].get(url), world["clients"][role]) for role in ROLES}
    assert got == expected, url


@pytest.mark.parametrize(
    "name,args,data",
    [
        ("admin:helpdesk_case_note", lambda w: [w["case"].pk], {"text": "n", "status": "open"}),
        ("admin:helpdesk_request_decide", lambda w: [w["request"].pk], {"decision": "decline"}),
        ("admin:helpdesk_request_finish", lambda w: [w["request"].pk], {}),
        ("admin:helpdesk_action", lambda w: [w["caller"].pk, "sign_out_everywhere"], {"reason": "r"}),
        ("admin:identity_user_change", lambda w: [w["caller"].pk], {"email": "x@example.com"}),
        ("admin:helpdesk_security_key_options", lambda w: [w["caller"].pk], {"label": "Blue key"}),
        (
            "admin:helpdesk_identity_check",
            lambda w: [w["caller"].pk],
            {"method": "photo_id_in_person", "reference": "x"},
        ),
        ("admin:helpdesk_open_case", lambda w: [w["caller"].pk], {"category": "other"}),
    ],
)
def test_ac03_auditor_and_strangers_change_nothing(world, name, args, data):
    url = reverse(name, args=args(world))
    for role, expected in (("anonymous", SIGN_IN), ("person", REFUSED), ("auditor", REFUSED)):
        assert _outcome(world["clients"][role].post(url, data), world["clients"][role]) == expected, (role, url)
    caller = User.objects.get(pk=world["caller"].pk)
    assert caller.email == "caller1@example.edu"
    assert world["case"].notes.count() == 0
    assert world["caller"].support_cases.count() == 1
    assert world["caller"].identity_checks.count() == 2
    assert not WebAuthnChallenge.objects.exists()


def test_ac03_superuser_is_still_bound_by_bnd08(world, superuser):
    client = world["clients"]["superuser"]
    response = client.get(reverse("admin:helpdesk_action", args=[superuser.pk, "issue_bypass_codes"]), follow=True)
    assert b"your own account" in response.content
    assert not superuser.bypasscodedevice_set.exists()
