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
