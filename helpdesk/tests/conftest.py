import pytest


@pytest.fixture
def staff_member(make_user, enroll):
    """A help-desk staff member with an enrolled device, as the admin requires."""
    from django.contrib.auth.models import Group

    person = make_user("staff1", is_staff=True)
    person.groups.add(Group.objects.get(name="Help desk"))
    enroll(person)
    return person


@pytest.fixture
def auditor(make_user, enroll):
    from django.contrib.auth.models import Group

    person = make_user("auditor1", is_staff=True)
    person.groups.add(Group.objects.get(name="Auditor"))
    enroll(person)
    return person


@pytest.fixture
def superuser(make_user, enroll):
    person = make_user("root1", is_staff=True, is_superuser=True)
    enroll(person)
    return person
