"""What a directory says about one person: the one shape the LDAP sync and SCIM hand to ``people``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DirectoryRecord:
    """One person as the directory describes them.

    ``roles`` and ``vpn_access`` are None when the directory does not manage them (no group mapping configured, or a
    SCIM request that did not mention them): then what the person has here is left alone.
    """

    source: str  # identity.models.User.Source.LDAP or .SCIM
    directory_id: str  # the stable identifier: objectGUID, entryUUID, a SCIM resource's id/externalId
    institution_id: str  # becomes User.username
    dn: str = ""
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    department: str = ""
    external_id: str = ""  # a SCIM client's externalId, kept and answered back as given
    mobile: str = ""  # offered in the wizard as "Is this your number?"; never a factor until proven with a code
    active: bool = (
        True  # False: disabled in the directory (AD's ACCOUNTDISABLE bit, a configured attribute, SCIM active)
    )
    roles: frozenset[str] | None = None  # allow-listed role (group) names: "Help desk", "Auditor" (DIR-04)
    vpn_access: bool | None = None  # member of the VPN group
    # The directory's password-changed stamp (LDAP_ATTRIBUTES' password_changed; ldap_source.NO_STAMP for an entry
    # without one); "" when the directory says nothing about passwords (the setting empty, SCIM).
    password_changed: str = ""
