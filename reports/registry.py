"""The reports: each one's filter form, columns and selectors. Pages, exports and the export worker read this."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection

from . import selectors
from .exports import copy_csv_chunks, counted, csv_chunks
from .forms import AuditFilterForm, CampaignPeopleFilterForm, DeskFilterForm, EnrollmentFilterForm, SyncFilterForm

EXPORT_FORMATS = [("csv", "CSV"), ("xlsx", "Excel (XLSX)")]


@dataclass(frozen=True)
class Report:
    """One report: its filter form, its columns, and the selectors that count and stream its rows."""

    slug: str
    title: str
    template: str
    form: type
    columns: tuple
    rows: Any  # rows(filters, limit=None, offset=0) -> iterator of tuples
    count: Any  # count(filters) -> int
    summary: Any  # summary(filters) -> dict for the page's template, with the rows' "count"
    # copy_sql(filters) -> (sql, params): the rows as one SELECT, for PostgreSQL's COPY to write the CSV
    copy_sql: Any = None


def _enrollment_summary(totals) -> dict:
    return {"totals": totals, "count": totals.people}


def _desk_summary(summary) -> dict:
    return {**summary, "count": len(summary["per_agent"])}


ENROLLMENT = Report(
    slug="enrollment",
    title="Enrollment report",
    template="reports/enrollment.html",
    form=EnrollmentFilterForm,
    columns=selectors.ENROLLMENT_COLUMNS,
    rows=selectors.enrollment_rows,
    count=lambda filters: selectors.enrollment_totals(filters).people,
    summary=lambda filters: _enrollment_summary(selectors.enrollment_totals(filters)),
    copy_sql=selectors.enrollment_sql,
)
AUDIT_LOG = Report(
    slug="audit",
    title="Audit log report",
    template="reports/audit.html",
    form=AuditFilterForm,
    columns=selectors.AUDIT_COLUMNS,
    rows=selectors.audit_rows,
    count=selectors.audit_count,
    summary=lambda filters: {
        "count": selectors.audit_count(filters),
        "chain": selectors.audit_chain_status(filters),
    },
)
HELP_DESK = Report(
    slug="helpdesk",
    title="Help-desk activity",
    template="reports/helpdesk.html",
    form=DeskFilterForm,
    columns=selectors.DESK_COLUMNS,
    rows=selectors.desk_rows,
    count=lambda filters: len(selectors.desk_activity(filters)),
    summary=lambda filters: _desk_summary(selectors.desk_summary(filters)),
)
DIRECTORY_SYNC = Report(
    slug="directory-sync",
    title="Directory sync runs",
    template="reports/directory_sync.html",
    form=SyncFilterForm,
    columns=selectors.SYNC_COLUMNS,
    rows=selectors.sync_rows,
    count=selectors.sync_count,
    summary=selectors.sync_summary,
)
CAMPAIGN_PEOPLE = Report(
    slug="campaign-people",
    title="People still to enroll, by campaign",
    template="reports/campaign_people.html",
    form=CampaignPeopleFilterForm,
    columns=selectors.CAMPAIGN_PEOPLE_COLUMNS,
    rows=selectors.campaign_people_rows,
    count=selectors.campaign_people_count,
    summary=lambda filters: {"count": selectors.campaign_people_count(filters)},
    copy_sql=selectors.campaign_people_sql,
)
REPORTS = {report.slug: report for report in (ENROLLMENT, AUDIT_LOG, HELP_DESK, DIRECTORY_SYNC, CAMPAIGN_PEOPLE)}


def csv_file(report: Report, filters, *, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The report's CSV file in chunks: written by PostgreSQL when the report's rows are one SELECT, else cell by cell
    in Python (and on SQLite); the cells are the same either way."""
    if report.copy_sql is not None and connection.vendor == "postgresql":
        return copy_csv_chunks(report.columns, *report.copy_sql(filters), progress=progress)
    return csv_chunks(report.columns, counted(report.rows(filters), progress))
