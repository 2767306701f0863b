import pytest


def _staff(make_user, enroll, username: str, group: str):
    """A staff member of ``group`` with an enrolled device, as the admin requires."""
    from django.contrib.auth.models import Group

    person = make_user(username, is_staff=True)
    person.groups.add(Group.objects.get(name=group))
    enroll(person)
    return person


@pytest.fixture
def staff_member(make_user, enroll):
    return _staff(make_user, enroll, "staff1", "Help desk")


@pytest.fixture
def auditor(make_user, enroll):
    return _staff(make_user, enroll, "auditor1", "Auditor")


@pytest.fixture
def superuser(make_user, enroll):
    person = make_user("root1", is_staff=True, is_superuser=True)
    enroll(person)
    return person


@pytest.fixture
def second_superuser(make_user, enroll):
    """Another superuser, with an app of their own: the first one's app has no unused code left within its step."""
    person = make_user("root2", first_name="Rae", last_name="Oakes", is_staff=True, is_superuser=True)
    enroll(person)
    return person


@pytest.fixture
def second_agent(make_user, enroll):
    return _staff(make_user, enroll, "staff2", "Help desk")


@pytest.fixture
def caller(make_user, enroll):
    """A person who calls the desk: enrolled with a mobile phone, with an email address."""
    person = make_user("caller1", first_name="Cal", last_name="Ler", department="Radiology")
    enroll(person, number="+16174322000")
    return person


@pytest.fixture
def desk_client(client, staff_member, sign_in):
    sign_in(client, staff_member)
    return client


@pytest.fixture
def check_for():
    """Record a current identity check of ``person`` by ``agent`` through the service."""
    from helpdesk import services

    def do(person, agent, *, method="photo_id_in_person", reference="INC-1", case=None):
        return services.record_identity_check(person, actor=agent, method=method, reference=reference, case=case)

    return do
