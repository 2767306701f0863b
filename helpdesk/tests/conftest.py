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


class StaffAdminWalk:
    """The admin's steps both WA-05 browser walks take, for one staff member in a Playwright page.

    One copy, so the walk with a security key and the walk with a passkey check the same refusal and the same way in.
    """

    home = "People, devices and audit"
    refused = "Sign in with a security key or passkey"

    def __init__(self, person, password):
        self.person = person
        self.password = password

    def sign_in(self, page, *, heading="Enter a code from your device", button=None, look=None):
        """Sign in at ``/admin/`` with the password; on the second-factor page headed ``heading`` call ``look()``
        if given, then press ``button``, or without one type a fresh code from the person's app."""
        from devices.tests.test_browser_enrollment import _heading, _sign_in_with_password
        from testsupport import fresh_code

        page.goto("/admin/")
        _sign_in_with_password(page, self.person, self.password)
        _heading(page, heading)
        if look is not None:
            look()
        if button is None:
            page.get_by_role("textbox", name="Code").fill(fresh_code(self.person.registrations.get().app_device))
            page.get_by_role("button", name="Verify").click()
        else:
            page.get_by_role("button", name=button).click()

    def expect_refused(self, page):
        """The admin turned away a session verified with the app, and says what to do."""
        from playwright.sync_api import expect

        from devices.tests.test_browser_enrollment import _heading

        _heading(page, self.refused)
        expect(page.get_by_text("This time you signed in with the authenticator app")).to_be_visible()
        expect(page.get_by_role("heading", name="You have none yet")).to_be_visible()
        expect(page.get_by_role("link", name=self.home)).to_have_count(0)

    def to_wizard(self, page):
        """From the refusal page to My devices and the wizard's choice of a new device."""
        from devices.tests.test_browser_enrollment import _heading

        page.get_by_role("link", name="My devices").click()
        _heading(page, "My devices")
        page.get_by_role("link", name="Add another device").click()
        page.get_by_role("link", name="Add another device").click()

    def expect_let_in(self, page, visit, name):
        """The admin's home without the reminder (``visit(name)`` checks it), and the people list behind it."""
        from playwright.sync_api import expect

        expect(page.get_by_role("heading", name=self.home)).to_be_visible()
        expect(page.get_by_role("note")).to_have_count(0)
        visit(name)
        page.goto("/admin/identity/user/")
        expect(page.get_by_role("link", name=self.person.username)).to_be_visible()


@pytest.fixture
def staff_admin(staff_member, password):
    """The WA-05 walks' admin steps for ``staff_member`` (:class:`StaffAdminWalk`)."""
    return StaffAdminWalk(staff_member, password)
