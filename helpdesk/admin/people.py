from django.contrib import admin

from identity.models import User

from .site import site


@admin.register(User, site=site)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("username", "first_name", "last_name", "email", "department", "vpn_access", "is_locked_display")
    list_filter = ("vpn_access", "department", "is_staff")
    search_fields = ("username", "first_name", "last_name", "email")
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

    @admin.display(boolean=True, description="locked")
    def is_locked_display(self, obj):
        return obj.is_locked

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
