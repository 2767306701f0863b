"""Connecting to the directory, and reading what one entry says: shared by the password backend and the reader.

python-ldap is an optional extra (requirements-ldap.txt), so it is imported inside the functions: a site without a
directory never loads it.
"""

from __future__ import annotations

import functools
import uuid

from django.conf import settings


class DirectoryError(Exception):
    """The directory could not be asked (down, timeout, refused TLS, a failed search)."""


def connection_options() -> dict:
    """python-ldap options for every connection: TLS with the server's certificate verified (DIR-01), timeouts,
    no referral chasing (Active Directory's referrals would be followed with our credentials)."""
    import ldap

    options = {
        ldap.OPT_PROTOCOL_VERSION: ldap.VERSION3,
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: settings.LDAP_TIMEOUT_SECONDS,
        ldap.OPT_TIMEOUT: settings.LDAP_TIMEOUT_SECONDS,
        ldap.OPT_X_TLS_REQUIRE_CERT: ldap.OPT_X_TLS_DEMAND,
    }
    if settings.LDAP_CA_CERT_FILE:
        options[ldap.OPT_X_TLS_CACERTFILE] = settings.LDAP_CA_CERT_FILE
    # A new TLS context last, so that the options above apply to it.
    options[ldap.OPT_X_TLS_NEWCTX] = 0
    return options


def set_option(conn, option: int, value) -> None:
    """``conn.set_option``, with libldap's refusal of an option as an LDAP error (``CONNECT_ERROR``) like any other:
    a new TLS context it cannot build (LDAP_CA_CERT_FILE missing or unreadable) is refused with python-ldap's
    ``ValueError("option error")``, which no caller would take for a directory it cannot use."""
    import ldap

    try:
        conn.set_option(option, value)
    except ValueError as error:
        words = "the TLS settings were refused: is LDAP_CA_CERT_FILE a CA certificate this process can read?"
        raise ldap.CONNECT_ERROR({"desc": "Connect error", "info": words}) from error


def server_uri() -> str:
    """The servers as one libldap URI list: it connects to the first one it can reach, in this order."""
    return " ".join(settings.LDAP_SERVER_URIS)


def connect(*, bind: bool = True):
    """A connection to the first reachable server (StartTLS when configured), bound as the bind account.

    Raises :class:`DirectoryError` when no server answers or the bind account is refused.
    """
    import ldap

    try:
        conn = ldap.initialize(server_uri(), bytes_mode=False)
        for option, value in connection_options().items():
            set_option(conn, option, value)
        if settings.LDAP_START_TLS:
            conn.start_tls_s()
        if bind:
            conn.simple_bind_s(settings.LDAP_BIND_DN, settings.LDAP_BIND_PASSWORD)
    except ldap.LDAPError as error:
        raise DirectoryError(describe(error)) from error
    return conn


def describe(error) -> str:
    """An LDAP error in words for logs and audit details: its name and the server's diagnostic, never a password."""
    info = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
    parts = [type(error).__name__, info.get("desc", ""), info.get("info", "")]
    return ": ".join(str(part) for part in parts if part)


def values(attributes: dict[str, list[bytes]], name: str) -> list[bytes]:
    """An attribute's values; attribute names are case-insensitive in LDAP."""
    if name in attributes:
        return attributes[name]
    lowered = name.lower()
    return next((v for key, v in attributes.items() if key.lower() == lowered), [])


def text(attributes: dict[str, list[bytes]], name: str) -> str:
    """An attribute's first value as text ("" when absent). Active Directory's objectGUID is binary: its GUID form."""
    return first_text(values(attributes, name), name)


def first_text(found: list[bytes] | None, name: str) -> str:
    """The first of an attribute's values ``found`` as text ("" when there is none); objectGUID in its GUID form."""
    if not found:
        return ""
    if name.lower() == "objectguid":
        return str(uuid.UUID(bytes_le=found[0]))
    return found[0].decode("utf-8", "replace").strip()


def is_disabled(attributes: dict[str, list[bytes]]) -> bool:
    """Disabled in the directory: userAccountControl's ACCOUNTDISABLE bit (0x2) in Active Directory, else the
    configured attribute holding one of LDAP_DISABLED_VALUES (or present at all, when none are listed)."""
    return disabled_check()(attributes)


def disabled_check():
    """:func:`is_disabled` with the settings read once, for an entry whose attribute names are lowercased or as
    configured (the sync's reader calls it for every entry)."""
    name = settings.LDAP_DISABLED_ATTRIBUTE
    if not name:
        return lambda attributes: False
    lowered = name.lower()
    wanted = {value.lower() for value in settings.LDAP_DISABLED_VALUES}

    def decide(found: list[bytes]) -> bool:
        texts = [value.decode("utf-8", "replace").strip() for value in found]
        if lowered == "useraccountcontrol":
            return any(value.lstrip("-").isdigit() and int(value) & 0x2 for value in texts)
        if wanted:
            return any(value.lower() in wanted for value in texts)
        return True

    # A directory holds a few distinct values here ("512", "514", "66048"): each decided once per check.
    decided: dict[tuple[bytes, ...], bool] = {}

    def check(attributes: dict[str, list[bytes]]) -> bool:
        found = attributes.get(lowered)
        if found is None:
            found = values(attributes, name)
        if not found:
            return False
        key = tuple(found)
        answer = decided.get(key)
        if answer is None:
            answer = decide(found)
            if len(decided) < 1024:
                decided[key] = answer
        return answer

    return check


@functools.lru_cache(maxsize=4096)
def normal_dn(dn: str) -> str:
    """A DN compared as LDAP does for our purposes: case and spacing around separators do not matter. Cached: the
    sync reads the same few group DNs in every person's memberOf."""
    import ldap.dn

    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()
