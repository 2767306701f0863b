"""API-04 at the web's password doors: a refusal for an ID nobody has waits as long as a known person's check would
take (the same rule as RADIUS's, identity.directory.pace): one bind where the directory decides passwords, else a
hash; it checks nothing meanwhile, and nobody who exists waits for it."""

import statistics
import time

import pytest
from django.contrib import auth

from identity.directory import pace
from identity.directory.backends import Answer, check_password
from identity.directory.tests import slapd as tree
from testsupport import PASSWORD

pytestmark = pytest.mark.django_db
SIGN_IN = "/account/sign-in/"


def sign_in(client, username, password):
    return client.post(SIGN_IN, {"username": username, "password": password})


@pytest.fixture
def yann(ldap_directory, directory_person):
    """A directory person of this test's own (wrong passwords count toward the directory's lockout)."""
    ldap_directory.add_person(tree.Person("yann", "Yann", "Young", "yann@example.edu"))
    return directory_person("yann")


@pytest.fixture
def waits(monkeypatch):
    """The pacing decisions the doors take: the seconds each refusal was told to wait (the wait itself still runs)."""
    told = []
    real = pace.wait

    def wait(seconds):
        told.append(seconds)
        real(seconds)

    monkeypatch.setattr(pace, "wait", wait)
    return told


@pytest.fixture
def no_hashing(monkeypatch):
    """Counts the password hashes made against nothing (an unknown ID must cost none)."""
    from django.contrib.auth import base_user

    made = []
    real = base_user.make_password

    def make_password(*args, **kwargs):
        if args and args[0] is not None:  # None: an unusable password set, no hash
            made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(base_user, "make_password", make_password)
    return made


def test_api04_the_web_refuses_an_unknown_id_after_one_bind_s_wait_where_the_directory_decides(
    client, yann, waits, no_hashing
):
    hash_cost = pace.password_cost(pace.HASH)
    assert sign_in(client, "yann", "not the password").status_code == 200  # one real bind, averaged
    assert pace.password_cost(pace.HASH) == hash_cost  # apart from the hashes
    bind_cost = pace.password_cost(pace.BIND)
    assert waits == [0.0]  # a known person's refusal took its own time
    response = sign_in(client, "nobody", "not the password")
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert waits[1:] == [bind_cost]
    assert no_hashing == []  # and it hashed nothing meanwhile
    # A known person's right password waits for nothing.
    assert sign_in(client, "yann", tree.PASSWORD).status_code == 302
    assert waits[2:] == []


def test_api04_the_web_refuses_an_unknown_id_after_one_hash_s_wait_without_a_directory(
    client, make_user, settings, waits, no_hashing
):
    settings.LDAP_SERVER_URIS = []
    make_user("local")
    assert sign_in(client, "local", "not the password").status_code == 200  # a real hash, averaged
    hash_cost = pace.password_cost(pace.HASH)
    no_hashing.clear()
    assert sign_in(client, "nobody", "not the password").status_code == 200
    assert waits == [0.0, hash_cost]
    assert no_hashing == []
    assert sign_in(client, "local", PASSWORD).status_code == 302
    assert waits == [0.0, hash_cost]


def test_api04_the_check_says_the_pace_and_the_admin_s_authenticate_waits_it_itself(yann, waits):
    assert check_password("yann", "not the password").pace == 0.0
    bind_cost = pace.password_cost(pace.BIND)
    refused = check_password("nobody", "not the password")
    assert (refused.user, refused.answer, refused.pace) == (None, Answer.WRONG_PASSWORD, bind_cost)
    assert waits == []  # check_password's caller waits, after writing what the refusal writes
    assert auth.authenticate(None, username="nobody", password="not the password") is None
    assert waits == [bind_cost]  # Django's authenticate alone (the admin's sign-in): the backend waits


def test_api04_an_unknown_id_s_refusal_takes_about_as_long_as_a_directory_person_s_wrong_password(
    client, yann, settings
):
    """Wall time through the real slapd, medians of many tries in turns: before pacing, the unknown ID answered a
    bind sooner; now within half a bind of the known person's (generous for a noisy shared machine)."""
    settings.PASSWORD_FAILURES_PER_ID = settings.PASSWORD_FAILURES_PER_ADDRESS = 1000  # every try is checked

    def took(username):
        began = time.perf_counter()
        assert sign_in(client, username, "not the password").status_code == 200
        return time.perf_counter() - began

    for _ in range(2):
        took("yann")  # warm up the connections and the bind average

    def bind():
        began = time.perf_counter()
        assert check_password("yann", "not the password").answer == Answer.WRONG_PASSWORD
        took = time.perf_counter() - began
        # A right password clears the directory's count of wrong ones (its lockout is at five).
        assert check_password("yann", tree.PASSWORD).user is not None
        return took

    # Tried in turns, so all see the same moments of the machine's noise; compared by the median of the gaps.
    tries = [(took("yann"), took("nobody"), bind()) for _ in range(21)]  # two wrong binds, then a right one
    gap = statistics.median(unknown - known for known, unknown, _ in tries)
    known = statistics.median(known for known, _, _ in tries)
    check = statistics.median(check for _, _, check in tries)
    # The unknown ID pays a check's time in waiting: its refusal is not a check quicker than the known one's, nor
    # much slower.
    assert gap > -check / 2, (gap, known, check)
    assert gap < known + 0.05, (gap, known, check)
