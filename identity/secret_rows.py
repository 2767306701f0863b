"""The service steps shared by rows that hold a secret shown once: SCIM clients (DIR-05), and the VPN's integrations
and RADIUS clients (API-03). Each app's service checks its own input and names its own audit action; these write the
row and its audit event together, so neither kind of row can be created or rotated without the other."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model

from . import audit

Row = TypeVar("Row", bound=Model)


def required_name(name: str, *, what: str) -> str:
    """The name without surrounding spaces; ``ValidationError`` when nothing is left."""
    name = name.strip()
    if not name:
        raise ValidationError(f"Give the {what} a name.")
    return name


def create_with_secret(
    model: type[Row],
    *,
    action: str,
    details: Callable[[Row], dict[str, Any]],
    actor: Any,
    ip: str | None,
    **fields: Any,
) -> Row:
    """Create the row with ``fields`` (the secret only in its stored form) and audit ``action`` with ``details(row)``,
    in one transaction. ``created_by`` is the actor when it is a person (not the server's shell)."""
    with transaction.atomic():
        row = model._default_manager.create(created_by=actor if getattr(actor, "pk", None) else None, **fields)
        audit.record(action, actor=actor, ip=ip, details=details(row))
    return row


def replace_secret(
    row: Row,
    *,
    stored: dict[str, Any],
    action: str,
    details: Callable[[Row], dict[str, Any]],
    actor: Any,
    ip: str | None,
    then: Callable[[], None] | None = None,
    unless: Callable[[Row], None] | None = None,
) -> Row:
    """Write ``stored`` (the new secret's stored form and the rotation's time) on the locked row at once, so the old
    secret stops working with the commit; call ``then()`` (a cache to drop) and audit ``action`` in the same
    transaction. Return the row as written. ``unless(row)`` is called on the locked row first: a ``ValidationError``
    it raises leaves everything as it was."""
    with transaction.atomic():
        row = type(row)._default_manager.select_for_update().get(pk=row.pk)
        if unless is not None:
            unless(row)
        for field, value in stored.items():
            setattr(row, field, value)
        row.save(update_fields=list(stored))
        if then is not None:
            then()
        audit.record(action, actor=actor, ip=ip, details=details(row))
    return row
