"""The help desk's recovery link for a person with no working factor: who may send it and on what (BND-07, BND-08).

Opening the link and what it leads to are devices' and tested in ``devices/tests/test_recovery_link.py``.
"""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from devices.models import ActivationLink, OutboundMessage
from devices.tests.helpers import events
from helpdesk import errors, services
from helpdesk.models import IdentityCheck
from identity import audit

pytestmark = pytest.mark.django_db

CHECK = IdentityCheck(method="photo_id_in_person", reference="INC-20417")


@pytest.fixture
def person(make_user):
    return make_user("asmith", first_name="Ann", last_name="Smith")


@pytest.fixture
def phone(person, enroll):
    """``person``'s one phone with the app, which they no longer have."""
    return enroll(person)


@pytest.fixture
def staff(make_user):
    return make_user("helpdesk1", is_staff=True)


def nothing_sent():
    assert not ActivationLink.objects.exists()
    assert not OutboundMessage.objects.filter(template="recovery_link").exists()
    assert not events("recovery.link_sent").exists()


# --- BND-07 identity check, BND-08 staff only, never on one's own account ---------------------------------------


@pytest.mark.parametrize(
    "method", ["", "knowledge_questions", "mothers_maiden_name", "PHOTO_ID_IN_PERSON", " photo_id_in_person", None]
)
def test_bnd07_identity_check_method_must_come_from_the_fixed_list(person, phone, staff, method):
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(
            person, actor=staff, identity_check=IdentityCheck(method=method, reference="INC-1")
        )
    assert refused.value.messages == [errors.IDENTITY_CHECK_METHOD]
    nothing_sent()


@pytest.mark.parametrize("reference", ["", "   ", "\t\n"])
def test_bnd07_identity_check_needs_a_reference(person, phone, staff, reference):
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(
            person,
            actor=staff,
            identity_check=IdentityCheck(method="video_call_with_photo_id", reference=reference),
        )
    assert refused.value.messages == [errors.IDENTITY_CHECK_REFERENCE]
    nothing_sent()


def test_bnd07_every_method_of_the_list_is_accepted_and_recorded(person, phone, staff):
    for method in IdentityCheck.Method.values:
        services.send_reactivation_link(
            person, actor=staff, identity_check=IdentityCheck(method=method, reference=f"INC-{method}")
        )
    recorded = [(e.details["identity_check"], e.details["reference"]) for e in events("recovery.link_sent")]
    assert sorted(recorded) == sorted((m, f"INC-{m}") for m in IdentityCheck.Method.values)


def test_bnd08_staff_cannot_send_a_recovery_link_to_themselves(staff, enroll):
    enroll(staff)
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(staff, actor=staff, identity_check=CHECK)
    assert refused.value.messages == [errors.OWN_ACCOUNT]
    nothing_sent()


def test_only_staff_send_recovery_links(make_user, enroll):
    person, colleague = make_user("needshelp"), make_user("notstaff")
    enroll(person)
    for sender in (colleague, None):
        with pytest.raises(ValidationError) as refused:
            services.send_reactivation_link(person, actor=sender, identity_check=CHECK)
        assert refused.value.messages == [errors.STAFF_ONLY_LINK]
    nothing_sent()


# --- The management command ------------------------------------------------------------------------------------


def test_bnd07_command_sends_the_link_and_records_who_ran_it(person, phone, staff, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "send_reactivation_link",
            person.username,
            "--by",
            staff.username,
            "--method",
            "callback_to_number_on_file",
            "--reference",
            "INC-7",
        )
    link = ActivationLink.objects.get()
    assert link.sent_by == staff and link.purpose == ActivationLink.Purpose.RECOVERY
    event = events("recovery.link_sent").get()
    assert event.actor == staff
    assert (event.details["identity_check"], event.details["reference"]) == ("callback_to_number_on_file", "INC-7")


@pytest.mark.parametrize(
    "args, message",
    [
        (["nobody", "--by", "helpdesk1", "--method", "photo_id_in_person", "--reference", "R"], "no person"),
        (["asmith", "--by", "nobody", "--method", "photo_id_in_person", "--reference", "R"], "no staff member"),
        (["asmith", "--by", "bystander", "--method", "photo_id_in_person", "--reference", "R"], "no staff member"),
        (["asmith", "--by", "helpdesk1", "--method", "knowledge_questions", "--reference", "R"], "invalid choice"),
        (["asmith", "--by", "helpdesk1", "--method", "photo_id_in_person", "--reference", " "], "reference"),
        (["helpdesk1", "--by", "helpdesk1", "--method", "photo_id_in_person", "--reference", "R"], "own account"),
        (["asmith", "--method", "photo_id_in_person", "--reference", "R"], "--by"),
    ],
)
def test_bnd07_bnd08_command_refuses(person, phone, staff, make_user, enroll, args, message):
    make_user("bystander")
    enroll(staff)
    with pytest.raises(CommandError) as refused:
        call_command("send_reactivation_link", *args)
    assert message in str(refused.value)
    nothing_sent()


def _in_group(person, name):
    from django.contrib.auth.models import Group

    person.groups.add(Group.objects.get(name=name))
    return person


def test_bnd08_a_link_to_a_staff_account_needs_a_second_staff_member(staff, make_user, enroll):
    colleague, approver = make_user("deskmate", is_staff=True), make_user("approver", is_staff=True)
    _in_group(approver, "Help desk")
    enroll(colleague)
    for approved_by, refusal in (
        (None, errors.RECOVERY_NEEDS_APPROVER),
        (staff, errors.NAMED_APPROVER_REFUSED),
        (colleague, errors.NAMED_APPROVER_REFUSED),
    ):
        with pytest.raises(ValidationError) as refused:
            services.send_reactivation_link(colleague, actor=staff, approved_by=approved_by, identity_check=CHECK)
        assert refused.value.messages == [refusal]
    nothing_sent()

    services.send_reactivation_link(colleague, actor=staff, approved_by=approver, identity_check=CHECK)
    assert list(events("recovery.link_sent"))[-1].details["approved_by"] == approver.pk


def test_ac04_a_link_to_a_freshly_changed_email_needs_a_second_staff_member(staff, make_user, enroll):
    person = make_user("newmail")
    enroll(person)
    audit.record("person.email_changed", actor=staff, subject=person, details={"from": "a@x.edu", "to": "b@x.edu"})
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(person, actor=staff, identity_check=CHECK)
    assert refused.value.messages == [errors.RECOVERY_NEEDS_APPROVER]


def test_bnd08_an_auditor_is_no_second_approver(staff, make_user, enroll):
    """The queue's rule (helpdesk.services.approver_refusal): staff without the approve permission approve nothing."""
    colleague = make_user("deskmate", is_staff=True)
    enroll(colleague)
    auditor = _in_group(make_user("auditor9", is_staff=True), "Auditor")
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(colleague, actor=staff, approved_by=auditor, identity_check=CHECK)
    assert refused.value.messages == [errors.NAMED_APPROVER_REFUSED]
    nothing_sent()


def test_bnd08_an_approver_who_may_not_approve_is_refused_where_none_is_needed_too(person, staff, make_user, enroll):
    """Named, they are checked: a link is never recorded as approved by, or sent past, an agent who could not."""
    enroll(person)
    auditor = _in_group(make_user("auditor9", is_staff=True), "Auditor")
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(person, actor=staff, approved_by=auditor, identity_check=CHECK)
    assert refused.value.messages == [errors.NAMED_APPROVER_REFUSED]
    nothing_sent()


def test_bnd08_command_refuses_an_auditor_as_second_approver(staff, make_user, enroll):
    colleague = make_user("deskmate", is_staff=True)
    enroll(colleague)
    _in_group(staff, "Help desk")
    _in_group(make_user("auditor9", is_staff=True), "Auditor")
    with pytest.raises(CommandError) as refused:
        call_command(
            "send_reactivation_link",
            "deskmate",
            "--by",
            "helpdesk1",
            "--method",
            "photo_id_in_person",
            "--reference",
            "R",
            "--approved-by",
            "auditor9",
        )
    assert errors.NAMED_APPROVER_REFUSED in str(refused.value)
    nothing_sent()


def test_the_desk_offers_a_recovery_link_only_to_someone_with_an_app_to_replace(person, staff, relying_party):
    """The action is offered by the rule the link's service refuses by (devices.selectors.app_to_recover)."""
    from devices.tests.helpers import new_key, register
    from helpdesk.actions import ACTIONS

    _in_group(staff, "Help desk")
    register(person, new_key())  # a security key only: no app a link could put in place of
    assert person.registrations.filter(status="active").exists()

    assert not ACTIONS["send_recovery_link"].applies(person)
    with pytest.raises(ValidationError):
        services.send_reactivation_link(person, actor=staff, identity_check=CHECK)
    nothing_sent()


def test_the_desk_offers_a_recovery_link_to_someone_with_an_app(person, phone):
    from helpdesk.actions import ACTIONS

    assert ACTIONS["send_recovery_link"].applies(person)
