"""The order RADIUS takes its locks in when ``password,code`` comes at once, on PostgreSQL: the person's row, then
the audit chain's lock, as every other code check does; the other order deadlocks with a web code check of the
same person (OTP-01)."""

import threading

import pytest
from django.db import connection, transaction

from identity import services as identity_services
from identity.models import AuditEvent
from identity.services import SecondFactorOutcome as Outcome
from testsupport import PASSWORD, wait_for, wrong_code
from vpn import services
from vpn.tests.test_access_races import waiting_on_locks

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CHAIN_LOCK = 1096107081  # the audit chain's advisory lock, as the append functions (identity migrations) take it


def test_radius_password_and_code_takes_the_persons_row_before_the_audit_lock(vpn_person, settings):
    """The RADIUS request reaches its first audit append first and waits there; then the web's check of the same
    person starts; then the chain is let go. In the order RADIUS waits first, it holds the chain while it asks for
    the row, which the web holds while it asks for the chain: PostgreSQL ends one as a deadlock. Each round is
    forced into that order, so a wrong order fails every time, not by chance."""
    settings.LOCKOUT_THRESHOLD = 100  # six wrong codes, counted, none locking
    client, _ = services.create_radius_client(name="ASA", network="10.1.1.1/32", actor=None)
    app = vpn_person.registrations.get().app_device
    for round_ in range(3):
        answers: dict = {}

        def radius():
            try:
                with transaction.atomic():
                    answers["radius"] = services.radius_authenticate(
                        client, username="vpnuser", password=f"{PASSWORD},{wrong_code(app)}", state=None, ip="10.1.1.1"
                    ).outcome
            except BaseException as error:  # shown by the assertion on answers
                answers["radius"] = error
            finally:
                connection.close()

        def web():
            try:
                with transaction.atomic():
                    answers["web"] = identity_services.verify_second_factor(
                        vpn_person, device=app, code=wrong_code(app), ip="192.0.2.7"
                    )
            except BaseException as error:
                answers["web"] = error
            finally:
                connection.close()

        threads = [threading.Thread(target=radius), threading.Thread(target=web)]
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
            threads[0].start()
            wait_for(lambda: waiting_on_locks() >= 1, timeout=20, interval=0.05)
            threads[1].start()
            wait_for(lambda: waiting_on_locks() >= 2, timeout=20, interval=0.05)
        for thread in threads:
            thread.join(30)
        # The app's own throttle answers the web after the first round; no answer may be an error.
        assert answers["radius"] == "reject", (round_, answers)
        assert answers["web"] in (Outcome.WRONG, Outcome.THROTTLED), (round_, answers)
    assert AuditEvent.objects.filter(action="signin.password_ok", subject=vpn_person).count() == 3
