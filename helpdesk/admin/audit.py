from django.contrib import admin

from identity.admin_site import site
from identity.models import AuditEvent


@admin.register(AuditEvent, site=site)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only for everyone: the audit log is append-only (AC-08)."""

    list_display = ("sequence", "created_at", "action", "actor", "subject", "ip")
    list_filter = ("action",)
    search_fields = ("subject__username", "actor__username", "action")
    date_hierarchy = "created_at"
    list_select_related = ("actor", "subject")
    readonly_fields = ("sequence", "created_at", "actor", "subject", "action", "details", "ip", "prev_hash", "hash")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
