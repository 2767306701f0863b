import logging
import os
import time

from celery import Celery
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun, worker_init

from identity import request_id

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


task_log = logging.getLogger("task")
REQUEST_ID_HEADER = "request_id"


@setup_logging.connect
def _django_logging(loglevel=None, **kwargs):
    # The worker logs as the site does (LOG_FORMAT, the request id, masking, the repeat limit) instead of Celery's
    # own handlers; its --loglevel still decides the level.
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@before_task_publish.connect
def _send_request_id(headers=None, **kwargs):
    # The task a request queues carries the request's id in its message (a custom header Celery hands the worker).
    if headers is not None and (current := request_id.get()) is not None:
        headers.setdefault(REQUEST_ID_HEADER, current)


_started: dict[str, tuple[float, object]] = {}


@task_prerun.connect
def _take_request_id(task_id=None, task=None, **kwargs):
    if task is None:
        return
    token = None
    if not getattr(task.request, "is_eager", False):  # an eager task runs inside its caller's request and its id
        offered = task.request.get(REQUEST_ID_HEADER)
        token = request_id.set_current(request_id.accept(offered) if offered else f"task-{task_id}")
    _started[task_id] = (time.monotonic(), token)


@task_postrun.connect
def _log_task(task_id=None, task=None, state=None, **kwargs):
    began, token = _started.pop(task_id, (None, None))
    if task is None or began is None:
        return
    duration_ms = round((time.monotonic() - began) * 1000, 1)
    task_log.info(
        "task %s %s in %.1f ms",
        task.name,
        state,
        duration_ms,
        extra={"task": task.name, "task_id": task_id, "state": state, "duration_ms": duration_ms},
    )
    if token is not None:
        request_id.reset(token)
