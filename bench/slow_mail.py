"""The Celery app of the benchmarks' workers, with a mail server that takes ``BENCH_MAIL_MS`` to take each message.

``celery -A bench.slow_mail worker``: the project's app (config.celery) and settings, with only the mail backend
replaced, so that a reminder's send costs what a real mail server's round trips would, and nothing leaves the machine.
"""

import os
import time

from django.conf import settings
from django.core.mail.backends.dummy import EmailBackend

from config.celery import app

__all__ = ["app"]


class SlowMailBackend(EmailBackend):
    def send_messages(self, email_messages):
        time.sleep(int(os.environ.get("BENCH_MAIL_MS", "20")) / 1000)
        return len(list(email_messages))


settings.EMAIL_BACKEND = "bench.slow_mail.SlowMailBackend"
