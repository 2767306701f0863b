"""The web site: ``gunicorn config.wsgi`` (deploy/enrollment-web.service).

The Auth API has a process of its own (config.wsgi_api, deploy/enrollment-api.service); the site's URLs still hold
its paths, for the test client and a proxy not yet told where the API is, served here through all of the site's
middleware.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
