"""Times in emails, in the institution's time zone (``TIME_ZONE``), whatever time zone is active when they render.

An email is read later and elsewhere than the request or task that wrote it, so it never follows an activated zone.
"""

from zoneinfo import ZoneInfo

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.dateformat import format as date_format

register = template.Library()


@register.filter(expects_localtime=False)
def institution_time(value) -> str:
    """ "30 Nov 2026, 06:53 EST": the moment in ``TIME_ZONE``, with the zone's abbreviation."""
    if not value:
        return ""
    return date_format(timezone.localtime(value, ZoneInfo(settings.TIME_ZONE)), "j M Y, H:i T")
