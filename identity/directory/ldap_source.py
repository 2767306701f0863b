"""The LDAP / Active Directory reader the sync uses: every person under the synced bases, as DirectoryRecords.

One way and read-only: it binds as the bind account and searches, with RFC 2696 simple paged results (Active
Directory returns at most 1,000 entries per page; slapd's limits apply per page too), so a directory of any size
is read whole. Any failure partway (a server down, a timeout, a size or admin limit, a page refused) raises
:class:`DirectoryReadError`: the records read so far are incomplete, and the sync must then change nobody (DIR-03).

    reader = LDAPReader()
    records = list(reader.records())      # raises DirectoryReadError; reader.pages, reader.skipped afterwards
    one = LDAPReader().record_for("jdoe")  # None when the directory has no such person under the synced bases
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.conf import settings

from identity.models import User

from .ldap_connection import DirectoryError, connect, describe, disabled_check, first_text, normal_dn
from .records import DirectoryRecord


class DirectoryReadError(DirectoryError):
    """Reading the directory failed partway: what was read is not the whole directory."""


FIELDS = ("institution_id", "first_name", "last_name", "email", "department", "mobile", "directory_id")


class LDAPReader:
    """Reads people with paged searches. ``pages`` counts the pages the server sent (over all bases); ``skipped``
    lists ``(dn, reason)`` of entries that could not become a record (no institution ID or stable id)."""

    def __init__(self, *, page_size: int | None = None, bases: list[str] | None = None):
        self.page_size = page_size or settings.LDAP_PAGE_SIZE
        self.bases = bases or settings.LDAP_SYNC_BASES or [settings.LDAP_USER_SEARCH_BASE]
        self.pages = 0
        self.skipped: list[tuple[str, str]] = []
        self._roles = {normal_dn(dn): role for dn, role in settings.LDAP_ROLE_GROUPS.items()}
        self._vpn_group = normal_dn(settings.LDAP_VPN_GROUP) if settings.LDAP_VPN_GROUP else ""
        # Resolved once: a directory of 100,000 entries would otherwise read the settings a million times.
        # LDAP's attribute names are case-insensitive, so each entry's are looked up lowercased.
        self._mapped = [
            (field, settings.LDAP_ATTRIBUTES[field].lower()) for field in FIELDS if settings.LDAP_ATTRIBUTES.get(field)
        ]
        self._needed = {
            needed: settings.LDAP_ATTRIBUTES.get(needed) or needed for needed in ("institution_id", "directory_id")
        }
        self._member_of = settings.LDAP_MEMBER_OF_ATTRIBUTE.lower()
        self._disabled = disabled_check()

    def records(self) -> Iterator[DirectoryRecord]:
        """Every person under the bases (optionally only members of LDAP_SYNC_GROUPS). Raises DirectoryReadError."""
        yield from self._read(self._filter())

    def record_for(self, institution_id: str) -> DirectoryRecord | None:
        """The one person with this institution ID under the synced bases, or None. Raises DirectoryReadError."""
        from ldap.filter import escape_filter_chars

        attribute = settings.LDAP_ATTRIBUTES["institution_id"]
        found = list(self._read(f"(&{self._filter()}({attribute}={escape_filter_chars(institution_id)}))"))
        if len(found) > 1:
            raise DirectoryReadError(f"{len(found)} directory entries have the institution ID {institution_id!r}")
        return found[0] if found else None

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
        extra = [settings.LDAP_MEMBER_OF_ATTRIBUTE]
        if settings.LDAP_DISABLED_ATTRIBUTE:
            extra.append(settings.LDAP_DISABLED_ATTRIBUTE)
        return list(dict.fromkeys(mapped + extra))

    def _read(self, search_filter: str) -> Iterator[DirectoryRecord]:
        import ldap

        try:
            conn = connect()
        except DirectoryError as error:
            raise DirectoryReadError(str(error)) from error
        try:
            for base in self.bases:
                for dn, attributes in self._paged(conn, base, search_filter):
                    record = self._record(dn, attributes)
                    if record is not None:
                        yield record
        except ldap.LDAPError as error:
            raise DirectoryReadError(describe(error)) from error
        finally:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()

    def _paged(self, conn, base: str, search_filter: str):
        """RFC 2696: ask for a page, follow the server's cookie until it sends an empty one.

        The next page is asked for as soon as a page's cookie is in, before its entries are handed on: the server
        reads the next page while this process turns the last one into records and compares them.
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

    def _record(self, dn: str, attributes: dict[str, list[bytes]]) -> DirectoryRecord | None:
        attributes = {name.lower(): found for name, found in attributes.items()}
        mapped = {field: first_text(attributes.get(name), name) for field, name in self._mapped}
        for needed, name in self._needed.items():
            if not mapped.get(needed):
                self.skipped.append((dn, f"no {name}"))
                return None
        groups = set()
        if self._roles or self._vpn_group:  # group DNs matter only when groups are mapped
            groups = {normal_dn(v.decode("utf-8", "replace")) for v in attributes.get(self._member_of, ())}
        return DirectoryRecord(
            source=User.Source.LDAP,
            dn=dn,
            active=not self._disabled(attributes),
            roles=frozenset(role for group, role in self._roles.items() if group in groups) if self._roles else None,
            vpn_access=(self._vpn_group in groups) if self._vpn_group else None,
            **mapped,
        )
