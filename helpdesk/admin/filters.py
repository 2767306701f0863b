"""Filters of the people list. Each is one indexed condition; none counts rows per choice."""

from django.contrib import admin
from django.db import connection
from django.db.models import Exists, OuterRef

from devices.models import Registration
from devices.selectors import enrolled
from identity.models import User


def _in_use(**extra):
    return Registration.objects.filter(user=OuterRef("pk"), status__in=Registration.IN_USE, **extra)


class YesNoFilter(admin.SimpleListFilter):
    def lookups(self, request, model_admin):
        return (("yes", "Yes"), ("no", "No"))

    def condition(self):
        raise NotImplementedError

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(self.condition())
        if self.value() == "no":
            return queryset.exclude(self.condition())
        return queryset


class EnrolledFilter(YesNoFilter):
    title = "enrolled"
    parameter_name = "enrolled"

    def condition(self):
        return enrolled("pk")  # the project's one rule: the view devices_working_registration


class LockedFilter(YesNoFilter):
    title = "locked"
    parameter_name = "locked"

    def condition(self):
        return User.locked_now()  # the "locked" column's rule too


class HeldFilter(YesNoFilter):
    title = "setup held after a lost last device"
    parameter_name = "held"

    def condition(self):
        from django.db.models import Q

        return Q(lost_last_factor_at__isnull=False)


class DeviceKindFilter(admin.SimpleListFilter):
    title = "has a device of kind"
    parameter_name = "device_kind"

    def lookups(self, request, model_admin):
        return Registration.Kind.choices

    def queryset(self, request, queryset):
        if self.value() in Registration.Kind.values:
            return queryset.filter(Exists(_in_use(kind=self.value())))
        return queryset


def departments(limit: int = 1000) -> list[str]:
    """The distinct non-empty departments, read by skipping through the department index (no full scan)."""
    if connection.vendor != "postgresql":
        return list(User.objects.exclude(department="").values_list("department", flat=True).distinct()[:limit])
    # A "loose index scan": one index probe per department instead of reading every person.
    sql = """
        WITH RECURSIVE d(name) AS (
            (SELECT department FROM identity_user WHERE department > '' ORDER BY department LIMIT 1)
            UNION ALL
            SELECT (SELECT department FROM identity_user WHERE department > d.name ORDER BY department LIMIT 1)
            FROM d WHERE d.name IS NOT NULL
        )
        SELECT name FROM d WHERE name IS NOT NULL LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class DepartmentFilter(admin.SimpleListFilter):
    """Departments with a name only: people without one have no link with empty text (axe ``link-name``)."""

    title = "department"
    parameter_name = "department"

    def lookups(self, request, model_admin):
        return [(name, name) for name in departments()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(department=self.value())
        return queryset
