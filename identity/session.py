"""What the sign-in flow keeps in the session, and nothing else: never a password (SES-02)."""

import time
from datetime import UTC, datetime

from django.conf import settings

from .models import User

PENDING_USER = "signin_pending_user"
PENDING_BACKEND = "signin_pending_backend"
PENDING_STARTED = "signin_pending_started"
NEXT_URL = "signin_next"
VERIFIED_AT = "second_factor_verified_at"


def start_pending(session, user, *, next_url: str) -> None:
    session[PENDING_USER] = user.pk
    session[PENDING_BACKEND] = user.backend
    session[PENDING_STARTED] = time.time()
    session[NEXT_URL] = next_url


def pending_user(session) -> User | None:
    """The person who passed the password step in this session and owes a second factor, or None.

    None as well once SIGNIN_PENDING_SECONDS have passed (SES-02); the stale state is cleared.
    """
    user_id = session.get(PENDING_USER)
    if user_id is None:
        return None
    if time.time() - session.get(PENDING_STARTED, 0) > settings.SIGNIN_PENDING_SECONDS:
        clear_pending(session)
        return None
    return User.objects.filter(pk=user_id, is_active=True).first()


def clear_pending(session) -> None:
    for key in (PENDING_USER, PENDING_BACKEND, PENDING_STARTED):
        session.pop(key, None)


def mark_verified(session) -> None:
    session[VERIFIED_AT] = time.time()


def verified_at(session) -> datetime | None:
    stamp = session.get(VERIFIED_AT)
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp else None
