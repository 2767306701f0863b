"""Filters the LOGGING setting names. Logging is set up before the apps load, so these import nothing of ours."""

import logging


class QuietProbes(logging.Filter):
    """Drops django.request's record of a 503 from /readyz: "not ready" is the probe's answer, and a load balancer
    asks every few seconds. Any other status from it (a 500 is a bug) is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 503 and getattr(request, "path_info", "") == "/readyz")
