import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("identity_enrollment")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender=None, **kwargs):
    # A task in a worker is a request: a connection past CONN_MAX_AGE, or one that raised, is closed, and the next
    # query checks the connection first (CONN_HEALTH_CHECKS, REL-08). An eager task runs inside its caller's request.
    if sender is not None and not getattr(sender.request, "is_eager", False):
        from django.db import close_old_connections

        close_old_connections()


@worker_init.connect
def _serve_metrics(**kwargs):
    # In the worker's main process, before the pool forks: with PROMETHEUS_MULTIPROC_DIR set, its scrape adds up the
    # counts of every pool process (docs/operations.md, "Metrics").
    from django.conf import settings

    if settings.METRICS_PORT:
        from identity import metrics

        metrics.serve_on_port(settings.METRICS_PORT)
