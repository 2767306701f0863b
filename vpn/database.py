"""The VPN doors' database connection between checks: replaced before a check when the server has ended it."""

import select

import psycopg
from django.db import connection, transaction


def replace_if_ended_by_server() -> None:
    """Close the idle connection when PostgreSQL has ended it, so the check's first statement opens a new one.

    A server that ends a connection (a restart, ``pg_terminate_backend``, an idle timeout) says goodbye and closes its
    end, so the idle socket reads ready although nothing was asked: one poll of it, no round trip. Django's own health
    check (``CONN_HEALTH_CHECKS``) asks ``SELECT 1`` instead, a round trip per request; the VPN doors' settings turn
    it off (config.settings_api). A connection lost without a word (a network cut) still fails the check's first
    statement: the caller answers with an error, never a success, and Django closes the broken connection as the
    request ends. Inside a transaction (a caller's, a test's) the connection is left alone.
    """
    idle = connection.connection  # None: not connected yet, and the first statement connects
    if idle is not None and transaction.get_autocommit() and _ended_by_server(idle):
        connection.close()


def _ended_by_server(idle: psycopg.Connection) -> bool:
    """Whether the idle connection's socket has something to read: the server's goodbye, or its end closed."""
    try:
        poller = select.poll()
        poller.register(idle.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no socket any more
        return True
