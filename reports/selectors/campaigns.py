"""The people of a campaign still to enroll: the enrollment report's rows for them, with their place in the campaign.

One SQL statement (the enrollment report's, joined to the campaign's members), so the page streams it, the exports
mask and neutralize it as every report's, and PostgreSQL's COPY writes its CSV.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, Member
from identity.models import User

from ..columns import DATETIME, TEXT, Column
from .common import Filters, stream
from .enrollment import ENROLLMENT_COLUMNS, enrollment_cte

_KEPT = ("institution_id", "name", "department", "vpn_access", "last_used_at", "setup_held")
CAMPAIGN_PEOPLE_COLUMNS: tuple[Column, ...] = (
    Column("campaign", "Campaign", TEXT, "The campaign's name.", masked=False),
    *(column for column in ENROLLMENT_COLUMNS if column.key in _KEPT),
    Column("added_at", "In the cohort since", DATETIME, "When the person joined the campaign's cohort."),
    Column(
        "last_reminded_at",
        "Last message",
        DATETIME,
        "When the latest welcome or reminder was queued (empty: none yet).",
    ),
)
_SOURCES = {
    "campaign": "c.name AS campaign",
    "added_at": "m.added_at",
    "last_reminded_at": "m.last_reminded_at",
}


@dataclass(frozen=True)
class CampaignPeopleFilters(Filters):
    """Which campaign (empty: every open one) and department; the rows are always the people not enrolled."""

    campaign: int | None = None
    department: str = ""


def campaign_people_sql(filters: CampaignPeopleFilters, *, limit: int | None = None, offset: int = 0):
    member, person, campaign = Member._meta.db_table, User._meta.db_table, Campaign._meta.db_table
    # The people who left the cohort keep their rows (so a return is not welcomed again) but are not its people.
    clauses: list[str] = ["NOT report.enrolled", "m.left_at IS NULL"]
    params: list[int | str] = []
    if filters.campaign:
        # A campaign chosen by name is shown open or closed: a closed one's people are still worth a look.
        clauses.append("m.campaign_id = %s")
        params.append(filters.campaign)
    else:
        clauses.append("c.closed_at IS NULL")
    if filters.department:
        clauses.append("report.department = %s")
        params.append(filters.department)
    columns = ", ".join(_SOURCES.get(column.key, f"report.{column.key}") for column in CAMPAIGN_PEOPLE_COLUMNS)
    # Table names from the models, values as parameters: nothing from input is in the text.
    joins = (
        f"JOIN {person} p ON p.username = report.institution_id JOIN {member} m ON m.person_id = p.id "
        f"JOIN {campaign} c ON c.id = m.campaign_id"
    )
    where = " AND ".join(clauses)
    sql = enrollment_cte() + f"SELECT {columns} FROM report {joins} WHERE {where} ORDER BY c.name, institution_id"  # noqa: S608
    if limit is not None:
        sql += " LIMIT %s OFFSET %s"
        params += [limit, offset]
    return sql, [timezone.now(), *params]


def campaign_people_rows(filters: CampaignPeopleFilters, *, limit: int | None = None, offset: int = 0) -> Iterator:
    sql, params = campaign_people_sql(filters, limit=limit, offset=offset)
    yield from stream(sql, params, CAMPAIGN_PEOPLE_COLUMNS)


def campaign_people_count(filters: CampaignPeopleFilters) -> int:
    """The rows: a person in two of the campaigns listed is a row under each."""
    return campaign_people_summary(filters)["count"]


def campaign_people_summary(filters: CampaignPeopleFilters) -> dict:
    """The rows (``count``, for paging and exports) and the people in them, each once (``people``), in one query."""
    sql, params = campaign_people_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), COUNT(DISTINCT institution_id) FROM ({sql}) people", params)  # noqa: S608 (ours)
        rows, people = cursor.fetchone()
    return {"count": rows, "people": people}
