"""Ending a person's sessions in the session store itself, not only the one a request holds (BND-05).

A session verified with a device that stops working must end everywhere at once: a browser that is not looking
right now must not find itself still signed in later. The session engine ``identity.session_store`` keeps the
person and the device on each row, so this is one indexed query.
"""

from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone

ENGINE = "identity.session_store"


def end_sessions(user, *, verified_with: Iterable[str] | None = None, keep: str | None = None) -> int:
    """Delete the person's sessions verified with one of the devices ``verified_with`` (persistent ids), or all
    of the person's sessions when it is None, except the session ``keep``. Returns how many ended.

    Needs the session engine ``identity.session_store`` (check ``identity.E004``).
    """
    from .models import PersonSession

    rows = PersonSession.objects.filter(user_id=user.pk, expire_date__gt=timezone.now()).exclude(session_key=keep or "")
    if verified_with is not None:
        rows = rows.filter(otp_device_id__in=list(verified_with))
    ended, _ = rows.delete()
    return ended


def session_store_names_people() -> bool:
    return settings.SESSION_ENGINE == ENGINE
