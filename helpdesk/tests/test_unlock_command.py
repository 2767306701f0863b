"""``unlock_user``: the desk's Unlock from the command line, by an agent allowed to unlock, after a recorded identity
check (BND-07), never on their own account and never on a staff account without a second agent (BND-08)."""

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from helpdesk.models import IdentityCheck
from identity.models import AuditEvent, User

pytestmark = pytest.mark.django_db


def _locked(person):
    User.objects.filter(pk=person.pk).update(
        locked_at=timezone.now(), locked_until=timezone.now() + timezone.timedelta(hours=1), second_factor_failures=10
    )
    person.refresh_from_db()
    return person


def _unlock(*args):
    call_command("unlock_user", *args)


CHECK = ["--method", "photo_id_in_person", "--reference", "INC-77"]


def test_bnd07_unlock_command_records_the_identity_check_and_unlocks(staff_member, caller):
    _locked(caller)

    _unlock("caller1", "--by", "staff1", "--reason", "called in, photo ID checked", *CHECK)

    caller.refresh_from_db()
    assert not caller.is_locked
    check = IdentityCheck.objects.get(person=caller)
    assert (check.agent, check.method, check.reference) == (staff_member, "photo_id_in_person", "INC-77")
    event = AuditEvent.objects.get(action="account.unlocked")
    assert (event.actor, event.subject, event.details["reason"]) == (
        staff_member,
        caller,
        "called in, photo ID checked",
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["caller1", "--by", "caller1", "--reason", "mine", *CHECK], "no help-desk agent"),  # not staff, own account
        (
            ["caller1", "--by", "auditor1", "--reason", "x", *CHECK],
            "no help-desk agent",
        ),  # staff without the permission
        (["caller1", "--by", "staff1", "--reason", "  ", *CHECK], "Say why"),
        (
            ["caller1", "--by", "staff1", "--reason", "x", "--method", "photo_id_in_person", "--reference", " "],
            "reference",
        ),
        (["caller1", "--reason", "x", *CHECK], "--by"),
        (["caller1", "--by", "staff1", "--reason", "x"], "--method"),
        (["staff1", "--by", "staff1", "--reason", "x", *CHECK], "second agent"),  # own account, a staff one
        (["nobody", "--by", "staff1", "--reason", "x", *CHECK], "no person"),
    ],
)
def test_bnd08_unlock_command_refuses(staff_member, auditor, caller, args, message):
    _locked(caller)
    _locked(staff_member)

    with pytest.raises(CommandError) as refused:
        _unlock(*args)

    assert message in str(refused.value)
    assert not AuditEvent.objects.filter(action="account.unlocked").exists()
    assert not IdentityCheck.objects.exists()


def test_bnd08_unlock_command_refuses_a_help_desk_agent_unlocking_their_other_account(staff_member, make_user):
    other = _locked(make_user("staff1-personal", email=staff_member.email))

    with pytest.raises(CommandError) as refused:
        _unlock(other.username, "--by", "staff1", "--reason", "mine", *CHECK)

    assert "second agent" in str(refused.value)
    assert not AuditEvent.objects.filter(action="account.unlocked").exists()
