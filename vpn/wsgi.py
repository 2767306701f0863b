"""The Auth API served without the site's middleware: a VPN check needs none of it.

Sessions, CSRF, the signed-in person, django-otp's verified device, messages, the content security policy and the
static files all serve people with browsers; on the Auth API they cost a third of a millisecond of CPU per request
and do nothing (its requests are signed, not cookied). The request's id and log line come first, as on the site
(identity.request_id); then only Django's ``SecurityMiddleware`` stays, for the HTTPS
redirect, behind a gate that answers a request no VPN sends (a wrong Host, an oversized body) in Duo's error shape
before anything else reads it (API-10): the redirect would otherwise read the Host and log its refusal as an error.
``config.wsgi`` sends ``/auth/v2/`` here and everything else through the site's full stack.
"""

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.middleware.security import SecurityMiddleware

from identity import request_id

from .views import refuse_malformed

API_PREFIX = "/auth/v2/"


def _gate(get_response):
    def gate(request):
        return refuse_malformed(request) or get_response(request)

    return gate


class LeanHandler(WSGIHandler):
    """A handler whose middleware is its own ``middleware`` (factories ``get_response -> handler``, outermost
    first, as a MIDDLEWARE list orders them) instead of the site's; none by default."""

    middleware: tuple = ()

    def load_middleware(self, is_async=False):
        # What BaseHandler.load_middleware builds from a MIDDLEWARE list holding these, and nothing else.
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        for factory in reversed(self.middleware):
            handler = convert_exception_to_response(factory(handler))
        self._middleware_chain = handler


class ApiHandler(LeanHandler):
    middleware = (request_id.middleware, _gate, SecurityMiddleware)


def dispatch(site, api):
    """A WSGI application sending the Auth API's paths to ``api`` and the rest to ``site``."""

    def application(environ, start_response):
        if environ.get("PATH_INFO", "").startswith(API_PREFIX):
            return api(environ, start_response)
        return site(environ, start_response)

    return application
