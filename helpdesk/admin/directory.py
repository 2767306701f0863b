"""SCIM clients in the staff admin, for superusers only (DIR-05). A token is shown once, on the page that answers
its creation or rotation, and never again; every change goes through ``identity.directory.scim_clients`` (audited)."""

from django import forms
from django.contrib import admin

from identity.admin_secrets import SecretShownOnceAdmin
from identity.admin_site import site
from identity.directory import scim_clients
from identity.directory.models import ScimClient
from identity.directory.scim.resources import base_url


class ScimClientForm(forms.ModelForm):
    class Meta:
        model = ScimClient
        fields = ("name", "allowed_networks", "enabled")


@admin.register(ScimClient, site=site)
class ScimClientAdmin(SecretShownOnceAdmin):
    # Only superusers decide which directories may create and deactivate people (SecretShownOnceAdmin).
    form = ScimClientForm
    list_display = ("name", "enabled", "allowed_networks", "created_at", "token_rotated_at", "last_used_at")
    readonly_fields = ("created_by", "created_at", "token_rotated_at", "last_used_at")
    actions = ["rotate_token", "disable", "lift_deactivation_limit"]
    secret_name = "secret token"
    rotated_at_field = "token_rotated_at"
    shown_once_template = "helpdesk/scim_token_shown_once.html"
    create = staticmethod(scim_clients.create_scim_client)
    update = staticmethod(scim_clients.update_scim_client)
    rotate = staticmethod(scim_clients.rotate_scim_token)

    def shown_once_title(self, row):
        return f"SCIM client: {row.name}"

    def shown_once_rows(self, row, secret):
        return [("Tenant URL", base_url()), ("Secret token", secret)]

    @admin.action(description="Rotate the token of the selected client (the old one stops working at once)")
    def rotate_token(self, request, queryset):
        return self.rotate_one(request, queryset)

    @admin.action(description="Disable the selected clients (their tokens are refused from now on)")
    def disable(self, request, queryset):
        for client in queryset.filter(enabled=True):
            scim_clients.disable_scim_client(client, actor=self.actor(request), ip=self.ip(request))
        self.message_user(request, "Disabled.")

    @admin.action(
        description="Let the selected clients deactivate people again now (their hourly count of deactivations "
        "starts over)"
    )
    def lift_deactivation_limit(self, request, queryset):
        for client in queryset:
            scim_clients.lift_deactivation_limit(client, actor=self.actor(request), ip=self.ip(request))
        self.message_user(request, "The selected clients may deactivate people again.")
