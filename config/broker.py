"""kombu's Redis transport, with one mended failure: a closed connection is a connection error, not a crash.

When the broker drops while the worker's consumer channel is waiting on it (BRPOP), kombu 5.7.0 closes that channel
twice: once in ``Connection.collect()``, which fails part-way on the dead socket and then detaches the connection
from its transport (``transport.client = None``), and again in ``Connection.close()``. The second close tries to
put the unacknowledged messages back (the text a busy process is sending) and builds a new Redis connection pool
from the detached connection's address: ``AttributeError: 'NoneType' object has no attribute 'hostname'``. Celery
ignores only the transport's connection errors while closing, so the AttributeError ends the worker
("Unrecoverable error"). A late acknowledgement on the old channel reaches the same place.

Here a channel whose connection is gone raises redis-py's ``ConnectionError`` instead, which Celery already treats
as the lost connection it is: it reconnects, and logs an acknowledgement it could not make. Nothing is lost: a
message neither put back nor acknowledged stays in the broker's unacknowledged set and is delivered again after
the visibility timeout, and the outbox row, not the broker, decides whether it is sent (REL-02).

Selected by ``CELERY_BROKER_TRANSPORT`` (Celery's ``broker_transport`` takes a transport class by its import path)
for ``redis://`` and ``rediss://`` brokers only.

Why an override of a private method, and neither an upgrade nor a setting (checked in December 2026):
- No release mends it. kombu 5.7.0 and Celery 5.7.0 are the newest on PyPI, and kombu's development branch still
  builds the pool from ``self.connection.client`` in ``_connparams`` and still detaches the connection in
  ``Connection.collect()``. redis-py (8.2.0 is newer than the pin) is not reached before the failure.
- No documented setting avoids it without losing work. The one that avoids both paths is the Redis transport's
  ``ack_emulation=False`` (``CELERY_BROKER_TRANSPORT_OPTIONS``): a message then leaves Redis when a worker takes it,
  an acknowledgement touches nothing, and a failed put-back is logged instead of raised. But it also gives up what
  ``acks_late`` is for (REL-02; the exports in reports/tasks.py): a message whose worker dies or loses the broker
  mid-task is gone, where today it is delivered again after the visibility timeout. What makes the close put
  messages back (the channel's ``do_restore``, the QoS's ``restore_at_shutdown``) is a class attribute, not a
  transport option; ``worker_cancel_long_running_tasks_on_connection_loss`` decides what happens to running tasks,
  not how the channel is closed.
- It still happens on kombu 5.7.0: without this module the fault test below ended the worker in one run of three
  (at the sixth drop, with the traceback above); with it, three runs of three passed.
The same traceback is kombu's issue 582 (celery/kombu#582, closed without a fix); kombu's answer to a sibling crash
(a stale socket's KeyError, celery/kombu#2592) was to make it one of the transport's connection errors, as this does.
Remove this module, and its entry in ``identity/tests/test_private_state.py``, when a kombu release stops building a
pool from a detached connection: the fault test
``test_rel06_the_worker_outlives_redis_dropping_while_it_is_busy_ten_times_in_a_row`` then passes without it.
"""

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the connection to the broker was closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
