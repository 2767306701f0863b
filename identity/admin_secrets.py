"""The staff admin of rows that hold a secret shown once (SCIM clients, the VPN's integrations and RADIUS clients):
superusers only, never deleted (the audit log names them), created enabled, and a new secret shown on the one page
that answers its creation or rotation, with ``Cache-Control: no-store``, and never again (DIR-05, API-03). Every
change goes through the app's services (audited); an admin here only says which.

A rotation is confirmed on a page of its own that names, by when it was issued, the secret it replaces: the same
form posted again (a reload of the page showing the new secret, a second tab) is refused by the service instead of
replacing the secret just shown and pasted into the other system."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import capfirst

from .admin_site import StaffModelAdmin, site
from .models import User
from .web import client_ip

# Where a new row's secret waits, on the request, between save_model and response_add (the page that shows it).
_NEW_SECRET = "secret_shown_once"


def shown_once(
    request: HttpRequest, *, title: str, what: str, rows: list[tuple[str, str]], template: str, back: str
) -> HttpResponse:
    """The page that shows ``rows`` (label, value: the secret and what goes with it) once, kept out of any cache;
    ``back`` is the list's address."""
    context = {**site.each_context(request), "title": title, "what": what, "rows": rows, "back": back}
    response = TemplateResponse(request, template, context)
    response["Cache-Control"] = "no-store"
    return response


class RotateSecretForm(forms.Form):
    # The secret this page offers to replace, by when it was issued (``SecretShownOnceAdmin.issued_at``).
    replacing = forms.DateTimeField(widget=forms.HiddenInput)


class SecretShownOnceAdmin(StaffModelAdmin):
    """Superusers only. The app's services say the rest: ``create(**fields, actor=, ip=) -> (row, secret)`` with the
    form's ``create_fields``, ``update(row, **fields, actor=, ip=) -> row`` with its ``change_fields``, and
    ``rotate(row, actor=, ip=, replacing=) -> secret``, which refuses (``ValidationError``) when the row's secret
    was issued at another time than ``replacing``; ``rotate_one`` is the body of the app's rotate action."""

    secret_name = "secret"
    shown_once_template = "admin/secret_shown_once.html"
    change_form_template = "admin/secret_row_change_form.html"
    # The field holding when the secret was last replaced; before that, the row's creation issued it.
    rotated_at_field = "secret_rotated_at"
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

    def issued_at(self, row: Any) -> Any:
        """When the row's secret in use now was issued."""
        return getattr(row, self.rotated_at_field) or row.created_at

    def url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def show_once(self, request: HttpRequest, row: Any, secret: str) -> HttpResponse:
        return shown_once(
            request,
            title=self.shown_once_title(row),
            what=self.secret_name,
            rows=self.shown_once_rows(row, secret),
            template=self.shown_once_template,
            back=reverse(f"admin:{self.url_name('changelist')}"),
        )

    def get_urls(self) -> list:
        rotate = self.admin_site.admin_view(self.rotate_view)
        return [path("<int:pk>/rotate/", rotate, name=self.url_name("rotate")), *super().get_urls()]

    def rotate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Asks before replacing the secret; the answer is the new secret, shown once."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        row = get_object_or_404(self.model, pk=pk)
        form = RotateSecretForm(request.POST or None, initial={"replacing": self.issued_at(row)})
        if request.method == "POST" and form.is_valid():
            try:
                secret = self.rotate(
                    row, actor=self.actor(request), ip=self.ip(request), replacing=form.cleaned_data["replacing"]
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return self.show_once(request, row, secret)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": row,
            "form": form,
            "issued_at": self.issued_at(row),
            "secret_name": self.secret_name,
            "title": f"Rotate the {self.secret_name}: {row}",
        }
        return TemplateResponse(request, "admin/rotate_secret.html", context)

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
        """Send the superuser to the page that asks before rotating the one selected row; more than one is
        refused."""
        if queryset.count() != 1:
            self.message_user(request, "Rotate one at a time.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse(f"admin:{self.url_name('rotate')}", args=[queryset.get().pk]))

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any) -> HttpResponse:
        context = {**context, "secret_name": self.secret_name, "rotate_url_name": f"admin:{self.url_name('rotate')}"}
        return super().render_change_form(request, context, *args, **kwargs)

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
