"""Which outbox rows have a send task waiting in the broker, so that the sweep leaves them alone (REL-03).

Just before a row's task is published, the row's id goes into one Redis hash in the broker's own Redis, with how
often the row had been claimed (``attempts``). Every claim adds one to that count, so a row still waiting has the
count its mark says; one whose task has run (sent, failed, retrying) has moved on, and its mark is dropped by the
sweep. Nothing is done on the send path. While the worker for a channel is down, its rows stay marked and the sweep
dispatches none of them again: one task per row however long the outage lasts.

The marks live and die with the queues: when Redis loses its data (a restart without persistence), the marks go
with the tasks and the sweep dispatches the rows again after the grace period. A mark can outlive its task only if
the queue was purged or a worker took the task and died before starting it; a queue that is empty holds no task,
so for the rows of an empty queue the marks are not believed. (A worker that has just taken the last tasks of a
queue and not yet started them may so get one more task for each: at most its prefetch count, and the row's claim
makes the extra task a no-op, REL-02.)

The same Redis keeps the sweep to one run at a time. Without a Redis broker (tasks run in-process) nothing is
marked and nothing is locked.
"""

import contextlib
import logging

import redis
from celery import current_app
from django.conf import settings

from ..models import OutboundMessage

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


def mark(attempts: dict[int, int]) -> None:
    """Before publishing: the tasks of these rows (id: how often claimed so far) are in the broker."""
    # If Redis cannot be reached, the publish that follows finds out what is wrong with the broker and says so on the
    # rows. An unmarked row only costs one more task if the sweep finds it due while its task still waits.
    if attempts:
        _change_marks(lambda client: client.hset(MARKS, mapping=attempts), len(attempts))


def unmark(ids: list[int]) -> None:
    """These rows' tasks were never published, or have run. A mark left behind is dropped by the next sweep."""
    if ids:
        _change_marks(lambda client: client.hdel(MARKS, *ids), len(ids))


def _change_marks(change, count: int) -> None:
    client = _client()
    if client is None:
        return
    try:
        change(client)
    except redis.RedisError as exc:
        logger.info("could not change %s outbox mark(s) (%s)", count, type(exc).__name__)


def still_waiting(rows: list[tuple[int, str, int]]) -> set[int]:
    """The ids among due ``(id, lane, attempts)`` rows whose task still waits in a queue that holds tasks.

    Drops the marks of rows whose task has run or that are finished.
    """
    client = _client()
    if client is None:
        return set()
    queues = sorted({settings.OUTBOX_QUEUES[channel] for _pk, channel, _attempts in rows})
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            pipe.hgetall(MARKS)
            *lengths, marks = pipe.execute()
    except redis.RedisError:
        return set()  # the broker is down: publishing will fail too, and say so on the rows
    marks = {int(pk): int(attempts) for pk, attempts in marks.items()}
    live = dict(
        OutboundMessage.objects.filter(pk__in=list(marks), status=OutboundMessage.Status.QUEUED).values_list(
            "pk", "attempts"
        )
    )
    unmark([pk for pk, attempts in marks.items() if live.get(pk) != attempts])
    holding = {queue for queue, length in zip(queues, lengths, strict=True) if length}
    return {
        pk for pk, channel, attempts in rows if marks.get(pk) == attempts and settings.OUTBOX_QUEUES[channel] in holding
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
