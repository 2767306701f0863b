"""The project's settings without Django's ``SELECT 1`` before a request's first query (``CONN_HEALTH_CHECKS``), as
the Auth API's own process is meant to run: a connection the server dropped then fails one check (an error, never
an allow) and is replaced at the end of that request."""

from config.settings import *  # noqa: F403
from config.settings import DATABASES

DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
