"""The staff admin of rows that hold a secret shown once (SCIM clients, the VPN's integrations and RADIUS clients):
superusers only, never deleted (the audit log names them), created enabled, and a new secret shown on the one page
that answers its creation or rotation, with ``Cache-Control: no-store``, and never again (DIR-05, API-03). Every
change goes through the app's services (audited); an admin here only says which."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.text import capfirst

from .admin_site import site
from .models import User
from .web import client_ip

# Where a new row's secret waits, on the request, between save_model and response_add (the page that shows it).
_NEW_SECRET = "secret_shown_once"


def shown_once(
    request: HttpRequest, *, title: str, what: str, rows: list[tuple[str, str]], template: str
) -> HttpResponse:
    """The page that shows ``rows`` (label, value: the secret and what goes with it) once, kept out of any cache."""
    context = {**site.each_context(request), "title": title, "what": what, "rows": rows}
    response = TemplateResponse(request, template, context)
    response["Cache-Control"] = "no-store"
    return response


class SecretShownOnceAdmin(admin.ModelAdmin):
    """Superusers only. The app's services say the rest: ``create(**fields, actor=, ip=) -> (row, secret)`` with the
    form's ``create_fields``, ``update(row, **fields, actor=, ip=) -> row`` with its ``change_fields``, and
    ``rotate(row, actor=, ip=) -> secret``; ``rotate_one`` is the body of the app's rotate action."""

    secret_name = "secret"
    shown_once_template = "admin/secret_shown_once.html"
    create: Callable[..., tuple[Model, str]]
    update: Callable[..., Model]
    rotate: Callable[..., str]
    create_fields: tuple[str, ...] = ("name", "allowed_networks")
    change_fields: tuple[str, ...] = ("name", "allowed_networks", "enabled")

    def actor(self, request: HttpRequest) -> User:
        """Who acts: the permissions below let only a superuser this far."""
        assert isinstance(request.user, User)
        return request.user

    def ip(self, request: HttpRequest) -> str | None:
        return client_ip(request)

    def saved(self, request: HttpRequest, row: Any) -> None:
        """What to tell the superuser once a row is created or changed."""

    def shown_once_title(self, row: Any) -> str:
        return str(row)

    def shown_once_rows(self, row: Any, secret: str) -> list[tuple[str, str]]:
        """What the page lists, the secret among it."""
        return [(capfirst(self.secret_name), secret)]

    def show_once(self, request: HttpRequest, row: Any, secret: str) -> HttpResponse:
        return shown_once(
            request,
            title=self.shown_once_title(row),
            what=self.secret_name,
            rows=self.shown_once_rows(row, secret),
            template=self.shown_once_template,
        )

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> tuple[str, ...]:
        # A new row is always created enabled; disabling is a change, audited as one.
        return ("enabled",) if obj is None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        who = {"actor": self.actor(request), "ip": self.ip(request)}
        if change:
            row = self.update(obj, **{field: getattr(obj, field) for field in self.change_fields}, **who)
        else:
            row, secret = self.create(**{field: getattr(obj, field) for field in self.create_fields}, **who)
            obj.pk = row.pk
            setattr(request, _NEW_SECRET, (row, secret))
        self.saved(request, row)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        row, secret = getattr(request, _NEW_SECRET)
        return self.show_once(request, row, secret)

    def rotate_one(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Rotate the one selected row's secret and show the new one; more than one is refused."""
        if queryset.count() != 1:
            self.message_user(request, "Rotate one at a time.", messages.ERROR)
            return None
        row = queryset.get()
        return self.show_once(request, row, self.rotate(row, actor=self.actor(request), ip=self.ip(request)))

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
