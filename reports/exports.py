"""CSV and XLSX files of a report's rows, safe to open in a spreadsheet (AC-05).

CSV is UTF-8 with a byte-order mark, which is what makes Excel read it as
UTF-8 (without it Excel guesses the legacy code page and garbles accents).
XLSX is written by XlsxWriter in ``constant_memory`` mode: each row is flushed
to disk as it is written, so a million rows take no more memory than ten.

A report whose rows are one SQL statement can have its CSV formatted by
PostgreSQL (``COPY ... TO STDOUT``, :func:`copy_csv_chunks`), a fraction of the
work of formatting each cell in Python. :func:`csv_cells_sql` is that
formatting, kept here beside the Python formatters it must equal; a test holds
the two files to the same cells row by row.
"""

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

import psycopg
import xlsxwriter
from django.db import connection
from django.utils import timezone

from devices.phone_numbers import MAY_HOLD_PHONE_NUMBER_SQL, mask_phone_numbers

from .columns import BOOLEAN, DATETIME, INTEGER, Column

BOM = "\ufeff"
# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice or Google Sheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_EPOCH = datetime(1899, 12, 30)
ONE_DAY = timedelta(days=1)
PROGRESS_EVERY = 1000


def neutralize(text: str) -> str:
    """Make a text cell inert: a leading quote makes the spreadsheet show it as text, never evaluate it."""
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


# Excel splits a CSV at the locale's list separator, which is ";" in much of Europe: text after a ";" (or ",")
# inside one of our cells then starts a cell of its own there, so a trigger right after one is neutralized too.
# The spaces are spelled out (not \s) so that PostgreSQL's side of this rule, below, reads the same ones.
_TRIGGER_AFTER_SEPARATOR = re.compile(r"([;,][ \t\n\r\f\v]*)(?=[=+\-@\t\r])")


def neutralize_for_csv(text: str) -> str:
    """``neutralize``, and the same for every part that a ";"- or ","-splitting spreadsheet would make a cell."""
    return _TRIGGER_AFTER_SEPARATOR.sub(r"\1'", neutralize(text))


def safe_text(value, *, masked: bool = True) -> str:
    """A text cell as it may leave in a file: phone numbers masked (in a masked column), formulas neutralized."""
    if not value:
        return ""
    value = str(value)
    if masked:
        value = mask_phone_numbers(value)
    return neutralize(value)


def counted(rows: Iterable, progress: Callable[[int], None] | None) -> Iterator:
    """``rows``, telling ``progress`` how many have gone by, every :data:`PROGRESS_EVERY` rows and at the end."""
    if progress is None:
        yield from rows
        return
    written = 0
    for written, row in enumerate(rows, start=1):
        if written % PROGRESS_EVERY == 0:
            progress(written)
        yield row
    progress(written)


def _csv_formatters(columns: tuple[Column, ...]) -> list:
    """One function per column turning its value into the CSV cell, chosen once, not per cell (a million rows)."""
    zone = timezone.get_current_timezone()

    def boolean(value):
        return "" if value is None else ("yes" if value else "no")

    def integer(value):
        return "" if value is None else str(value)

    def moment(value):
        return "" if value is None else value.astimezone(zone).isoformat(" ", "seconds")[:19]

    def text(value):
        return neutralize_for_csv(safe_text(value)) if value else ""

    def identifier(value):
        return neutralize_for_csv(safe_text(value, masked=False)) if value else ""

    by_type = {BOOLEAN: boolean, INTEGER: integer, DATETIME: moment}
    return [by_type.get(column.type, text if column.masked else identifier) for column in columns]


# PostgreSQL's side of the same cells, for COPY: each formatter above, in SQL. PostgreSQL does not mask phone numbers:
# a masked cell that may hold one (MAY_HOLD_PHONE_NUMBER_SQL, which errs towards "may") leaves the database as its
# hex between two marks that no other cell holds (a text with control characters goes that way too), and Python
# writes that one cell with ``text`` above; it is a cell in thousands (a name with digits, or outside ASCII).
_SQL_TRIGGER = r"[=+\-@\t\r]"
_SQL_BY_TYPE = {
    BOOLEAN: "CASE WHEN {cell} THEN 'yes' WHEN NOT {cell} THEN 'no' END",
    INTEGER: "{cell}",
    DATETIME: "to_char({cell} AT TIME ZONE %s, 'YYYY-MM-DD HH24:MI:SS')",
}
# A leading trigger gets a quote, then so does every trigger after a separator; an empty text is an empty cell. A text
# with no trigger anywhere (most) skips the rewriting.
_SQL_IDENTIFIER = (
    "CASE WHEN {cell} !~ '" + _SQL_TRIGGER + "' THEN NULLIF({cell}, '') ELSE "
    "NULLIF(regexp_replace(CASE WHEN {cell} ~ '^" + _SQL_TRIGGER + "' THEN '''' || {cell} ELSE {cell} END, "
    r"'([;,][ \t\n\r\f\v]*)(?=" + _SQL_TRIGGER + r")', '\1''', 'g'), '') END"
)
_TO_PYTHON = b"\x1e"
_SQL_TEXT = (
    "CASE WHEN {cell} ~ '" + MAY_HOLD_PHONE_NUMBER_SQL + r"' OR {cell} ~ '[\x01-\x1f]' "
    r"THEN E'\x1e' || encode(convert_to({cell}, 'UTF8'), 'hex') || E'\x1f' ELSE " + _SQL_IDENTIFIER + " END"
)
_PYTHON_CELL = re.compile(rb"\x1e([0-9a-f]*)\x1f")


def csv_cells_sql(columns: tuple[Column, ...], relation: str) -> tuple[str, list]:
    """The SELECT list formatting ``relation``'s columns (by key) as the CSV's cells, and its parameters."""
    zone = timezone.get_current_timezone_name()
    cells, params = [], []
    for column in columns:
        template = _SQL_BY_TYPE.get(column.type, _SQL_TEXT if column.masked else _SQL_IDENTIFIER)
        cells.append(template.replace("{cell}", f"{relation}.{column.key}"))
        params += [zone] * template.count("%s")
    return ", ".join(cells), params


def _python_cell(match: re.Match) -> bytes:
    """A cell PostgreSQL handed over (as hex) to be written here: masked, neutralized, quoted as csv would."""
    value = neutralize_for_csv(safe_text(bytes.fromhex(match[1].decode()).decode()))
    if any(special in value for special in ',"\r\n'):
        value = '"' + value.replace('"', '""') + '"'
    return value.encode()


def _header(columns: tuple[Column, ...], lineterminator: str) -> str:
    buffer = io.StringIO()
    buffer.write(BOM)
    csv.writer(buffer, lineterminator=lineterminator).writerow([column.header for column in columns])
    return buffer.getvalue()


def csv_chunks(columns: tuple[Column, ...], rows: Iterable[tuple], *, rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The CSV file as a stream of UTF-8 byte chunks, header first, with the BOM at the very start."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(_header(columns, "\r\n"))
    formatters = _csv_formatters(columns)
    pending = 0
    for row in rows:
        writer.writerow([f(value) for f, value in zip(formatters, row, strict=True)])
        pending += 1
        if pending >= rows_per_chunk:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode()


def copy_csv_chunks(
    columns: tuple[Column, ...],
    sql: str,
    params: list,
    *,
    progress: Callable[[int], None] | None = None,
    chunk_bytes: int = 1 << 16,
) -> Iterator[bytes]:
    """The CSV file of ``sql``'s rows (one SELECT naming ``columns`` by key) as PostgreSQL's ``COPY`` writes it, cells
    formatted by :func:`csv_cells_sql`: the cells of :func:`csv_chunks`, with lines ending in LF rather than CRLF.

    ``progress`` hears the number of rows once they are all out: until then the database connection is busy with the
    COPY and takes no other statement (a progress written meanwhile would wait for ever).
    """
    cells, cell_params = csv_cells_sql(columns, "report_rows")
    statement = f"COPY (SELECT {cells} FROM ({sql}) report_rows) TO STDOUT WITH (FORMAT csv)"  # noqa: S608 (ours)
    yield _header(columns, "\n").encode()
    pending: list[bytes] = []
    size = rows = 0
    with connection.cursor() as cursor:
        # COPY takes no parameters at the server: psycopg binds them into the text, as it quotes them for any query.
        with psycopg.ClientCursor(cursor.connection) as client:
            statement = client.mogrify(statement, [*cell_params, *params])
        with cursor.copy(statement) as copy:
            # libpq hands over one row at a time; they leave in chunks of about ``chunk_bytes``.
            for data in copy:
                row = bytes(data)
                if _TO_PYTHON in row:
                    row = _PYTHON_CELL.sub(_python_cell, row)
                pending.append(row)
                size += len(row)
                rows += 1
                if size >= chunk_bytes:
                    yield b"".join(pending)
                    pending, size = [], 0
    yield b"".join(pending)
    if progress is not None:
        progress(rows)


def write_xlsx(target, columns: tuple[Column, ...], rows: Iterable[tuple], *, sheet_name: str) -> int:
    """Write the rows to ``target`` (a path or a binary file) as one worksheet; return the number of rows.

    Cells are typed (dates as dates, counts as numbers, yes/no as booleans), the
    header row is frozen and has filters on. Text is always written as a string,
    never parsed as a formula, and is masked and neutralized as in the CSV as
    well, so the two files agree.
    """
    workbook = xlsxwriter.Workbook(
        target, {"constant_memory": True, "remove_timezone": True, "strings_to_formulas": False}
    )
    try:
        sheet = workbook.add_worksheet(sheet_name[:31])
        header = workbook.add_format({"bold": True})
        date_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        zone = timezone.get_current_timezone()

        # One writer per column, chosen once; a date is written as Excel's serial day number in a date format,
        # which is what write_datetime does, without its checks per cell.
        def moment(row, col, value):
            local = value.astimezone(zone).replace(tzinfo=None)
            sheet.write_number(row, col, (local - EXCEL_EPOCH) / ONE_DAY, date_format)

        def text(row, col, value):
            sheet.write_string(row, col, safe_text(value))

        def identifier(row, col, value):
            sheet.write_string(row, col, safe_text(value, masked=False))

        by_type = {INTEGER: sheet.write_number, BOOLEAN: sheet.write_boolean, DATETIME: moment}
        writers = [by_type.get(column.type, text if column.masked else identifier) for column in columns]
        for col, column in enumerate(columns):
            sheet.write_string(0, col, column.header, header)
            sheet.set_column(col, col, 20 if column.type == DATETIME else max(12, len(column.header) + 2))
        sheet.freeze_panes(1, 0)
        count = 0
        for count, row in enumerate(rows, start=1):
            for col, (write, value) in enumerate(zip(writers, row, strict=True)):
                if value is not None and value != "":
                    write(count, col, value)
        sheet.autofilter(0, 0, max(count, 1), len(columns) - 1)
    finally:
        workbook.close()
    return count
