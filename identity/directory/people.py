"""Joiners, movers and leavers: the one door through which a directory changes a person (LDAP sync and SCIM alike).

The contract (each function one whole state change, audited, in one transaction; ``origin`` goes into every audit
event's details, e.g. ``{"sync_run": 12}`` or ``{"scim_client": 3}``):

- ``apply_record(record, *, origin, actor=None, ip=None) -> str``: creates (a joiner: no local password, no device),
  updates (a mover: old and new values audited; an email change notifies both addresses and voids links sent to the
  old one, DIR-06), deactivates (``record.active`` False) or reactivates the person ``record`` names; returns one of
  ``"created" | "updated" | "deactivated" | "reactivated" | "unchanged"``. Raises ``DirectoryConflict`` when a local
  account already has the institution ID (only ``link_local_account`` joins them).
- ``deactivate_person(user, *, reason, origin, actor=None, ip=None) -> bool``: the one leaver service (DIR-02).
- ``reactivate_person(user, *, origin, actor=None, ip=None) -> bool``.
- ``retire_devices_of_leavers(*, now=None) -> int``: devices of people deactivated longer than DIRECTORY_RETAIN_DAYS.
- ``link_local_account(user, record, *, actor) -> User``: a superuser's explicit link of an existing local account.
"""
