"""CSV and XLSX files of a report's rows, safe to open in a spreadsheet (AC-05).

CSV is UTF-8 with a byte-order mark, which is what makes Excel read it as
UTF-8 (without it Excel guesses the legacy code page and garbles accents).
XLSX is written by XlsxWriter in ``constant_memory`` mode: each row is flushed
to disk as it is written, so a million rows take no more memory than ten.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import xlsxwriter
from django.utils import timezone

from devices.models import mask_phone_number

from .columns import BOOLEAN, DATETIME, INTEGER, Column

BOM = "\ufeff"
# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice or Google Sheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PHONE_NUMBER = re.compile(r"\+\d{6,15}")
EXCEL_EPOCH = datetime(1899, 12, 30)
ONE_DAY = timedelta(days=1)


def neutralize(text: str) -> str:
    """Make a text cell inert: a leading quote makes the spreadsheet show it as text, never evaluate it."""
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


# Excel splits a CSV at the locale's list separator, which is ";" in much of Europe: text after a ";" (or ",")
# inside one of our cells then starts a cell of its own there, so a trigger right after one is neutralized too.
_TRIGGER_AFTER_SEPARATOR = re.compile(r"([;,]\s*)(?=[=+\-@\t\r])")


def neutralize_for_csv(text: str) -> str:
    """``neutralize``, and the same for every part that a ";"- or ","-splitting spreadsheet would make a cell."""
    return _TRIGGER_AFTER_SEPARATOR.sub(r"\1'", neutralize(text))


def mask_phone_numbers(text: str) -> str:
    """Mask any whole phone number in free text (audit details) down to its last two digits."""
    return _PHONE_NUMBER.sub(lambda m: mask_phone_number(m.group(0)), text)


def safe_text(value) -> str:
    """A text cell as it may leave in a file: phone numbers masked, formulas neutralized."""
    if not value:
        return ""
    value = str(value)
    if "+" in value:
        value = mask_phone_numbers(value)
    return neutralize(value)


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

    by_type = {BOOLEAN: boolean, INTEGER: integer, DATETIME: moment}
    return [by_type.get(column.type, text) for column in columns]


def csv_chunks(columns: tuple[Column, ...], rows: Iterable[tuple], *, rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The CSV file as a stream of UTF-8 byte chunks, header first, with the BOM at the very start."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow([column.header for column in columns])
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


def write_xlsx(target, columns: tuple[Column, ...], rows: Iterable[tuple], *, sheet_name: str) -> int:
    """Write the rows to ``target`` (a path or a binary file) as one worksheet; return the number of rows.

    Cells are typed (dates as dates, counts as numbers, yes/no as booleans), the
    header row is frozen and has filters on. Text is always written as a string,
    never parsed as a formula, and is neutralized as in the CSV as well, so the
    two files agree.
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

        by_type = {INTEGER: sheet.write_number, BOOLEAN: sheet.write_boolean, DATETIME: moment}
        writers = [by_type.get(column.type, text) for column in columns]
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
