"""The reports' one state change: an export is written to the audit log (AC-06)."""

from identity import audit

EXPORTED = "report.exported"


def record_export(actor, *, report: str, file_format: str, filters: dict, rows: int, ip: str | None = None):
    """Audit that ``actor`` exported ``rows`` rows of ``report`` narrowed by ``filters``, as ``file_format``.

    Writes ``report.exported`` and nothing else. The caller must have checked
    that ``actor`` may read reports, and calls this before the file leaves.
    """
    return audit.record(
        EXPORTED,
        actor=actor,
        ip=ip,
        details={"report": report, "format": file_format, "filters": filters, "rows": rows},
    )
