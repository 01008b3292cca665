"""Django's PostgreSQL backend, checking a pooled connection without a round trip when it has
nothing to say.

A pool with CONN_HEALTH_CHECKS sends an empty query before handing out each connection: one round
trip per request that touches the database, a quarter of what a webhook delivery costs PostgreSQL
(bench/webhooks.py). An idle connection the server has given up on is not silent, though: a
terminated backend (pg_terminate_backend, a restart, idle_session_timeout) sends its error and
closes the socket, which makes it readable. So the socket is looked at, at no cost, and only a
closed connection or one with something waiting is checked the full way, and replaced when the
check fails. What neither way sees in advance, a peer gone without a word (a cut network), fails
that request, and the pool drops the connection.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base
from django.utils.asyncio import async_unsafe


def _has_something_to_say(connection: Any) -> bool:
    if connection.closed:
        return True
    poller = select.poll()  # not select(): a process may hold sockets numbered past 1024
    try:
        poller.register(connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class DatabaseWrapper(base.DatabaseWrapper):
    @async_unsafe
    def get_new_connection(self, conn_params: dict) -> Any:
        connection = super().get_new_connection(conn_params)
        pool = self.pool
        if pool is None:
            return connection
        from psycopg_pool import ConnectionPool

        # A pool hands out at most max_size connections that were open before; past that it opens new ones.
        for _ in range(pool.max_size + 1):
            if not _has_something_to_say(connection):
                return connection
            try:
                ConnectionPool.check_connection(connection)
                return connection
            except Exception:  # noqa: BLE001 - broken: the pool drops it and hands out another
                connection.close()
                pool.putconn(connection)
                connection = super().get_new_connection(conn_params)
        return connection
