import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
site = get_wsgi_application()  # sets Django up

from config.health import PROBE_PATHS  # noqa: E402 (needs Django set up)
from vpn.wsgi import ApiHandler, LeanHandler, dispatch  # noqa: E402

# The Duo Auth API (the VPN's hot path) skips the site's middleware; see vpn/wsgi.py.
site_and_api = dispatch(site, ApiHandler())
# The health probes skip all of it: a load balancer asks by the node's address, over plain HTTP (config/health.py).
probes = LeanHandler()


def application(environ, start_response):
    if environ.get("PATH_INFO", "") in PROBE_PATHS:
        return probes(environ, start_response)
    return site_and_api(environ, start_response)
