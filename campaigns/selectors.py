"""Reads over a campaign's cohort rows, shared by the reminders, the progress page and the exports."""

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable
from django_otp import device_classes

from .models import Campaign, Member


def enrolled(person_ref: str = "person_id") -> Q | Combinable:
    """A condition: the person named by ``person_ref`` (an outer column) has a confirmed device of any kind, one
    ``EXISTS`` per device model (each indexed by its person), built from django-otp's registry."""
    condition: Q | Combinable | None = None
    for model in device_classes():
        found = Exists(model.objects.filter(user=OuterRef(person_ref), confirmed=True))
        condition = found if condition is None else condition | found
    assert condition is not None, "django-otp registers at least one device model"
    return condition


def members_not_enrolled(campaign: Campaign) -> QuerySet:
    """The campaign's members (as of the last refresh) who are active and have not enrolled."""
    return Member.objects.filter(campaign=campaign, person__is_active=True).exclude(enrolled())


def members_due(campaign: Campaign, step: int) -> QuerySet:
    """The members not enrolled who have not had ``step`` yet (``last_step < step``): the index on (campaign,
    last_step, person) gives the range, an anti-join per device model drops the enrolled. One query; iterate it
    with ``.iterator()`` or in id ranges, never all at once."""
    return members_not_enrolled(campaign).filter(last_step__lt=step)
