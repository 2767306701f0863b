"""What every report's queries share: the filters' base, day boundaries and streaming rows from one statement."""

from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar

from django.db import connection
from django.utils import timezone

from ..columns import Column, converter

FETCH_SIZE = 2000


class Filters:
    """What an auditor narrowed a report to; every field optional."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # each report's filters are a dataclass of this

    def as_dict(self) -> dict:
        """The filters that are set, as plain JSON values (for the audit log and the page)."""
        return {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in asdict(self).items()
            if value not in ("", None)
        }


def start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def within_days(queryset, field: str, start: date | None, end: date | None):
    """``queryset`` narrowed to rows whose ``field`` falls on the days from ``start`` to ``end`` (each optional)."""
    if start:
        queryset = queryset.filter(**{f"{field}__gte": start_of(start)})
    if end:
        queryset = queryset.filter(**{f"{field}__lt": start_of(end + timedelta(days=1))})
    return queryset


def stream(sql: str, params: list, columns: tuple[Column, ...]) -> Iterator[tuple]:
    connection.ensure_connection()
    # PostgreSQL returns the columns' types already; SQLite returns text for times and 0/1 for booleans.
    convert = None if connection.vendor == "postgresql" else converter(columns)
    # Django's chunked cursor is a named (server-side) cursor on PostgreSQL: rows arrive FETCH_SIZE at a time.
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(FETCH_SIZE):
            if convert is None:
                yield from batch
            else:
                for row in batch:
                    yield convert(row)
