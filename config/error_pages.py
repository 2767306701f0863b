"""The site's own 400, 403, 404 and 500 pages, and the page for a refused form (CSRF).

Django's defaults are bare text with no landmark and no way back. These use the site's layout, link back to the
start and name the help desk. The 500 page is rendered without the request's context processors: whatever broke
(the database, say) must not break the error page too.
"""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string

PAGES = {
    400: (
        "We could not read that request",
        "Something in it was not what this site expects. Go back, reload the page and try again.",
    ),
    403: (
        "You cannot open this page",
        "Your account does not give you access to it. If you think it should, ask the help desk.",
    ),
    404: (
        "Page not found",
        "There is no page at this address. It may be mistyped, or the link you followed is old.",
    ),
    500: (
        "Something went wrong on our side",
        "We could not finish what you asked. Nothing you did caused it; please try again in a few minutes.",
    ),
}
FORM_EXPIRED = (
    "This form has expired",
    "The page was open too long, or cookies are blocked for this site. Go back, reload the page and send the form "
    "again. Nothing was changed.",
)


def _context(status: int, title: str, text: str) -> dict:
    return {"status": status, "title": title, "text": text}


def _page(request, status: int, title_and_text=None):
    title, text = title_and_text or PAGES[status]
    return render(request, "errors/error.html", _context(status, title, text), status=status)


def bad_request(request, exception=None):
    return _page(request, 400)


def permission_denied(request, exception=None):
    return _page(request, 403)


def page_not_found(request, exception=None):
    return _page(request, 404)


def csrf_failure(request, reason=""):
    return _page(request, 403, FORM_EXPIRED)


def server_error(request):
    title, text = PAGES[500]
    context = _context(500, title, text) | {
        "INSTITUTION_NAME": settings.INSTITUTION_NAME,
        "HELP_DESK_CONTACT": settings.HELP_DESK_CONTACT,
    }
    return HttpResponse(render_to_string("errors/error.html", context), status=500)
