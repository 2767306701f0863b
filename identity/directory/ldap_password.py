"""The directory password check, on django-auth-ldap: search for the person as the bind account, then bind as them.

django-auth-ldap does the search (filter escaping, the attribute list, StartTLS, the connection options); what it
keeps to itself we need to tell people why they were refused, so two of its documented seams are used: its
``ldap`` property (the python-ldap module it connects through) gives it connections whose bind asks for OpenLDAP's
password policy control and keeps the server's answer, and its ``ldap_error`` signal reports a server it could not
reach. Nobody is created or updated here: ``get_or_build_user`` answers with the person the caller names (joiners
come from the sync or SCIM, through identity.directory.people).
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings

from .ldap_connection import connection_options, describe, is_disabled, server_uri, set_option, text


class Answer(StrEnum):
    OK = "ok"
    WRONG_PASSWORD = "wrong_password"  # also: not found under the search base
    DISABLED = "disabled"
    LOCKED = "locked"
    EXPIRED = "expired"
    MUST_CHANGE = "must_change"
    UNREACHABLE = "unreachable"
    NO_PASSWORD = "no_password"  # a SCIM person, and no LDAP directory configured to check their password


# Active Directory's reason for a refused bind, the "data" sub-code of its diagnostic message
# ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563").
AD_SUBCODES = {
    "525": Answer.WRONG_PASSWORD,  # no such user
    "52e": Answer.WRONG_PASSWORD,  # wrong password
    "530": Answer.DISABLED,  # not permitted to sign in at this time
    "531": Answer.DISABLED,  # not permitted at this workstation
    "532": Answer.EXPIRED,  # password expired
    "533": Answer.DISABLED,  # account disabled
    "701": Answer.DISABLED,  # account expired
    "773": Answer.MUST_CHANGE,  # must reset password
    "775": Answer.LOCKED,  # account locked out
}
_AD_DATA = re.compile(r"\bdata ([0-9a-f]{3,4})\b", re.IGNORECASE)
# OpenLDAP ppolicy's PasswordPolicyResponseValue error (draft-behera-ldap-password-policy).
PPOLICY_ERRORS = {0: Answer.EXPIRED, 1: Answer.LOCKED, 2: Answer.MUST_CHANGE}


def answer_from_diagnostic(message: str) -> Answer | None:
    """Active Directory's answer in a bind's diagnostic message, or None when it names none we know."""
    found = _AD_DATA.search(message or "")
    return AD_SUBCODES.get(found.group(1).lower()) if found else None


@dataclass
class Outcome:
    """What the server said while one password was checked."""

    person: object
    bind_error: Exception | None = None  # the person's bind refused (invalid credentials and the like)
    policy_error: int | None = None  # ppolicy's error code in the bind's response control
    other_error: Exception | None = None  # anything else: no server, timeout, TLS refused, search failed
    attributes: dict = field(default_factory=dict)
    bound: bool = False

    def answer(self, user) -> Answer:
        if self.policy_error in PPOLICY_ERRORS:
            return PPOLICY_ERRORS[self.policy_error]
        if self.bind_error is not None:
            info = self.bind_error.args[0] if self.bind_error.args and isinstance(self.bind_error.args[0], dict) else {}
            return answer_from_diagnostic(info.get("info", "")) or Answer.WRONG_PASSWORD
        if self.other_error is not None:
            return Answer.UNREACHABLE
        if user is None or not self.bound:
            return Answer.WRONG_PASSWORD
        if is_disabled(self.attributes):  # OpenLDAP binds disabled people: the configured attribute decides
            return Answer.DISABLED
        return Answer.OK

    def diagnostic(self) -> str:
        error = self.bind_error or self.other_error
        return describe(error)[:300] if error is not None else ""


_current: contextvars.ContextVar[Outcome | None] = contextvars.ContextVar("directory_password_outcome", default=None)


def check(person, password: str, *, request=None) -> tuple[Answer, str]:
    """Check ``person``'s password by binding to the directory as them. Returns the answer and the server's
    diagnostic (for the audit log; never the password). Never raises for what the directory says."""
    if not settings.LDAP_SERVER_URIS or not password:
        # An empty password would be an unauthenticated bind, which succeeds (RFC 4513 5.1.2).
        return Answer.WRONG_PASSWORD, ""
    try:
        backend = _backend_class()()
    except ImportError as error:  # the LDAP extra is not installed (check directory.E001 says so)
        return Answer.UNREACHABLE, str(error)
    outcome = Outcome(person)
    token = _current.set(outcome)
    try:
        user = backend.authenticate(request, username=person.username, password=password)
    finally:
        _current.reset(token)
    return outcome.answer(user), outcome.diagnostic()


_classes: dict = {}


def _backend_class():
    """django-auth-ldap's backend, as we configure it (built on first use: python-ldap is an optional extra)."""
    if "backend" in _classes:
        return _classes["backend"]
    import ldap
    from django_auth_ldap.backend import LDAPBackend, ldap_error
    from django_auth_ldap.config import LDAPSearch
    from ldap.controls import DecodeControlTuples
    from ldap.controls.ppolicy import PasswordPolicyControl
    from ldap.ldapobject import SimpleLDAPObject

    class PolicyAwareConnection(SimpleLDAPObject):
        """Binds as a person ask for the password policy control, and keep what the server answered. An option
        libldap refuses (a CA file it cannot read) is an LDAP error, which django-auth-ldap reports (``ldap_error``)
        as a directory it cannot reach, not an exception of its own."""

        def set_option(self, option, invalue):
            set_option(super(), option, invalue)

        def simple_bind_s(self, who=None, cred=None, serverctrls=None, clientctrls=None):
            outcome = _current.get()
            if outcome is None or who == settings.LDAP_BIND_DN:
                return super().simple_bind_s(who, cred, serverctrls, clientctrls)
            try:
                result = super().simple_bind_s(who, cred, [*(serverctrls or []), PasswordPolicyControl()], clientctrls)
            except ldap.LDAPError as error:
                info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
                outcome.policy_error = _policy_error(DecodeControlTuples(info.get("ctrls") or []))
                if isinstance(error, ldap.INVALID_CREDENTIALS | ldap.UNWILLING_TO_PERFORM | ldap.CONSTRAINT_VIOLATION):
                    outcome.bind_error = error
                else:
                    outcome.other_error = error
                raise
            outcome.policy_error = _policy_error(result[3] if result and len(result) > 3 else [])
            outcome.bound = True
            return result

    def _policy_error(controls) -> int | None:
        found = [c for c in controls if getattr(c, "controlType", None) == PasswordPolicyControl.controlType]
        return getattr(found[0], "error", None) if found else None

    class PythonLDAP:
        """python-ldap as django-auth-ldap sees it, with our connections."""

        def __getattr__(self, name):
            return getattr(ldap, name)

        @staticmethod
        def initialize(uri, bytes_mode=False):
            return PolicyAwareConnection(uri, bytes_mode=bytes_mode)

    class DirectoryPasswordBackend(LDAPBackend):
        settings_prefix = "IDENTITY_LDAP_"  # nothing of ours is read from AUTH_LDAP_* settings
        _ldap = PythonLDAP()

        @property
        def default_settings(self):
            mapped = [name for name in settings.LDAP_ATTRIBUTES.values() if name]
            # Named, so that operational attributes (entryUUID) come with the entry too.
            attributes = list(dict.fromkeys([*mapped, settings.LDAP_DISABLED_ATTRIBUTE or "uid"]))
            search = LDAPSearch(
                settings.LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, settings.LDAP_USER_FILTER, attributes
            )
            return {
                "SERVER_URI": server_uri(),
                "BIND_DN": settings.LDAP_BIND_DN,
                "BIND_PASSWORD": settings.LDAP_BIND_PASSWORD,
                "START_TLS": settings.LDAP_START_TLS,
                "CONNECTION_OPTIONS": connection_options(),
                "USER_SEARCH": search,
                "USER_ATTRLIST": attributes,
                "ALWAYS_UPDATE_USER": False,
                "NO_NEW_USERS": True,
                "CACHE_TIMEOUT": 0,
            }

        def get_or_build_user(self, username, ldap_user):
            outcome = _current.get()
            outcome.attributes = {
                k: [v if isinstance(v, bytes) else v.encode() for v in vs] for k, vs in ldap_user.attrs.items()
            }
            person = outcome.person
            # The entry found must be this person: a reused institution ID in the directory is someone else. Only
            # a person the LDAP sync brought in carries the entry's stable ID; a SCIM person's is the SCIM id
            # (their directory, say Entra ID synced from this Active Directory, provisions them by institution ID),
            # so for them the entry the search found by institution ID is theirs.
            stable = text(outcome.attributes, settings.LDAP_ATTRIBUTES.get("directory_id") or "entryUUID")
            compared = person.source == person.Source.LDAP and person.directory_id and stable
            if compared and stable.lower() != person.directory_id.lower():
                outcome.bound = False
            return person, False

    def report(sender, context, exception, **kwargs):
        outcome = _current.get()
        if outcome is not None and outcome.other_error is None:
            outcome.other_error = exception

    ldap_error.connect(report, sender=DirectoryPasswordBackend, weak=False, dispatch_uid="identity.directory")
    _classes["backend"] = DirectoryPasswordBackend
    return DirectoryPasswordBackend
