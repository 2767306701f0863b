from django.contrib import admin

from devices.models import OutboundMessage, Registration
from identity.admin_site import site


class ReadOnlyAdmin(admin.ModelAdmin):
    """Changes go through services and audited actions, never through raw edits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Registration, site=site)
class RegistrationAdmin(ReadOnlyAdmin):
    list_display = ("user", "kind", "platform", "masked_phone_number", "label", "status", "created_at", "activated_at")
    list_filter = ("kind", "platform", "status")
    search_fields = ("user__username", "label")
    list_select_related = ("user",)
    # Never the device itself: its secret stays out of every admin page (OTP-09, BND-09).
    fields = (
        "user",
        "kind",
        "platform",
        "masked_phone_number",
        "label",
        "status",
        "created_at",
        "activated_at",
        "retired_at",
        "retired_by",
    )
    readonly_fields = fields


@admin.register(OutboundMessage, site=site)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "channel", "masked_recipient", "template", "status", "attempts", "last_error")
    list_filter = ("channel", "status", "template")
    fields = (
        "created_at",
        "user",
        "channel",
        "masked_recipient",
        "template",
        "status",
        "attempts",
        "provider_id",
        "last_error",
        "sent_at",
        "expires_at",
    )
    readonly_fields = fields
