"""The columns a report may show and export: an allow-list (AC-05).

A report's rows are tuples in the order of its columns; nothing outside these
lists ever reaches a page or a file, so a secret, code, token or hash cannot
leak into an export by a new field on a model.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

TEXT = "text"
INTEGER = "integer"
BOOLEAN = "boolean"
DATETIME = "datetime"


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    type: str
    help: str
    # Phone numbers in a text column are masked in the files (AC-05), unless the column holds an identifier (an
    # institution ID, an address) or one of our own names, which must reach the auditor as they are.
    masked: bool = True
    # A column of code words (a status, a factor): the words a page shows for one, e.g. a choice's label. The files
    # keep the code words, which are stable to filter and count on; the pages are read by people.
    words: Callable[[str], str | None] | None = None

    def shown(self, value):
        """``value`` as a page shows it: a code word in words, anything else as it is."""
        if self.words is None or not isinstance(value, str) or not value:
            return value
        return self.words(value) or value

    def convert(self, value):
        """The database's value as the Python value the column promises (SQLite returns text and 0/1)."""
        if self.type == INTEGER:
            return int(value or 0)
        if self.type == BOOLEAN:
            return bool(value)
        if self.type == DATETIME:
            if value is None or value == "":
                return None
            if isinstance(value, str):
                value = parse_datetime(value)
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value
        return "" if value is None else str(value)


def converter(columns: tuple[Column, ...]):
    """A function turning one raw database row into the typed row of ``columns``."""
    converts = [column.convert for column in columns]

    def convert(row) -> tuple:
        return tuple(f(v) for f, v in zip(converts, row, strict=True))

    return convert


def as_datetime(value) -> datetime | None:
    return Column("", "", DATETIME, "").convert(value)
