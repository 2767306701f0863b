"""The database ending the VPN servers' connections while they are busy (API-07), for the Auth API and RADIUS tests.

Several threads send passcode checks without pause, each for a person of its own, while another thread keeps ending
the server's database connections. What each thread sends in turn: the next step's code (good once), the current
step's (good only while the next is unused: enrolling used it), a wrong code, and a good code of someone who must be
refused. The threads compute codes with pyotp alone: only the server touches the database while it is being cut.
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import psycopg
import pyotp
from django.db import connection

from identity.models import AuditEvent

ROUND = ("next", "wrong", "current", "refused", "next", "wrong")
CHECKS_PER_THREAD = 60


class BackendKiller(threading.Thread):
    """Ends a client connection to the test database (never its own or a ``spare`` one), again and again at short
    random intervals, until ``stop`` is set: connections dropped by the database, over and over, under load.

    It connects as the tests' role, which may end that role's sessions (the servers') and no one else's.
    """

    def __init__(self, *, spare: list[int]):
        super().__init__(daemon=True)
        self.spare = spare
        self.stop = threading.Event()
        self.ended = 0
        self.error: Exception | None = None

    def run(self):
        db = connection.settings_dict
        try:
            with psycopg.connect(
                host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
            ) as own:
                while not self.stop.is_set():
                    # One connection at a time, at random, so checks keep getting through between the faults.
                    rows = own.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND backend_type = 'client backend' AND usename = current_user "
                        "AND pid <> pg_backend_pid() AND pid <> ALL(%s) ORDER BY random() LIMIT 1",
                        [self.spare],
                    ).fetchall()
                    self.ended += sum(1 for (done,) in rows if done)
                    self.stop.wait(random.uniform(0.01, 0.1))  # noqa: S311 (timing jitter, not a secret)
        except Exception as error:  # the test asserts on it: a killer that died proves nothing
            self.error = error


def wrong_code_at(totp: pyotp.TOTP, step: int) -> str:
    """Six digits no step near ``step`` gives, from the codes alone."""
    near = {totp.at(s * 30) for s in range(step - 3, step + 4)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


def checks_under_fault(send: Callable[[int, int, str, str], str], people) -> tuple[list[tuple], int]:
    """One thread per name in ``people.names`` (the ``busy_people`` fixture) sends ``CHECKS_PER_THREAD`` checks
    through ``send(thread, n, username, code)``, which returns ``allow``, ``deny``, ``error`` (a refusal by error) or
    a description of anything else, while a :class:`BackendKiller` runs. Returns the answers, ``(kind, username,
    step of a good code or None, outcome)``, and how many connections were ended. A thread stops at the first
    outcome that is none of those."""
    answers = []
    totps, refused = people.totps, people.refused

    def thread(n_thread):
        name = people.names[n_thread]
        for n in range(CHECKS_PER_THREAD):
            kind, step = ROUND[n % len(ROUND)], int(time.time()) // 30
            username, code_step, code = name, None, wrong_code_at(totps[name], step)
            if kind in ("next", "current"):
                code_step = step + (kind == "next")
                code = totps[name].at(code_step * 30)
            elif kind == "refused":
                username = refused[n // len(ROUND) % len(refused)]
                # A code their app has not used: good, were they allowed in.
                code = totps[username].at((step + 1) * 30) if username in totps else "123456"
            outcome = send(n_thread, n, username, code)
            answers.append((kind, username, code_step, outcome))
            if outcome not in ("allow", "deny", "error"):
                return  # a hang, a crash, a wrong shape: the test fails on it, no need to wait out every check

    connection.ensure_connection()
    killer = BackendKiller(spare=[connection.connection.info.backend_pid])  # the test's own connection
    threads = [threading.Thread(target=thread, args=(n,)) for n in range(len(people.names))]
    killer.start()
    for each in threads:
        each.start()
    for each in threads:
        each.join(300)
    killer.stop.set()
    killer.join(30)
    assert killer.error is None and not any(each.is_alive() for each in threads)
    return answers, killer.ended


def assert_failed_closed(answers: list[tuple], people) -> None:
    """Every answer an allow, a deny or a refusal by error; no wrong code and no refused person allowed; a good code
    allowed at most once; every allow committed (audited), and at most one success per person and step audited."""
    names = people.names
    ok_events = Counter(
        AuditEvent.objects.filter(action="signin.second_factor_ok").values_list("subject__username", flat=True)
    )
    assert [a for a in answers if a[3] not in ("allow", "deny", "error")] == []
    assert len(answers) == len(names) * CHECKS_PER_THREAD
    assert [a for a in answers if a[3] == "allow" and a[0] in ("wrong", "refused")] == []
    allowed = Counter((username, step) for _, username, step, outcome in answers if outcome == "allow")
    assert allowed and max(allowed.values()) == 1, allowed
    assert not ok_events.keys() - set(names), ok_events
    for name in names:
        steps = {step for _, username, step, _ in answers if username == name and step is not None}
        mine = sum(n for (username, _), n in allowed.items() if username == name)
        # A check that failed may have committed its success too (the answer lost, not the code's use).
        assert mine <= ok_events[name] <= len(steps), (name, mine, ok_events[name], steps)
