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
    # page_row(row) -> row: one row as the page shows it, in words (the files keep the code names)
    page_row: Any = None

    def shown(self, row: tuple) -> tuple:
        """``row`` as the page shows it: the report's own ``page_row``, else each column's words."""
        if self.page_row is not None:
            return self.page_row(row)
        return tuple(column.shown(value) for column, value in zip(self.columns, row, strict=True))


def _report(
    slug: str,
    title: str,
    form: type,
    columns: tuple,
    rows: Any,
    count: Any,
    *,
    summary: Any = None,
    copy_sql: Any = None,
    page_row: Any = None,
) -> Report:
    """One entry from its parts. The page's template is named for the slug; the summary is the count alone unless
    ``summary`` says what else the page shows; ``copy_sql`` only where the rows are one SELECT."""
    return Report(
        slug=slug,
        title=title,
        template=f"reports/{slug.replace('-', '_')}.html",
        form=form,
        columns=columns,
        rows=rows,
        count=count,
        summary=summary or (lambda filters: {"count": count(filters)}),
        copy_sql=copy_sql,
        page_row=page_row,
    )


def _enrollment_count(filters) -> int:
    return selectors.enrollment_totals(filters).people


def _enrollment_summary(filters) -> dict:
    totals = selectors.enrollment_totals(filters)
    return {"totals": totals, "count": totals.people}


def _audit_summary(filters) -> dict:
    return {"count": selectors.audit_count(filters), "chain": selectors.audit_chain_status(filters)}


def _desk_count(filters) -> int:
    return len(selectors.desk_activity(filters))


def _desk_summary(filters) -> dict:
    summary = selectors.desk_summary(filters)
    # The page pages through its rows, one per agent and action: the count is theirs, not the agents'.
    return {**summary, "count": summary["rows"]}


# The reports, one row each, in the order the reports' index lists them: slug, title, filter form, columns, rows,
# count, then what the page shows beyond the count and the rows as one SELECT for COPY, where a report has them.
REPORTS = {
    report.slug: report
    for report in (
        _report(
            "enrollment",
            "Enrollment report",
            EnrollmentFilterForm,
            selectors.ENROLLMENT_COLUMNS,
            selectors.enrollment_rows,
            _enrollment_count,
            summary=_enrollment_summary,
            copy_sql=selectors.enrollment_sql,
        ),
        _report(
            "audit",
            "Audit log report",
            AuditFilterForm,
            selectors.AUDIT_COLUMNS,
            selectors.audit_rows,
            selectors.audit_count,
            summary=_audit_summary,
            page_row=selectors.audit_page_row,
        ),
        _report(
            "helpdesk",
            "Help-desk activity",
            DeskFilterForm,
            selectors.DESK_COLUMNS,
            selectors.desk_rows,
            _desk_count,
            summary=_desk_summary,
            page_row=selectors.desk_page_row,
        ),
        _report(
            "directory-sync",
            "Directory sync runs",
            SyncFilterForm,
            selectors.SYNC_COLUMNS,
            selectors.sync_rows,
            selectors.sync_count,
            summary=selectors.sync_summary,
        ),
        _report(
            "campaign-people",
            "People still to enroll, by campaign",
            CampaignPeopleFilterForm,
            selectors.CAMPAIGN_PEOPLE_COLUMNS,
            selectors.campaign_people_rows,
            selectors.campaign_people_count,
            summary=selectors.campaign_people_summary,
            copy_sql=selectors.campaign_people_sql,
        ),
    )
}


def csv_file(report: Report, filters, *, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The report's CSV file in chunks: written by PostgreSQL when the report's rows are one SELECT, else cell by cell
    in Python (and on SQLite); the cells are the same either way."""
    if report.copy_sql is not None and connection.vendor == "postgresql":
        return copy_csv_chunks(report.columns, *report.copy_sql(filters), progress=progress)
    return csv_chunks(report.columns, counted(report.rows(filters), progress))
