"""Which outbox rows have a send task waiting in the broker, so that the sweep leaves them alone (REL-03).

A row's id goes into one Redis set, in the broker's own Redis, just before its task is published, and out of it
when the task starts. While the worker for a channel is down, its rows stay marked and the sweep dispatches none
of them again: one task per row however long the outage lasts. The marks live and die with the queues: when Redis
loses its data (a restart without persistence), the marks go with the tasks and the sweep dispatches the rows
again after the grace period. A mark can outlive its task only if the queue was purged or a worker took the task
and died before starting it; a queue that is empty holds no task, so for the rows of an empty queue the marks are
not believed. (A worker that has just taken the last tasks of a queue and not yet started them may so get one more
task for each: at most its prefetch count, and the row's claim makes the extra task a no-op, REL-02.)

The same Redis keeps the sweep to one run at a time. Without a Redis broker (tasks run in-process) nothing is
marked and nothing is locked.
"""

import contextlib
import logging

import redis
from celery import current_app
from django.conf import settings

logger = logging.getLogger(__name__)

MARKS = "outbox:in-broker"
SWEEP_LOCK = "outbox:sweep-lock"
_clients: dict[str, redis.Redis] = {}


def _client() -> redis.Redis | None:
    conf = current_app.conf
    url = conf.broker_url or ""
    if conf.task_always_eager or url.partition("://")[0] not in ("redis", "rediss"):
        return None
    if url not in _clients:
        # Short waits: this runs on the web request's path when a message is queued.
        _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    return _clients[url]


def mark(ids: list[int]) -> None:
    """Before publishing: these rows' tasks are in the broker."""
    # If Redis cannot be reached, the publish that follows finds out what is wrong with the broker and says so on the
    # rows. An unmarked row only costs one more task if the sweep finds it due while its task still waits.
    _change_marks("sadd", ids)


def unmark(ids: list[int]) -> None:
    """A task started, was never published, or its row is finished. A mark left behind only delays a sweep."""
    _change_marks("srem", ids)


def _change_marks(command: str, ids: list[int]) -> None:
    client = _client()
    if client is None or not ids:
        return
    try:
        getattr(client, command)(MARKS, *ids)
    except redis.RedisError as exc:
        logger.info("could not change %s outbox mark(s) with %s (%s)", len(ids), command, type(exc).__name__)


def still_waiting(rows: list[tuple[int, str]]) -> set[int]:
    """The ids among ``(id, channel)`` rows whose task is still in a queue that holds tasks."""
    client = _client()
    if client is None or not rows:
        return set()
    queues = sorted({settings.OUTBOX_QUEUES[channel] for _pk, channel in rows})
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            pipe.smismember(MARKS, [pk for pk, _channel in rows])
            *lengths, marked = pipe.execute()
    except redis.RedisError:
        return set()  # the broker is down: publishing will fail too, and say so on the rows
    holding = {queue for queue, length in zip(queues, lengths, strict=True) if length}
    return {
        pk
        for (pk, channel), is_marked in zip(rows, marked, strict=True)
        if is_marked and settings.OUTBOX_QUEUES[channel] in holding
    }


@contextlib.contextmanager
def one_sweep():
    """Yields whether this sweep may run: False while another holds the lock (sweeps piled up behind a busy one)."""
    client = _client()
    lock = None
    if client is not None:
        # Held at most as long as a task may run, so a sweep killed at its time limit does not stop the next.
        lock = client.lock(SWEEP_LOCK, timeout=settings.CELERY_TASK_TIME_LIMIT, blocking=False)
        try:
            if not lock.acquire():
                yield False
                return
        except redis.RedisError:
            lock = None  # the broker is down: expire what is due; publishing fails and marks the rows
    try:
        yield True
    finally:
        if lock is not None:
            with contextlib.suppress(redis.RedisError, redis.exceptions.LockError):
                lock.release()
