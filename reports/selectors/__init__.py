"""Read-only queries behind the auditors' reports.

Each report is one SQL statement with its aggregates done by the database, so
the number of queries does not grow with the number of people, and its rows are
streamed through a server-side cursor on PostgreSQL, so memory does not either.

One module per report (:mod:`.enrollment`, :mod:`.audit`, :mod:`.desk`, :mod:`.directory`, :mod:`.campaigns`) and what they share (:mod:`.common`);
every name is importable from ``reports.selectors``.
"""

from .audit import (
    ACTION_GROUP_LABELS,
    ACTION_GROUPS,
    AUDIT_COLUMNS,
    VERIFIED_HEAD_KEY,
    AuditFilters,
    ChainStatus,
    action_group,
    audit_chain_status,
    audit_count,
    audit_page_row,
    audit_rows,
    events_in_time_range,
)
from .campaigns import (
    CAMPAIGN_PEOPLE_COLUMNS,
    CampaignPeopleFilters,
    campaign_people_count,
    campaign_people_rows,
    campaign_people_sql,
    campaign_people_summary,
)
from .common import (
    FETCH_SIZE,
    Filters,
    start_of,
    stream,
)
from .desk import (
    DESK_ACTION_PREFIX,
    DESK_COLUMNS,
    EARLIER_DESK_ACTIONS,
    DeskFilters,
    desk_activity,
    desk_page_row,
    desk_rows,
    desk_summary,
)
from .directory import SYNC_COLUMNS, SyncFilters, sync_count, sync_rows, sync_summary
from .enrollment import (
    ASSURANCE_LABELS,
    ENROLLMENT_COLUMNS,
    FACTOR_LABELS,
    FACTOR_STRENGTH,
    KIND_COLUMNS,
    KIND_HEADERS,
    PHISHING_RESISTANT,
    EnrollmentFilters,
    EnrollmentTotals,
    departments,
    enrollment_cte,
    enrollment_rows,
    enrollment_sql,
    enrollment_totals,
)

__all__ = [
    "CAMPAIGN_PEOPLE_COLUMNS",
    "CampaignPeopleFilters",
    "campaign_people_count",
    "campaign_people_rows",
    "campaign_people_sql",
    "campaign_people_summary",
    "ACTION_GROUPS",
    "ACTION_GROUP_LABELS",
    "AUDIT_COLUMNS",
    "AuditFilters",
    "ChainStatus",
    "VERIFIED_HEAD_KEY",
    "DESK_ACTION_PREFIX",
    "DESK_COLUMNS",
    "DeskFilters",
    "EARLIER_DESK_ACTIONS",
    "ENROLLMENT_COLUMNS",
    "EnrollmentFilters",
    "EnrollmentTotals",
    "ASSURANCE_LABELS",
    "FACTOR_LABELS",
    "FACTOR_STRENGTH",
    "FETCH_SIZE",
    "Filters",
    "KIND_COLUMNS",
    "KIND_HEADERS",
    "PHISHING_RESISTANT",
    "SYNC_COLUMNS",
    "SyncFilters",
    "action_group",
    "audit_chain_status",
    "audit_count",
    "audit_page_row",
    "audit_rows",
    "departments",
    "desk_activity",
    "desk_page_row",
    "desk_rows",
    "desk_summary",
    "enrollment_cte",
    "enrollment_rows",
    "enrollment_sql",
    "enrollment_totals",
    "events_in_time_range",
    "start_of",
    "stream",
    "sync_count",
    "sync_rows",
    "sync_summary",
]
