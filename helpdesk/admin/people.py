from django.contrib import admin
from django.core.exceptions import ValidationError

from identity import services as identity_services
from identity.models import User
from identity.views import client_ip

from .site import site


@admin.register(User, site=site)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("username", "first_name", "last_name", "email", "department", "vpn_access", "is_locked_display")
    list_filter = ("vpn_access", "department", "is_staff")
    search_fields = ("username", "first_name", "last_name", "email")
    actions = ["approve_vpn_access", "revoke_vpn_access"]
    fields = (
        "username",
        "first_name",
        "last_name",
        "email",
        "department",
        "vpn_access",
        "second_factor_failures",
        "locked_at",
        "locked_until",
        "lost_last_factor_at",
        "last_login",
        "date_joined",
    )
    readonly_fields = (
        "username",
        "second_factor_failures",
        "locked_at",
        "locked_until",
        "lost_last_factor_at",
        "last_login",
        "date_joined",
    )

    def _vpn_access(self, request, queryset, change, done: str):
        # The help desk's person page gets buttons with a typed reason; this list action records who did it.
        changed = 0
        for person in queryset:
            try:
                change(person, actor=request.user, reason=f"{done} from the people list", ip=client_ip(request))
                changed += 1
            except ValidationError as error:
                self.message_user(request, f"{person}: {' '.join(error.messages)}", level="error")
        self.message_user(request, f"VPN access {done.lower()} for {changed} of {queryset.count()} people.")

    @admin.action(description="Approve VPN access")
    def approve_vpn_access(self, request, queryset):
        self._vpn_access(request, queryset, identity_services.approve_vpn_access, "Approved")

    @admin.action(description="Revoke VPN access")
    def revoke_vpn_access(self, request, queryset):
        self._vpn_access(request, queryset, identity_services.revoke_vpn_access, "Revoked")

    @admin.display(boolean=True, description="locked")
    def is_locked_display(self, obj):
        return obj.is_locked

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
