"""The emailed-link password gate asks the directory for a directory person's password (DIR-01): their password
opens it, a local hash never does, and an unreachable directory counts against nobody."""

import pytest
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError

from devices import services
from identity.directory.tests import slapd as tree
from identity.events import describe
from identity.models import AuditEvent, User
from testsupport import PASSWORD, details_of

from .helpers import pending_app_registration

pytestmark = pytest.mark.django_db


@pytest.fixture
def link(directory_person):
    alice = directory_person("alice")
    User.objects.filter(pk=alice.pk).update(password=make_password(PASSWORD))  # a stray local hash is never used
    return services.send_activation_link(pending_app_registration(alice), actor=alice)


def test_dir_01_the_link_opens_with_the_directory_password_only(link):
    with pytest.raises(ValidationError, match="password"):
        services.open_activation_link(link, password=PASSWORD)
    link.refresh_from_db()
    assert link.password_failures == 1
    opened = services.open_activation_link(link, password=tree.PASSWORD)
    assert opened.consumed_at is not None


def test_dir_01_an_unreachable_directory_counts_against_nobody(link, ldap_directory):
    ldap_directory.stop()
    for _ in range(3):
        with pytest.raises(ValidationError, match="We cannot check passwords right now"):
            services.open_activation_link(link, password=tree.PASSWORD, ip="203.0.113.9")
    link.refresh_from_db()
    assert (link.password_failures, link.revoked_at, link.consumed_at) == (0, None, None)
    events = AuditEvent.objects.filter(action="signin.directory_unreachable", subject=link.user)
    assert [(e.ip, e.details["entry_point"]) for e in events] == [("203.0.113.9", "link")] * 3
    ldap_directory.start()
    assert services.open_activation_link(link, password=tree.PASSWORD).consumed_at is not None


def test_the_directory_answer_is_said_at_the_link(directory_person):
    erin = directory_person("erin")
    link = services.send_activation_link(pending_app_registration(erin), actor=erin)
    with pytest.raises(ValidationError, match="has locked your institution account"):
        services.open_activation_link(link, password=tree.PASSWORD, ip="203.0.113.9")
    refused = AuditEvent.objects.get(action="signin.directory_refused", subject=erin)
    assert (details_of(refused), refused.ip) == ({"answer": "locked", "entry_point": "link"}, "203.0.113.9")
    assert describe(refused.action, refused.details) == (
        "Password refused by the directory (an emailed link): the account is locked"
    )
