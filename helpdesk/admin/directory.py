"""SCIM clients in the staff admin, for superusers only (DIR-05). A token is shown once, on the page that answers
its creation or rotation, and never again; every change goes through ``identity.directory.scim_clients`` (audited).

A rotation is confirmed on a page of its own that names the token it replaces: posted again (a reload of the page
showing the new token, a second tab), it is refused rather than replacing the token just shown."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

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
            "title": f"SCIM client: {client}",
        },
    )
    response["Cache-Control"] = "no-store"
    return response


class RotateTokenForm(forms.Form):
    # The token this page offers to replace, by when it was issued (ScimClient.token_issued_at).
    replacing = forms.DateTimeField(widget=forms.HiddenInput)


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
    change_form_template = "helpdesk/scim_client.html"

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
        return redirect(reverse("admin:directory_scimclient_rotate", args=[queryset.get().pk]))

    def get_urls(self):
        rotate = self.admin_site.admin_view(self.rotate_view)
        return [path("<int:client_id>/rotate/", rotate, name="directory_scimclient_rotate"), *super().get_urls()]

    def rotate_view(self, request, client_id):
        """Asks before replacing the token; the answer is the new token, shown once."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        client = get_object_or_404(ScimClient, pk=client_id)
        form = RotateTokenForm(request.POST or None, initial={"replacing": client.token_issued_at})
        if request.method == "POST" and form.is_valid():
            try:
                token = scim_clients.rotate_scim_token(
                    client, actor=request.user, ip=client_ip(request), replacing=form.cleaned_data["replacing"]
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return _token_shown_once(request, client, token)
        context = {**site.each_context(request), "client": client, "form": form, "title": f"Rotate the token: {client}"}
        return TemplateResponse(request, "helpdesk/scim_rotate_token.html", context)

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
