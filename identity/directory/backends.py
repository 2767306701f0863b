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
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import ModelBackend

from identity import audit, errors

from .ldap_password import Answer, check

if TYPE_CHECKING:
    from identity.models import User

_last: contextvars.ContextVar[tuple[Answer, str] | None] = contextvars.ContextVar("password_answer", default=None)
# Where a check made without a request comes from (RADIUS, an emailed link's gate): its address and door, for the
# audit of the directory's answers, which the backend writes under Django's ``authenticate``.
_door: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "password_door", default=(None, None)
)

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
    token, door = _last.set(None), _door.set((ip, entry_point))
    try:
        user = auth.authenticate(request, username=username, password=password)
        answer = (_last.get() or (None, ""))[0]
    finally:
        _last.reset(token)
        _door.reset(door)
    if user is not None:
        return PasswordCheck(user, Answer.OK)
    # A right password of someone who may not sign in (deactivated here) is no "OK".
    return PasswordCheck(None, Answer.DISABLED if answer == Answer.OK else answer or Answer.WRONG_PASSWORD)


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
            User().set_password(password)  # as ModelBackend: an unknown ID costs a hash too
            return None
        if not person.from_directory:
            # ModelBackend's check, on the row already read (one query per sign-in).
            if person.check_password(password) and self.user_can_authenticate(person):
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
            answer, diagnostic = check(person, password, request=request)
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
