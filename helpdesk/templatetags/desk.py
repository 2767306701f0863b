"""The help desk's words in templates: events and four-eyes requests as sentences, and the waiting requests."""

import json

from django import template
from django.utils import timezone

from helpdesk.actions import request_words
from helpdesk.models import ApprovalRequest
from identity import events

register = template.Library()

# How many waiting requests the admin home page lists by name; the count covers them all.
WAITING_LISTED = 5


@register.filter
def event_words(event) -> str:
    """An audit event as a sentence (``identity.events``)."""
    return events.describe(event.action, event.details)


@register.filter
def raw_details(event) -> str:
    """An event's details as recorded, for auditors: JSON, keys sorted."""
    return json.dumps(event.details, indent=1, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def asks(request) -> str:
    """A four-eyes request as one sentence: who asks what for whom."""
    return request_words(request)


@register.simple_tag
def waiting_requests(user) -> dict:
    """What the admin home page shows ``user`` about four-eyes requests: those waiting for a second agent (a count
    and the oldest few, the ones ``user`` may decide) and the approved ones ``user`` must finish with the caller."""
    if not user.has_perm("helpdesk.view_approvalrequest"):
        return {}
    live = ApprovalRequest.objects.filter(expires_at__gt=timezone.now()).select_related("person", "requested_by")
    waiting = live.filter(status=ApprovalRequest.Status.WAITING).order_by("created_at")
    return {
        "count": waiting.count(),
        "oldest": list(waiting[:WAITING_LISTED]),
        "to_finish": list(live.filter(status=ApprovalRequest.Status.READY, requested_by=user).order_by("created_at")),
    }
