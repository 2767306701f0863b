"""Integrations and RADIUS clients in the staff admin, for superusers only. A secret is shown once, on the page
that answers its creation or rotation, and never again (API-03). Every change goes through a service (audited)."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from identity.admin_site import site
from identity.models import User
from identity.web import client_ip

from . import services
from .models import Integration, RadiusClient


def _shown_once(request: HttpRequest, obj: Model, *, what: str, secret: str, key: str = "") -> HttpResponse:
    response = TemplateResponse(
        request,
        "vpn/secret_shown_once.html",
        {**site.each_context(request), "obj": obj, "what": what, "secret": secret, "key": key, "title": str(obj)},
    )
    response["Cache-Control"] = "no-store"
    return response


def _superuser(request: HttpRequest) -> User:
    """Who acts: the permissions below let only a superuser this far."""
    assert isinstance(request.user, User)
    return request.user


class SuperuserOnly(admin.ModelAdmin):
    """Superusers only; the rotate action of both models (one row at a time, the secret shown once)."""

    actions = ["rotate_secret"]
    secret_name = "secret"
    rotate: Callable[..., str]  # the service that rotates the row's secret and returns the new one

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        # A new row is always created enabled; disabling is a change, audited as one.
        return ("enabled",) if obj is None else ()

    @admin.action(description="Rotate the secret of the selected row (the old one stops working at once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Rotate one at a time.", messages.ERROR)
            return None
        obj = queryset.get()
        secret = self.rotate(obj, actor=_superuser(request), ip=client_ip(request))
        return _shown_once(request, obj, what=self.secret_name, secret=secret, key=getattr(obj, "integration_key", ""))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class IntegrationForm(forms.ModelForm):
    class Meta:
        model = Integration
        fields = ("name", "allowed_networks", "enabled")


@admin.register(Integration, site=site)
class IntegrationAdmin(SuperuserOnly, admin.ModelAdmin):
    form = IntegrationForm
    list_display = ("name", "integration_key", "enabled", "allowed_networks", "created_at", "secret_rotated_at")
    readonly_fields = ("integration_key", "created_by", "created_at", "secret_rotated_at")
    rotate = staticmethod(services.rotate_integration_secret)
    secret_name = "secret key"

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        if change:
            services.update_integration(
                obj,
                name=obj.name,
                allowed_networks=obj.allowed_networks,
                enabled=obj.enabled,
                actor=_superuser(request),
                ip=client_ip(request),
            )
        else:
            # The new secret rides on the request to response_add, the page that shows it once.
            created, request.vpn_secret = services.create_integration(  # type: ignore[attr-defined]
                name=obj.name, allowed_networks=obj.allowed_networks, actor=_superuser(request), ip=client_ip(request)
            )
            obj.pk = created.pk
            obj.integration_key = created.integration_key

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        obj.refresh_from_db()
        return _shown_once(request, obj, what="secret key", secret=request.vpn_secret, key=obj.integration_key)  # type: ignore[attr-defined]


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
class RadiusClientAdmin(SuperuserOnly, admin.ModelAdmin):
    form = RadiusClientForm
    list_display = ("name", "network", "enabled", "message_authenticator_shown", "created_at", "secret_rotated_at")
    readonly_fields = ("created_by", "created_at", "secret_rotated_at")
    rotate = staticmethod(services.rotate_radius_secret)
    secret_name = "shared secret"

    @admin.display(description="Message-Authenticator")
    def message_authenticator_shown(self, obj: RadiusClient) -> str:
        return "required" if obj.message_authenticator_required else "WARNING: not required (limit_proxy_state)"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if request.method == "GET" and obj is not None and not obj.message_authenticator_required:
            self.message_user(request, WEAKENED, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        if change:
            obj = services.update_radius_client(
                obj,
                name=obj.name,
                network=obj.network,
                enabled=obj.enabled,
                message_authenticator=obj.message_authenticator,
                actor=_superuser(request),
                ip=client_ip(request),
            )
        else:
            # The new secret rides on the request to response_add, the page that shows it once.
            created, request.vpn_secret = services.create_radius_client(  # type: ignore[attr-defined]
                name=obj.name,
                network=obj.network,
                message_authenticator=obj.message_authenticator,
                actor=_superuser(request),
                ip=client_ip(request),
            )
            obj.pk = created.pk
            obj = created
        for sentence in services.radius_overlaps(obj) if obj.enabled else []:
            self.message_user(request, sentence, messages.INFO)
        if not obj.message_authenticator_required:
            self.message_user(request, WEAKENED, messages.WARNING)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        return _shown_once(request, obj, what="shared secret", secret=request.vpn_secret)  # type: ignore[attr-defined]
