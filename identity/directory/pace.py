"""What a password check costs here, so a refusal for an ID nobody has takes as long as a known person's (API-04).

Every door that refuses an unknown ID (the web sign-in, the admin's sign-in, RADIUS password mode) waits instead of
checking anything: as long as a known person's check would have taken. That is one directory bind where the
directory decides passwords (``LDAP_SERVER_URIS`` set: a directory person's password is bound once, however the
field is read), else one local hash per reading of the field. Binds and hashes are timed apart as this process runs
(:func:`measured`, called by the password backend around each real check): a moving average of each; the hash is
measured once by hashing when first needed, and until the first bind is timed a bind counts as a hash.

Only the unknown ID waits, and it waits without working: the CPU (and the directory) stay with the people who exist,
and a known person's sign-in takes what its own check takes. A door waits with no transaction open, after it has
written what the refusal writes.
"""

from __future__ import annotations

import secrets
import threading
import time

from django.conf import settings
from django.contrib.auth.hashers import make_password

HASH, BIND = "hash", "bind"

_lock = threading.Lock()
# Seconds one password check of each kind takes lately.
_cost: dict[str, float] = {}


def password_cost(kind: str = HASH) -> float:
    """The seconds one password check of ``kind`` (:data:`HASH` or :data:`BIND`) takes here lately. The hash is
    measured once by hashing (a server may call this as it starts, before a request needs it)."""
    if HASH not in _cost:
        began = time.monotonic()
        make_password(secrets.token_urlsafe(12))
        measured(HASH, time.monotonic() - began)
    return _cost.get(kind, _cost[HASH])


def measured(kind: str, seconds: float) -> None:
    """Add one real check's time to its kind's average. Only a check that ran counts: a directory that is down, or
    an account refused before any bind, would pull the average away from what a check costs."""
    with _lock:
        _cost[kind] = 0.8 * _cost.get(kind, seconds) + 0.2 * seconds


def unknown_pace(readings: int = 1) -> float:
    """How long the check of someone unknown would have taken had they existed: one bind where the directory decides
    passwords (a directory person's is bound once, whatever the readings), else a hash per reading of the field."""
    if settings.LDAP_SERVER_URIS:
        return password_cost(BIND)
    return password_cost(HASH) * readings


def wait(seconds: float) -> None:
    """Wait out an unknown ID's pace (:func:`unknown_pace`). A door calls it once it has done all a known person's
    refusal does besides the check itself (read the row, write the failure), so the wait stands in for the check
    alone; with no transaction open."""
    if seconds > 0:
        time.sleep(seconds)
