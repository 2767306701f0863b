from types import SimpleNamespace

import duo_client
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone

from identity import services as identity_services
from identity.models import User
from testsupport import totp_for
from vpn import services

# The fail-closed tests' shared assertions report what they compared, as the tests' own do.
pytest.register_assert_rewrite("vpn.tests.faults")


@pytest.fixture
def staff(make_user):
    return make_user("helpdesk1", is_staff=True)


@pytest.fixture
def approve(staff):
    def do(person):
        return identity_services.approve_vpn_access(person, actor=staff, reason="ticket 1")

    return do


@pytest.fixture
def integration(db):
    integration, secret = services.create_integration(name="Cisco ASA", actor=None)
    integration.secret = secret
    return integration


@pytest.fixture
def duo(live_server, integration):
    """The unmodified ``duo_client`` package, pointed at the live server over plain HTTP."""

    def make(ikey=None, skey=None, **kwargs):
        host, port = live_server.url.removeprefix("http://").split(":")
        return duo_client.Auth(
            ikey=ikey or integration.integration_key,
            skey=skey or integration.secret,
            host=host,
            port=int(port),
            ca_certs="HTTP",
            **kwargs,
        )

    return make


@pytest.fixture
def vpn_person(make_user, enroll, approve):
    """An enrolled person (an authenticator app) with approved VPN access."""
    person = make_user("vpnuser")
    enroll(person)
    approve(person)
    person.refresh_from_db()
    return person


@pytest.fixture
def busy_people(make_user, enroll, approve):
    """The people of the fail-closed tests under load (``vpn.tests.faults``): six enrolled with VPN access (``names``,
    one per thread), one more left alone until the faults stop (``later``), and the pyotp of each and of two enrolled
    people who must be refused (``refused``, with one nobody knows): ``waiting`` (not approved) and ``locked``."""
    people = []
    for n in range(7):
        person = make_user(f"busy{n}")
        enroll(person)
        approve(person)
        people.append(person)
    waiting = make_user("waiting")
    enroll(waiting)
    locked = make_user("locked")
    enroll(locked)
    approve(locked)
    User.objects.filter(pk=locked.pk).update(locked_at=timezone.now())
    *people, later = people
    return SimpleNamespace(
        names=[p.username for p in people],
        later=later,
        totps={p.username: totp_for(p.registrations.get().app_device) for p in [*people, waiting, locked]},
        refused=["waiting", "locked", "nobody"],
    )


@pytest.fixture
def api_application(settings):
    """Django's WSGI handler with config.settings_api's middleware and URLs, built when called (the middleware reads
    its settings then); its database settings apply only in a process of its own, above."""
    from config import settings_api

    settings.MIDDLEWARE = settings_api.MIDDLEWARE
    settings.ROOT_URLCONF = settings_api.ROOT_URLCONF
    settings.ALLOWED_HOSTS = ["testserver"]
    return WSGIHandler
