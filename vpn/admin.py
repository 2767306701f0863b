"""Integrations and RADIUS clients in the staff admin, for superusers only. A secret is shown once, on the page
that answers its creation or rotation, and never again (API-03). Every change goes through a service (audited)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from identity.admin_secrets import SecretShownOnceAdmin
from identity.admin_site import site

from . import services
from .models import Integration, RadiusClient


class SuperuserOnly(SecretShownOnceAdmin):
    """Superusers only; the rotate action of both models (one row at a time, the secret shown once)."""

    actions = ["rotate_secret"]

    @admin.action(description="Rotate the secret of the selected row (the old one stops working at once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self.rotate_one(request, queryset)


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ("name", "allowed_networks", "enabled")


@admin.register(Integration, site=site)
class IntegrationAdmin(SuperuserOnly):
    form = IntegrationForm
    list_display = ("name", "integration_key", "enabled", "allowed_networks", "created_at", "secret_rotated_at")
    readonly_fields = ("integration_key", "created_by", "created_at", "secret_rotated_at")
    create = staticmethod(services.create_integration)
    update = staticmethod(services.update_integration)
    rotate = staticmethod(services.rotate_integration_secret)
    secret_name = "secret key"

    def shown_once_rows(self, row: Any, secret: str) -> list[tuple[str, str]]:
        return [("Integration key", row.integration_key), *super().shown_once_rows(row, secret)]


WEAKENED = (
    "This client may send requests without a Message-Authenticator: such a request is accepted only when it "
    "carries no Proxy-State (FreeRADIUS's limit_proxy_state), which weakens the Blast-RADIUS defence. Require it "
    "once the VPN can send one."
)


class RadiusClientForm(forms.ModelForm):
    class Meta:
        model = RadiusClient
        fields = ("name", "network", "message_authenticator", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["message_authenticator"].required = False  # left out: required, the safe default

    def clean_message_authenticator(self) -> str:
        return self.cleaned_data.get("message_authenticator") or RadiusClient.MessageAuthenticator.REQUIRE

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # a ModelForm's clean returns cleaned_data
        if "network" in cleaned:
            enabled = cleaned.get("enabled", True) if self.instance.pk else True
            try:
                services.check_radius_network(cleaned["network"], enabled=enabled, client_id=self.instance.pk)
            except ValidationError as error:
                self.add_error("network", error)
        return cleaned


@admin.register(RadiusClient, site=site)
class RadiusClientAdmin(SuperuserOnly):
    form = RadiusClientForm
    list_display = ("name", "network", "enabled", "message_authenticator_shown", "created_at", "secret_rotated_at")
    readonly_fields = ("created_by", "created_at", "secret_rotated_at")
    create = staticmethod(services.create_radius_client)
    update = staticmethod(services.update_radius_client)
    rotate = staticmethod(services.rotate_radius_secret)
    create_fields = ("name", "network", "message_authenticator")
    change_fields = ("name", "network", "enabled", "message_authenticator")
    secret_name = "shared secret"

    @admin.display(description="Message-Authenticator")
    def message_authenticator_shown(self, obj: RadiusClient) -> str:
        if obj.message_authenticator_required:
            return "Required"
        return "Not required: accepted without it only when the request carries no Proxy-State"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if request.method == "GET" and obj is not None and not obj.message_authenticator_required:
            self.message_user(request, WEAKENED, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def saved(self, request: HttpRequest, row: Any) -> None:
        for sentence in services.radius_overlaps(row) if row.enabled else []:
            self.message_user(request, sentence, messages.INFO)
        if not row.message_authenticator_required:
            self.message_user(request, WEAKENED, messages.WARNING)
