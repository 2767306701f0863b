from django.contrib import admin
from django.template.loader import render_to_string

from identity import events
from identity.models import AuditEvent

from .site import site


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everyone: the audit log is append-only (AC-08). Each event reads as a sentence
    (``identity.events``); the action's name and details as recorded are one click away."""

    list_display = ("sequence", "created_at", "what", "actor", "subject", "ip")
    list_filter = ("action",)
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
