"""Read-only questions about the directory's records that the admin's pages ask."""

from dataclasses import dataclass

from django.core.paginator import Page, Paginator

from ..models import User
from .models import DirectorySyncRun

LEAVING_PER_PAGE = 100


@dataclass(frozen=True)
class Leaving:
    """One person a held run would deactivate: the run's entry (id, username, reason) and the person here, if any."""

    id: int
    username: str
    reason: str
    person: User | None


def leaving_page(run: DirectorySyncRun, number: str | int | None = 1, *, per_page: int = LEAVING_PER_PAGE) -> Page:
    """One page (``number``, as a query string gives it; out of range or not a number reads as the nearest page) of
    the people ``run`` would deactivate, in the run's order, each a :class:`Leaving`: one query for the page's
    people, whatever the run's size."""
    page = Paginator(run.would_deactivate, per_page).get_page(number)
    people = User.objects.in_bulk([entry["id"] for entry in page.object_list])
    page.object_list = [
        Leaving(id=entry["id"], username=entry["username"], reason=entry["reason"], person=people.get(entry["id"]))
        for entry in page.object_list
    ]
    return page
