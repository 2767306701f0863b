"""What the sign-in flow keeps in the session, and nothing else: never a password (SES-02)."""

import time
from datetime import UTC, datetime

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


def clear_pending(session) -> None:
    for key in (PENDING_USER, PENDING_BACKEND, PENDING_STARTED):
        session.pop(key, None)


def mark_verified(session) -> None:
    session[VERIFIED_AT] = time.time()


def verified_at(session) -> datetime | None:
    stamp = session.get(VERIFIED_AT)
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp else None
