"""SCIM clients in the staff admin, for superusers only (DIR-05). A token is shown once, on the page that answers
its creation or rotation, and never again; every change goes through ``identity.directory.scim_clients`` (audited)."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from identity.admin_site import site
from identity.directory import scim_clients
from identity.directory.models import ScimClient
from identity.directory.scim.resources import base_url
from identity.web import client_ip


def _token_shown_once(request, client: ScimClient, token: str):
    response = TemplateResponse(
        request,
        "helpdesk/scim_token_shown_once.html",
        {
            **site.each_context(request),
            "client": client,
            "token": token,
            "tenant_url": base_url(),
            "title": str(client),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


class ScimClientForm(forms.ModelForm):
    class Meta:
        model = ScimClient
        fields = ("name", "allowed_networks", "enabled")


@admin.register(ScimClient, site=site)
class ScimClientAdmin(admin.ModelAdmin):
    form = ScimClientForm
    list_display = ("name", "enabled", "allowed_networks", "created_at", "token_rotated_at", "last_used_at")
    readonly_fields = ("created_by", "created_at", "token_rotated_at", "last_used_at")
    actions = ["rotate_token", "disable"]

    def get_exclude(self, request, obj=None):
        # A new client is always created enabled; disabling is a change, audited as one.
        return ("enabled",) if obj is None else ()

    def save_model(self, request, obj, form, change):
        if change:
            scim_clients.update_scim_client(
                obj,
                name=obj.name,
                allowed_networks=obj.allowed_networks,
                enabled=obj.enabled,
                actor=request.user,
                ip=client_ip(request),
            )
        else:
            created, request.scim_token = scim_clients.create_scim_client(
                name=obj.name, allowed_networks=obj.allowed_networks, actor=request.user, ip=client_ip(request)
            )
            obj.pk = created.pk

    def response_add(self, request, obj, post_url_continue=None):
        return _token_shown_once(request, obj, request.scim_token)

    @admin.action(description="Rotate the token of the selected client (the old one stops working at once)")
    def rotate_token(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Rotate one at a time.", messages.ERROR)
            return None
        client = queryset.get()
        token = scim_clients.rotate_scim_token(client, actor=request.user, ip=client_ip(request))
        return _token_shown_once(request, client, token)

    @admin.action(description="Disable the selected clients (their tokens are refused from now on)")
    def disable(self, request, queryset):
        for client in queryset.filter(enabled=True):
            scim_clients.disable_scim_client(client, actor=request.user, ip=client_ip(request))
        self.message_user(request, "Disabled.")

    # Only superusers decide which directories may create and deactivate people.
    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False  # the audit log names the client; disable it instead
