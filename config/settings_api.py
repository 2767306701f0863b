"""Settings of the processes that answer VPNs: the Auth API's (``config.wsgi_api``, deploy/enrollment-api.service)
and the RADIUS server's (``manage.py run_radius_server --settings config.settings_api``).

The site's settings, with the middleware, the URLs and the database connection rule a VPN's check needs and nothing
more. Sessions, CSRF, the signed-in person, django-otp's verified device, messages, the content security policy and
the static files all serve people with browsers; an Auth API request is signed, not cookied, and needs none of them.
"""

from config.settings import *  # noqa: F403 (the site's settings, changed below where the API differs)
from config.settings import DATABASES

MIDDLEWARE = [
    # A load balancer probes the node by its address over plain HTTP: answered before anything reads the Host.
    "config.health.middleware",
    "identity.request_id.middleware",  # the request's id and its log line, as on the site
    # A request no VPN sends (a wrong Host, an oversized body) is answered in Duo's error shape before anything else
    # reads it (API-10): the HTTPS redirect would otherwise read the Host and log its refusal as an error.
    "vpn.middleware.refuse_malformed_requests",
    "django.middleware.security.SecurityMiddleware",  # the HTTPS redirect and HSTS
]
ROOT_URLCONF = "config.urls_api"
WSGI_APPLICATION = "config.wsgi_api.application"

# Django's health check is a SELECT 1 before each request's first query; both VPN doors look at the idle connection's
# socket instead, with no round trip (identity.sql.replace_if_ended), and a connection lost mid-request fails that request closed
# (API-07).
DATABASES = {**DATABASES, "default": {**DATABASES["default"], "CONN_HEALTH_CHECKS": False}}

# Django's checks of a site's middleware, which this process is not: the admin and its sessions, messages and signed-in
# person are the site's process's (these URLs hold no admin); no page here is framed, and no request is authenticated
# by a cookie, so there is nothing for CSRF or X-Frame-Options to protect (every Auth API request is signed, API-01).
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "security.W002", "security.W003"]
