"""Every password the site checks goes through here: Django's one authentication backend, and the calls the doors use.

- A local account (a break-glass superuser, the demo account, any account not from a directory) is checked against
  its hash here, as Django's ModelBackend does (an unknown ID costs a hash too).
- A person from the directory is checked only by binding to the directory as them (``ldap_password``): their local
  hash is never read, and an unreachable directory never falls back to it (DIR-01). A person deactivated here is
  refused before any bind (``Answer.DISABLED``): leaving is not a secret, and a bind would only count against their
  directory account. A SCIM person on a site with no LDAP directory has no password here (``Answer.NO_PASSWORD``,
  audited): a passkey is their way in (docs/directory.md).

The doors (web sign-in, the emailed-link and recovery-link password gates, RADIUS password mode, the admin's sign-in
through Django's ``authenticate``) call :func:`check_password` or :func:`check_person_password`: they get the person
and the directory's answer, with its plain message (identity.errors). Every answer other than a wrong password is
audited here (``signin.directory_refused`` / ``signin.directory_unreachable`` / ``signin.no_password_here``), with
the address and, outside the web sign-in, the door; the doors audit wrong passwords as they always have.

An ID nobody has costs no hash and no bind here: the check says how long its refusal must wait (``pace``, from
:mod:`.pace`: as long as a known person's check would take), and the door waits it out once it has written what
the refusal writes, with no transaction open. Through Django's ``authenticate`` alone (the admin's sign-in) the
backend waits itself. Each real hash and bind is timed for that average.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend

from identity import audit, errors

from . import pace as pacing
from .ldap_password import Answer, check

if TYPE_CHECKING:
    from identity.models import User

_last: contextvars.ContextVar[tuple[Answer, str] | None] = contextvars.ContextVar("password_answer", default=None)
# Where a check made without a request comes from (RADIUS, an emailed link's gate): its address and door, for the
# audit of the directory's answers, which the backend writes under Django's ``authenticate``.
_door: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "password_door", default=(None, None)
)
# Set by check_password: the seconds an unknown ID's refusal must wait, which its caller waits out (None: the
# backend was called through Django's authenticate alone, and waits itself).
_pace: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("password_pace", default=None)

MESSAGES = {
    Answer.WRONG_PASSWORD: errors.SIGN_IN_FAILED,
    Answer.DISABLED: errors.DIRECTORY_DISABLED,
    Answer.LOCKED: errors.DIRECTORY_LOCKED,
    Answer.EXPIRED: errors.DIRECTORY_PASSWORD_EXPIRED,
    Answer.MUST_CHANGE: errors.DIRECTORY_MUST_CHANGE,
    Answer.UNREACHABLE: errors.DIRECTORY_UNREACHABLE,
    Answer.NO_PASSWORD: errors.DIRECTORY_NO_PASSWORD,
}


@dataclass(frozen=True)
class PasswordCheck:
    user: User | None  # the person, when the password is theirs and they may sign in
    answer: Answer
    # Seconds this refusal waits before it is answered: nonzero only for an ID nobody has, which was checked against
    # nothing (API-04). The door waits it out once it has written the refusal (:func:`.pace.wait`).
    pace: float = 0.0

    @property
    def message(self) -> str:
        """What to tell the person when refused (a wrong password gets the door's usual text)."""
        return MESSAGES.get(self.answer, errors.SIGN_IN_FAILED).format(
            help_desk=settings.HELP_DESK_CONTACT, change_at=settings.LDAP_PASSWORD_CHANGE_AT
        )

    @property
    def counts_as_failure(self) -> bool:
        """An outage is nobody's wrong password: it must not throttle or revoke anything."""
        return self.user is None and self.answer != Answer.UNREACHABLE


def check_password(
    username: str, password: str, *, request=None, ip: str | None = None, entry_point: str | None = None
) -> PasswordCheck:
    """Whose password this is, through Django's backends, with the directory's answer when it gave one.

    A door that has no request names the address it was asked from (``ip``) and itself (``entry_point``, e.g.
    ``radius``): the directory's answers are audited with both."""
    paced: list[float] = []
    token, door, pace_token = _last.set(None), _door.set((ip, entry_point)), _pace.set(paced)
    try:
        user = auth.authenticate(request, username=username, password=password)
        answer = (_last.get() or (None, ""))[0]
    finally:
        _last.reset(token)
        _door.reset(door)
        _pace.reset(pace_token)
    if user is not None:
        return PasswordCheck(user, Answer.OK)
    # A right password of someone who may not sign in (deactivated here) is no "OK".
    answer = Answer.DISABLED if answer == Answer.OK else answer or Answer.WRONG_PASSWORD
    return PasswordCheck(None, answer, pace=sum(paced))


def check_person_password(
    person, password: str, *, request=None, ip: str | None = None, entry_point: str | None = None
) -> PasswordCheck:
    """Is this ``person``'s password (the link gates: the person is known, the password is asked again); ``ip`` and
    ``entry_point`` as for :func:`check_password`."""
    result = check_password(person.username, password, request=request, ip=ip, entry_point=entry_point)
    if result.user is not None and result.user.pk != person.pk:
        return PasswordCheck(None, Answer.WRONG_PASSWORD)
    return result


class PasswordBackend(ModelBackend):
    """Django's authentication backend: local accounts by their hash, directory people by the directory only."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        from identity.models import User

        username = kwargs.get(User.USERNAME_FIELD, username)
        if username is None or password is None:
            return None
        try:
            person = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            # No hash against nothing (ModelBackend's way): a hash is not what a directory person's check costs.
            # The refusal waits as long as a known person's check would take instead (API-04).
            pace = pacing.unknown_pace()
            paced = _pace.get()
            if paced is None:
                pacing.wait(pace)
            else:
                paced.append(pace)
            return None
        if not person.from_directory:
            # ModelBackend's check, on the row already read (one query per sign-in).
            began = time.monotonic()
            right = person.check_password(password)
            pacing.measured(pacing.HASH, time.monotonic() - began)
            if right and self.user_can_authenticate(person):
                return person
            return None
        if not self.user_can_authenticate(person):
            # Deactivated here: no bind (it would add to the directory's bad-password count and audit a refusal
            # per attempt); the sign-in door says the account is not active and counts the attempt.
            _last.set((Answer.DISABLED, ""))
            return None
        if person.source == person.Source.SCIM and not settings.LDAP_SERVER_URIS:
            answer, diagnostic = Answer.NO_PASSWORD, ""
        else:
            began = time.monotonic()
            answer, diagnostic = check(person, password, request=request)
            if password and settings.LDAP_SERVER_URIS and answer in (Answer.OK, Answer.WRONG_PASSWORD):
                # Only a bind that ran and was answered (an empty password is refused before any bind).
                pacing.measured(pacing.BIND, time.monotonic() - began)
        _last.set((answer, diagnostic))
        if answer not in (Answer.OK, Answer.WRONG_PASSWORD):
            _audit(person, answer, diagnostic, request)
        return person if answer == Answer.OK else None


def _audit(person, answer: Answer, diagnostic: str, request) -> None:
    from identity.web import client_ip

    ip, entry_point = _door.get()
    if request is not None:
        ip = client_ip(request)
    door = {"entry_point": entry_point} if entry_point else {}
    if answer == Answer.UNREACHABLE:
        audit.record("signin.directory_unreachable", subject=person, ip=ip, details={"error": diagnostic, **door})
    elif answer == Answer.NO_PASSWORD:
        audit.record("signin.no_password_here", subject=person, ip=ip, details=door or None)
    else:
        audit.record("signin.directory_refused", subject=person, ip=ip, details={"answer": str(answer), **door})
