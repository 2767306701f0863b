import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
site = get_wsgi_application()  # sets Django up

from vpn.wsgi import ApiHandler, dispatch  # noqa: E402 (needs Django set up)

# The Duo Auth API (the VPN's hot path) skips the site's middleware; see vpn/wsgi.py.
application = dispatch(site, ApiHandler())
