"""Django's PostgreSQL backend, checking a pooled connection without a round trip when it has
nothing to say, and offering a cursor of prepared statements (prepared_cursor) for the statement
the webhook runs for every delivery.

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

import psycopg
from django.db.backends.postgresql import base, operations
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


# A psycopg prepare_threshold no query reaches: only a cursor asking (PreparedCursor) prepares.
PREPARE_ONLY_WHEN_ASKED = 2**31 - 1


class PreparedCursor(base.ServerBindingCursor):
    """Runs each query as a prepared statement of its connection, its parameters sent apart from
    it (server-side binding): PostgreSQL parses and plans a query once per connection instead of
    at every execution, and never reads the values as SQL text. For a statement run again and
    again with other values (the webhook's); psycopg keeps up to 100 per connection."""

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
        return super().execute(query, params, prepare=True, binary=binary)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str | None:
        """The SQL of a query of a PreparedCursor with its values, as Django shows a query run
        with server-side binding (DEBUG, the tests' query capture): psycopg keeps no text of it."""
        if isinstance(cursor, PreparedCursor):
            try:
                return self.compose_sql(sql, params)
            except psycopg.errors.DataError:
                return None
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def prepared_cursor(self) -> Any:
        """A cursor like cursor()'s whose queries are prepared statements (PreparedCursor)."""
        self.ensure_connection()
        if self.connection.prepare_threshold is None:
            # Django's None prepares nothing, even when asked. Prepared only when asked: Django's
            # own cursors bind on the client, and psycopg prepares nothing of theirs.
            self.connection.prepare_threshold = PREPARE_ONLY_WHEN_ASKED
        with self.wrap_database_errors:
            cursor = PreparedCursor(self.connection)
            timezone_loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, base.Format.TEXT)
            if self.timezone != timezone_loader.timezone:
                base.register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)

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
