"""The VPN access request sent twice at the same moment (a double click, two tabs), on PostgreSQL, each post in its
own thread and connection through the real page: one request is filed, the other is told it was."""

import threading

import pytest
from django.db import connection, transaction
from django.test import Client

from identity import errors
from identity.models import AuditEvent, User
from testsupport import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

URL = "/vpn-access/"


def waiting_on_locks() -> int:
    """How many other connections to this database wait for a lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_ac04_two_vpn_access_requests_at_once_file_one(enrolled_user, enroll, sign_in):
    browsers = [Client(), Client()]
    tablet = enroll(enrolled_user, kind="tablet", platform="android")  # a code of its own for the second sign-in
    sign_in(browsers[0], enrolled_user)
    sign_in(browsers[1], enrolled_user, device=tablet.app_device)
    answers: dict = {}

    def post(name, browser):
        try:
            answers[name] = browser.post(URL, {"reason": "on call from home"})
        except BaseException as error:  # shown by the assertions on answers
            answers[name] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n, b)) for n, b in zip(("first", "second"), browsers, strict=True)]
    # Both posts read the person as not having asked, then meet at the person's row, held here until both wait.
    with transaction.atomic():
        User.objects.select_for_update().get(pk=enrolled_user.pk)
        for thread in threads:
            thread.start()
        wait_for(lambda: waiting_on_locks() >= 2, timeout=20, interval=0.05)
    for thread in threads:
        thread.join(30)

    statuses = sorted(getattr(answer, "status_code", answer) for answer in answers.values())
    assert statuses == [200, 302], answers
    [refused] = [answer for answer in answers.values() if answer.status_code == 200]
    assert errors.VPN_ALREADY_ASKED in refused.content.decode()
    enrolled_user.refresh_from_db()
    assert enrolled_user.vpn_access == User.VpnAccess.REQUESTED
    assert AuditEvent.objects.filter(action="vpn_access.requested", subject=enrolled_user).count() == 1
