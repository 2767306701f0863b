from django.contrib import admin

from devices.models import OutboundMessage, Registration
from identity.admin_site import StaffModelAdmin, site


class ReadOnlyAdmin(StaffModelAdmin):
    """Changes go through services and audited actions, never through raw edits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Registration, site=site)
class RegistrationAdmin(ReadOnlyAdmin):
    list_filter = ("kind", "platform", "status")
    search_fields = ("user__username", "label")
    list_select_related = ("user", "security_key_device")
    # Never the device itself: its secret stays out of every admin page (OTP-09, BND-09).
    fields = (
        "user",
        "kind",
        "platform",
        "masked_phone_number",
        "credential_storage",
        "label",
        "status",
        "created_at",
        "activated_at",
        "retired_at",
        "retired_by",
    )
    readonly_fields = fields
    list_display = tuple(field for field in fields if field not in ("retired_at", "retired_by"))

    @admin.display(description="Stored (security key or passkey)")
    def credential_storage(self, obj):
        # WA-04: synced or bound to one device, as the authenticator said when it was registered.
        return obj.credential_storage or "—"


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
