"""Ending a person's sessions in the session store itself, not only the one a request holds (BND-05).

A session verified with a device that stops working must end everywhere at once: a browser that is not looking
right now must not find itself still signed in later. Sessions are signed blobs, so the person's are found by
reading the unexpired rows of the session table; this runs only when a factor is lost or removed.
"""

from collections.abc import Iterable
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY


def _store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def end_sessions(user, *, verified_with: Iterable[str] | None = None, keep: str | None = None) -> int:
    """Delete the person's sessions verified with one of the devices ``verified_with`` (persistent ids), or all
    of the person's sessions when it is None, except the session ``keep``. Returns how many ended.

    Needs a session engine with a database table (``db`` or ``cached_db``; check ``identity.E004``).
    """
    store = _store()
    wanted = None if verified_with is None else set(verified_with)
    person = str(user.pk)
    ended = 0
    rows = store.get_model_class().objects.filter(expire_date__gt=timezone.now()).exclude(session_key=keep or "")
    for session_key, data in rows.values_list("session_key", "session_data").iterator():
        decoded = store().decode(data)
        if str(decoded.get(SESSION_KEY)) != person:
            continue
        if wanted is not None and decoded.get(DEVICE_ID_SESSION_KEY) not in wanted:
            continue
        store(session_key).delete()
        ended += 1
    return ended


def session_store_has_table() -> bool:
    return hasattr(_store(), "get_model_class")
