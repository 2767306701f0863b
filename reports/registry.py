"""The reports: each one's filter form, columns and selectors. Pages, exports and the export worker read this."""

from dataclasses import dataclass
from typing import Any

from . import selectors
from .forms import AuditFilterForm, DeskFilterForm, EnrollmentFilterForm, SyncFilterForm

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
REPORTS = {report.slug: report for report in (ENROLLMENT, AUDIT_LOG, HELP_DESK, DIRECTORY_SYNC)}
