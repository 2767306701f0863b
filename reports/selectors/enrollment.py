"""The enrollment report: one row per person, from one SQL statement (``enrollment_cte``) the dashboard shares."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from devices.models import Registration, WorkingRegistration
from identity.models import User
from identity.selectors import STAFF_GROUPS

from ..columns import BOOLEAN, DATETIME, INTEGER, TEXT, Column
from .common import Filters, start_of, stream

# Strongest factor in use, strongest first, by the ranks of the rule's view (``WorkingRegistration.Strength``). The top
# rank is every WebAuthn credential; WA-04 tells them apart by how they are held: a security key bound to its device,
# a passkey kept on this device only, and one that may be synced to the person's other devices (the view's
# ``backup_eligible``; a credential registered as a key that may be synced, a phone's or a password manager's
# passkey offered in a key's place, is counted there too). A person holding several counts under the strongest.
_RANK = WorkingRegistration.Strength
FACTOR_STRENGTH = {
    "security_key": _RANK.SECURITY_KEY,
    "passkey_device_bound": _RANK.SECURITY_KEY,
    "passkey_synced": _RANK.SECURITY_KEY,
    "authenticator_app": _RANK.APP,
    "phone": _RANK.PHONE,
    "none": 0,
}
FACTOR_LABELS = {
    "security_key": "Security key",
    "passkey_device_bound": "Passkey, this device only",
    "passkey_synced": "Passkey, synced",
    "authenticator_app": "Authenticator app",
    "phone": "Text or voice call",
    "none": "None",
}
# The same, as assurance (NIST SP 800-63B-4; WA-05 in docs/security.md): a WebAuthn credential, the top rank, is the
# one phishing-resistant factor (``phishing_resistant`` on the device models: only ``SecurityKeyDevice``).
ASSURANCE_LABELS = {
    "security_key": "Security keys",
    "passkey_device_bound": "Passkeys, this device only",
    "passkey_synced": "Passkeys, synced",
    "authenticator_app": "Authenticator app",
    "phone": "Text or call only",
    "none": "None",
}
PHISHING_RESISTANT = tuple(name for name, rank in FACTOR_STRENGTH.items() if rank == _RANK.SECURITY_KEY)
KIND_COLUMNS: dict[str, str] = {
    Registration.Kind.MOBILE: "mobile_devices",
    Registration.Kind.TABLET: "tablet_devices",
    Registration.Kind.LANDLINE: "landline_devices",
    Registration.Kind.SECURITY_KEY: "security_keys",
    Registration.Kind.PASSKEY: "passkeys",
}

ENROLLMENT_COLUMNS: tuple[Column, ...] = (
    Column("institution_id", "Institution ID", TEXT, "The person's institution ID (their sign-in name).", masked=False),
    Column("name", "Name", TEXT, "First and last name."),
    Column("department", "Department", TEXT, "Department from the person's record."),
    Column(
        "vpn_access",
        "VPN access",
        TEXT,
        "None, requested, approved or revoked.",
        masked=False,
        words=dict(User.VpnAccess.choices).get,
    ),
    Column("enrolled", "Enrolled", BOOLEAN, "Has at least one device in use whose second factor works now."),
    Column("mobile_devices", "Mobile phones", INTEGER, "Mobile phones in use with a working factor."),
    Column("tablet_devices", "Tablets", INTEGER, "Tablets in use with a working factor."),
    Column("landline_devices", "Landlines", INTEGER, "Landlines in use with a working factor."),
    Column("security_keys", "Security keys", INTEGER, "Security keys in use with a working factor."),
    Column("passkeys", "Passkeys", INTEGER, "Passkeys in use, synced or kept on one device."),
    Column("backup_codes_left", "Backup codes left", INTEGER, "Unused codes of the current backup-code set."),
    Column(
        "strongest_factor",
        "Strongest factor",
        TEXT,
        "A security key bound to its device, above a passkey on this device only, above a passkey (or a key) that "
        "may be synced to other devices, above the authenticator app, above a code by text or voice call; none when "
        "not enrolled.",
        masked=False,
        words=FACTOR_LABELS.get,
    ),
    Column("first_enrolled_at", "First enrolled", DATETIME, "When the person's first device was activated."),
    Column("last_used_at", "Last second-factor use", DATETIME, "The latest successful use of any of their factors."),
    Column("locked", "Locked", BOOLEAN, "Locked out after too many wrong codes, now."),
    Column(
        "setup_held",
        "Setup held",
        BOOLEAN,
        "Reported their last factor lost and has none now: only the help desk's unlock opens a new setup.",
    ),
)

# How the report names each kind of device wherever it counts them (totals, dashboard, filter): its column's header.
_HEADERS = {column.key: column.header for column in ENROLLMENT_COLUMNS}
KIND_HEADERS = {kind: _HEADERS[key] for kind, key in KIND_COLUMNS.items()}

# "Enrolled" is the rule's view (devices.models.WorkingRegistration): a person with a row there, and only they.
_ENROLLMENT_CTE = """
WITH per_user AS (
    SELECT user_id, MAX(strength) AS strength, {kind_counts},
           SUM(CASE WHEN kind = '{security_key}' AND NOT backup_eligible THEN 1 ELSE 0 END) AS bound_keys,
           SUM(CASE WHEN kind = '{passkey}' AND NOT backup_eligible THEN 1 ELSE 0 END) AS bound_passkeys
    FROM {working} GROUP BY user_id
), first_enrolled AS (
    SELECT user_id, MIN(activated_at) AS at FROM devices_registration
    WHERE activated_at IS NOT NULL GROUP BY user_id
), used AS (
    SELECT user_id, MAX(last_used_at) AS at FROM (
        SELECT user_id, last_used_at FROM devices_authenticatorappdevice WHERE last_used_at IS NOT NULL
        UNION ALL SELECT user_id, last_used_at FROM devices_phonedevice WHERE last_used_at IS NOT NULL
        UNION ALL SELECT user_id, last_used_at FROM devices_securitykeydevice WHERE last_used_at IS NOT NULL
        UNION ALL SELECT user_id, last_used_at FROM devices_backupcodedevice WHERE last_used_at IS NOT NULL
    ) stamps GROUP BY user_id
), backup AS (
    SELECT d.user_id, COUNT(*) AS left_count
    FROM devices_backupcodedevice d JOIN devices_backupcode c ON c.device_id = d.id
    WHERE d.confirmed AND c.used_at IS NULL GROUP BY d.user_id
), report AS (
    SELECT u.username AS institution_id,
           TRIM(u.first_name || ' ' || u.last_name) AS name,
           u.department AS department,
           u.vpn_access AS vpn_access,
           COALESCE(pu.strength, 0) > 0 AS enrolled,
           {kind_columns},
           COALESCE(b.left_count, 0) AS backup_codes_left,
           CASE COALESCE(pu.strength, 0)
               WHEN {webauthn} THEN CASE WHEN pu.bound_keys > 0 THEN 'security_key'
                                         WHEN pu.bound_passkeys > 0 THEN 'passkey_device_bound'
                                         ELSE 'passkey_synced' END
               {strength_names}
           END AS strongest_factor,
           fe.at AS first_enrolled_at,
           us.at AS last_used_at,
           (u.locked_at IS NOT NULL AND (u.locked_until IS NULL OR u.locked_until > %s)) AS locked,
           (u.lost_last_factor_at IS NOT NULL AND COALESCE(pu.strength, 0) = 0) AS setup_held,
           (u.is_staff OR u.is_superuser OR EXISTS (
                SELECT 1 FROM {user_groups} ug JOIN {groups} g ON g.id = ug.group_id
                WHERE ug.user_id = u.id AND g.name IN ({staff_groups})
           )) AS staff
    FROM identity_user u
    LEFT JOIN per_user pu ON pu.user_id = u.id
    LEFT JOIN first_enrolled fe ON fe.user_id = u.id
    LEFT JOIN used us ON us.user_id = u.id
    LEFT JOIN backup b ON b.user_id = u.id
    WHERE u.is_active
)
"""


def enrollment_cte() -> str:
    # Built only from the constants above, never from input: the filters' values go in as parameters.
    return _ENROLLMENT_CTE.format(
        working=WorkingRegistration._meta.db_table,
        kind_counts=", ".join(
            f"SUM(CASE WHEN kind = '{kind}' THEN 1 ELSE 0 END) AS {name}" for kind, name in KIND_COLUMNS.items()
        ),
        kind_columns=", ".join(f"COALESCE(pu.{name}, 0) AS {name}" for name in KIND_COLUMNS.values()),
        security_key=Registration.Kind.SECURITY_KEY.value,
        passkey=Registration.Kind.PASSKEY.value,
        webauthn=_RANK.SECURITY_KEY.value,
        strength_names=" ".join(
            f"WHEN {strength} THEN '{name}'"
            for name, strength in FACTOR_STRENGTH.items()
            if strength and name not in PHISHING_RESISTANT
        )
        + " ELSE 'none'",
        # identity.selectors.is_staff_account, in SQL: the staff flag, superuser, or a staff group.
        user_groups=User.groups.through._meta.db_table,
        groups=Group._meta.db_table,
        staff_groups=", ".join("'" + name.replace("'", "''") + "'" for name in STAFF_GROUPS),
    )


@dataclass(frozen=True)
class EnrollmentFilters(Filters):
    """What an auditor narrowed the enrollment report to; every field optional."""

    department: str = ""
    vpn_access: str = ""
    enrolled: bool | None = None
    has_kind: str = ""
    strongest_factor: str = ""
    enrolled_from: date | None = None
    enrolled_to: date | None = None
    last_used_before: date | None = None
    staff: bool | None = None


def _where(filters: EnrollmentFilters) -> tuple[str, list]:
    clauses: list[str] = []
    params: list = []
    if filters.department:
        clauses.append("department = %s")
        params.append(filters.department)
    if filters.vpn_access:
        clauses.append("vpn_access = %s")
        params.append(filters.vpn_access)
    if filters.enrolled is not None:
        clauses.append("enrolled" if filters.enrolled else "NOT enrolled")
    if filters.has_kind:
        clauses.append(f"{KIND_COLUMNS[filters.has_kind]} > 0")
    if filters.strongest_factor:
        clauses.append("strongest_factor = %s")
        params.append(filters.strongest_factor)
    if filters.staff is not None:
        clauses.append("staff" if filters.staff else "NOT staff")
    if filters.enrolled_from:
        clauses.append("first_enrolled_at >= %s")
        params.append(start_of(filters.enrolled_from))
    if filters.enrolled_to:
        clauses.append("first_enrolled_at < %s")
        params.append(start_of(filters.enrolled_to + timedelta(days=1)))
    if filters.last_used_before:
        # Stale: enrolled, and no factor used since that day (never used counts as stale too).
        clauses.append("enrolled AND (last_used_at IS NULL OR last_used_at < %s)")
        params.append(start_of(filters.last_used_before))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass
class EnrollmentTotals:
    people: int = 0
    enrolled: int = 0
    vpn_approved: int = 0
    vpn_approved_not_enrolled: int = 0
    locked: int = 0
    setup_held: int = 0
    devices: dict = field(default_factory=dict)
    strongest: dict = field(default_factory=dict)
    # The staff among them (help desk, auditors, superusers, the staff flag), and their strongest factor: how far the
    # institution is from "staff phishing-resistant" (WA-05).
    staff: int = 0
    staff_strongest: dict = field(default_factory=dict)

    @property
    def assurance(self) -> list[tuple[str, str, int, int]]:
        """(key, words, people, staff) per assurance level, strongest first."""
        return [
            (name, ASSURANCE_LABELS[name], self.strongest.get(name, 0), self.staff_strongest.get(name, 0))
            for name in ASSURANCE_LABELS
        ]

    @property
    def devices_by_kind(self) -> list[tuple[str, int]]:
        """(words, devices in use) per kind of device."""
        return [(KIND_HEADERS[kind], count) for kind, count in self.devices.items()]

    @property
    def phishing_resistant(self) -> int:
        """People whose strongest factor is phishing-resistant: security keys and passkeys of either kind."""
        return sum(self.strongest.get(name, 0) for name in PHISHING_RESISTANT)

    @property
    def staff_not_phishing_resistant(self) -> int:
        return self.staff - sum(self.staff_strongest.get(name, 0) for name in PHISHING_RESISTANT)

    @property
    def not_enrolled(self) -> int:
        return self.people - self.enrolled

    @property
    def enrolled_percent(self) -> float:
        return 100.0 * self.enrolled / self.people if self.people else 0.0


def enrollment_totals(filters: EnrollmentFilters) -> EnrollmentTotals:
    """Counts over the filtered set, in one query."""
    where, params = _where(filters)
    strongest = [name for name in FACTOR_STRENGTH]
    sums = [
        "COUNT(*)",
        "SUM(CASE WHEN enrolled THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN vpn_access = 'approved' THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN vpn_access = 'approved' AND NOT enrolled THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN locked THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN setup_held THEN 1 ELSE 0 END)",
        *(f"SUM({name})" for name in KIND_COLUMNS.values()),
        *(f"SUM(CASE WHEN strongest_factor = '{name}' THEN 1 ELSE 0 END)" for name in strongest),
        "SUM(CASE WHEN staff THEN 1 ELSE 0 END)",
        *(f"SUM(CASE WHEN staff AND strongest_factor = '{name}' THEN 1 ELSE 0 END)" for name in strongest),
    ]
    sql = enrollment_cte() + f"SELECT {', '.join(sums)} FROM report{where}"  # noqa: S608 (constants; values are params)
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.now(), *params])
        row = [int(v or 0) for v in cursor.fetchone()]
    kinds = list(KIND_COLUMNS)
    staff_at = 6 + len(kinds) + len(strongest)
    return EnrollmentTotals(
        people=row[0],
        enrolled=row[1],
        vpn_approved=row[2],
        vpn_approved_not_enrolled=row[3],
        locked=row[4],
        setup_held=row[5],
        devices={kind: row[6 + i] for i, kind in enumerate(kinds)},
        strongest={name: row[6 + len(kinds) + i] for i, name in enumerate(strongest)},
        staff=row[staff_at],
        staff_strongest={name: row[staff_at + 1 + i] for i, name in enumerate(strongest)},
    )


def enrollment_sql(filters: EnrollmentFilters, *, limit: int | None = None, offset: int = 0) -> tuple[str, list]:
    """The report's one SELECT and its parameters (the benchmark hands the same statement to ``COPY``)."""
    where, params = _where(filters)
    columns = ", ".join(column.key for column in ENROLLMENT_COLUMNS)
    sql = enrollment_cte() + f"SELECT {columns} FROM report{where} ORDER BY institution_id"  # noqa: S608 (as above)
    if limit is not None:
        sql += " LIMIT %s OFFSET %s"
        params = [*params, limit, offset]
    return sql, [timezone.now(), *params]


def enrollment_rows(filters: EnrollmentFilters, *, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
    """The report's rows, typed as :data:`ENROLLMENT_COLUMNS`, streamed (one query, a server-side cursor)."""
    sql, params = enrollment_sql(filters, limit=limit, offset=offset)
    yield from stream(sql, params, ENROLLMENT_COLUMNS)


def departments() -> list[str]:
    return list(
        User.objects.exclude(department="").order_by("department").values_list("department", flat=True).distinct()
    )
