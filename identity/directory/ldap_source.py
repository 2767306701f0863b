"""The LDAP / Active Directory reader the sync uses: every person under the synced bases, as DirectoryRecords.

One way and read-only: it binds as the bind account and searches, with RFC 2696 simple paged results (Active
Directory returns at most 1,000 entries per page; slapd's limits apply per page too), so a directory of any size
is read whole. Any failure partway (a server down, a timeout, a size or admin limit, a page refused) raises
:class:`DirectoryReadError`: the records read so far are incomplete, and the sync must then change nobody (DIR-03).

    reader = LDAPReader()
    records = list(reader.records())      # raises DirectoryReadError; reader.pages, reader.skipped afterwards
    entries = reader.entries()            # the same people as Entry tuples: what the sync reads (cheaper)
    one = LDAPReader().record_for("jdoe")  # None when the directory has no such person under the synced bases
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

from django.conf import settings

from identity.models import User

from .ldap_connection import DirectoryError, connect, describe, disabled_check, first_text, normal_dn
from .records import DirectoryRecord


class DirectoryReadError(DirectoryError):
    """Reading the directory failed partway: what was read is not the whole directory."""


FIELDS = (
    "institution_id",
    "first_name",
    "last_name",
    "email",
    "department",
    "mobile",
    "directory_id",
    "password_changed",
)
STABLE_ID = FIELDS.index("directory_id")
STAMP = FIELDS.index("password_changed")
# An entry without the password-changed attribute (LDAP_ATTRIBUTES' password_changed is set): stored as such, so
# that the stamp of its first password change is a change, not a first sight. No stamp of either directory
# (GeneralizedTime, Active Directory's integer) is spelled like it.
NO_STAMP = "none"


class Entry(NamedTuple):
    """One person as the reader found them: a :class:`DirectoryRecord`'s values without the record. The sync reads a
    whole directory of these: a tuple costs a fraction of a frozen dataclass, and most entries never need more."""

    dn: str
    institution_id: str
    first_name: str
    last_name: str
    email: str
    department: str
    mobile: str
    directory_id: str
    password_changed: str
    active: bool
    roles: frozenset[str] | None
    vpn_access: bool | None

    def record(self) -> DirectoryRecord:
        return DirectoryRecord(source=User.Source.LDAP, **self._asdict())


def _guid(found: list[bytes] | None) -> str:
    return first_text(found, "objectGUID")


class LDAPReader:
    """Reads people with paged searches. ``pages`` counts the pages the server sent (over all bases); ``skipped``
    lists ``(dn, reason, stable id or "")`` of entries that could not become a record (no institution ID or stable
    id)."""

    def __init__(self, *, page_size: int | None = None, bases: list[str] | None = None):
        self.page_size = page_size or settings.LDAP_PAGE_SIZE
        self.bases = bases or settings.LDAP_SYNC_BASES or [settings.LDAP_USER_SEARCH_BASE]
        self.pages = 0
        self.skipped: list[tuple[str, str, str]] = []
        self._roles = {normal_dn(dn): role for dn, role in settings.LDAP_ROLE_GROUPS.items()}
        self._vpn_group = normal_dn(settings.LDAP_VPN_GROUP) if settings.LDAP_VPN_GROUP else ""
        # Resolved once: a directory of 100,000 entries would otherwise read the settings a million times.
        # LDAP's attribute names are case-insensitive, so each entry's are looked up lowercased.
        names = {field: (settings.LDAP_ATTRIBUTES.get(field) or "").lower() for field in FIELDS}
        self._mapped: list[tuple[str, bool]] = [(name, name == "objectguid") for name in names.values()]
        self._needed = [
            (FIELDS.index(needed), settings.LDAP_ATTRIBUTES.get(needed) or needed)
            for needed in ("institution_id", "directory_id")
        ]
        self._member_of = settings.LDAP_MEMBER_OF_ATTRIBUTE.lower()
        self._stamped = bool(names["password_changed"])
        self._disabled = disabled_check()
        self._spellings: dict[tuple[str, ...], tuple[list[tuple[str | None, bool]], str | None]] = {}

    def records(self) -> Iterator[DirectoryRecord]:
        """Every person under the bases (optionally only members of LDAP_SYNC_GROUPS). Raises DirectoryReadError."""
        for entry in self._read(self._filter()):
            yield entry.record()

    def entries(self) -> Iterator[Entry]:
        """:meth:`records`' people as :class:`Entry` tuples. Raises DirectoryReadError."""
        yield from self._read(self._filter())

    def record_for(self, institution_id: str) -> DirectoryRecord | None:
        """The one person with this institution ID under the synced bases, or None. Raises DirectoryReadError."""
        from ldap.filter import escape_filter_chars

        attribute = settings.LDAP_ATTRIBUTES["institution_id"]
        found = list(self._read(f"(&{self._filter()}({attribute}={escape_filter_chars(institution_id)}))"))
        if len(found) > 1:
            raise DirectoryReadError(f"{len(found)} directory entries have the institution ID {institution_id!r}")
        return found[0].record() if found else None

    def _filter(self) -> str:
        from ldap.filter import escape_filter_chars

        people = settings.LDAP_SYNC_FILTER
        if not people.startswith("("):
            people = f"({people})"
        if not settings.LDAP_SYNC_GROUPS:
            return people
        member_of = settings.LDAP_MEMBER_OF_ATTRIBUTE
        groups = "".join(f"({member_of}={escape_filter_chars(dn)})" for dn in settings.LDAP_SYNC_GROUPS)
        return f"(&{people}(|{groups}))"

    def _attributes(self) -> list[str]:
        mapped = [settings.LDAP_ATTRIBUTES[field] for field in FIELDS if settings.LDAP_ATTRIBUTES.get(field)]
        # Group memberships only when groups are mapped: LDAP_SYNC_GROUPS is the server's to filter on, and every
        # value asked for is sent, decoded and built into objects for every entry.
        extra = [settings.LDAP_MEMBER_OF_ATTRIBUTE] if self._roles or self._vpn_group else []
        if settings.LDAP_DISABLED_ATTRIBUTE:
            extra.append(settings.LDAP_DISABLED_ATTRIBUTE)
        return list(dict.fromkeys(mapped + extra))

    def _read(self, search_filter: str) -> Iterator[Entry]:
        import ldap

        try:
            conn = connect()
        except DirectoryError as error:
            raise DirectoryReadError(str(error)) from error
        try:
            for base in self.bases:
                for dn, attributes in self._paged(conn, base, search_filter):
                    entry = self._record(dn, attributes)
                    if entry is not None:
                        yield entry
        except ldap.LDAPError as error:
            raise DirectoryReadError(describe(error)) from error
        finally:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()

    def _paged(self, conn, base: str, search_filter: str):
        """RFC 2696: ask for a page, follow the server's cookie until it sends an empty one.

        The next page is asked for as soon as a page's cookie is in, before its entries are handed on: the server
        reads the next page while this process turns the last one into entries and writes them on.
        """
        import ldap
        from ldap.controls import SimplePagedResultsControl

        control = SimplePagedResultsControl(criticality=True, size=self.page_size, cookie="")
        attributes = self._attributes()
        msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, search_filter, attributes, serverctrls=[control])
        while msgid is not None:
            _, entries, _, response_controls = conn.result3(msgid, timeout=settings.LDAP_TIMEOUT_SECONDS)
            self.pages += 1
            paged = [c for c in response_controls if c.controlType == SimplePagedResultsControl.controlType]
            if not paged:
                raise DirectoryReadError(f"the server sent a page of {base} without the paged results control")
            msgid = None
            if paged[0].cookie:
                control.cookie = paged[0].cookie
                msgid = conn.search_ext(base, ldap.SCOPE_SUBTREE, search_filter, attributes, serverctrls=[control])
            # Search references (Active Directory's referrals to other domains) come without a DN.
            yield from ((dn, attributes) for dn, attributes in entries if dn)

    def _spelled(self, names: tuple[str, ...]) -> tuple[list[tuple[str | None, bool]], str | None]:
        """For an entry whose attribute names are ``names`` (as the server spells them: LDAP's names are
        case-insensitive), each mapped field's name there, and memberOf's. Learnt once per set of names."""
        spelled = self._spellings.get(names)
        if spelled is None:
            server = {name.lower(): name for name in names}
            spelled = ([(server.get(name), guid) for name, guid in self._mapped], server.get(self._member_of))
            if len(self._spellings) < 256:  # a few sets in a directory: entries without this or that attribute
                self._spellings[names] = spelled
        return spelled

    def _record(self, dn: str, attributes: dict[str, list[bytes]]) -> Entry | None:
        mapped, member_of = self._spelled(tuple(attributes))
        get = attributes.get
        # Inline rather than a function per value: eight values an entry, a directory of them per run.
        texts = [
            (_guid(found) if guid else found[0].decode("utf-8", "replace").strip())
            if name is not None and (found := get(name))
            else ""
            for name, guid in mapped
        ]
        for index, name in self._needed:
            if not texts[index]:
                self.skipped.append((dn, f"no {name}", texts[STABLE_ID]))
                return None
        if self._stamped and not texts[STAMP]:
            texts[STAMP] = NO_STAMP
        roles, vpn_access = None, None
        if self._roles or self._vpn_group:  # group DNs matter only when groups are mapped
            groups = {normal_dn(v.decode("utf-8", "replace")) for v in ((get(member_of) or ()) if member_of else ())}
            if self._roles:
                roles = frozenset(role for group, role in self._roles.items() if group in groups)
            if self._vpn_group:
                vpn_access = self._vpn_group in groups
        return Entry._make((dn, *texts, not self._disabled(attributes), roles, vpn_access))
