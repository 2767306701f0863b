"""The Auth API's own process: ``gunicorn config.wsgi_api`` (deploy/enrollment-api.service).

Its settings module is set here, not taken from the environment: the site's unit and this one share one environment
file, and this process must never run with the site's middleware and URLs.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings_api"
application = get_wsgi_application()
