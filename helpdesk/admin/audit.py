from django.contrib import admin
from django.template.loader import render_to_string

from helpdesk.selectors import person_words, whole_number
from identity import events
from identity.admin_site import StaffModelAdmin, site
from identity.models import AuditEvent, User


class ActionFilter(admin.SimpleListFilter):
    """Every action by its words (identity.events), the name beside it; no query over the log to list them."""

    title = "what happened"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return sorted(((action, f"{events.title(action)} ({action})") for action in events.EVENTS), key=lambda c: c[1])

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class SubjectFilter(admin.SimpleListFilter):
    """The events of one person, by id: the person page's "All events of this person". Listed only when chosen; a
    search by name would match other people too (``caller1`` in ``caller12``)."""

    title = "person"
    parameter_name = "subject"

    def lookups(self, request, model_admin):
        pk = whole_number(self.value() or "")
        person = User.objects.filter(pk=pk).first() if pk is not None else None
        return [(str(pk), person_words(person) if person else "Nobody with that number")] if pk is not None else []

    def queryset(self, request, queryset):
        return queryset.filter(subject_id=self.value()) if self.value() else queryset


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(StaffModelAdmin):
    """Read-only for everyone: the audit log is append-only (AC-08). Each event reads as a sentence
    (``identity.events``); the action's name and details as recorded are one click away."""

    list_display = ("sequence", "created_at", "what", "actor", "subject", "ip")
    list_filter = (ActionFilter, SubjectFilter)
    search_fields = ("subject__username", "actor__username", "action")
    date_hierarchy = "created_at"
    list_select_related = ("actor", "subject")
    readonly_fields = (
        "sequence",
        "created_at",
        "what_happened",
        "actor",
        "subject",
        "action",
        "details",
        "ip",
        "prev_hash",
        "hash",
    )

    @admin.display(description="What happened", ordering="action")
    def what(self, obj):
        return render_to_string("helpdesk/event_words.html", {"e": obj})

    @admin.display(description="What happened")
    def what_happened(self, obj):
        return events.describe(obj.action, obj.details)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
