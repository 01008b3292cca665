"""Django's PostgreSQL backend, checking a kept connection without a round trip when it has nothing
to say, and offering a cursor of prepared statements (prepared_cursor) for the statement the
webhook runs for every delivery.

Each thread keeps its connection from one request to the next (CONN_MAX_AGE), and with
CONN_HEALTH_CHECKS Django checks it before its first use in each request. Django's check asks the
server (SELECT 1): one round trip per request that touches the database, a quarter of what a
webhook delivery costs PostgreSQL (bench/webhooks.py). An idle connection the server has given up
on is not silent, though: a terminated backend (pg_terminate_backend, a restart,
idle_session_timeout) sends its error and closes the socket, which makes it readable. So the socket
is looked at, at no cost, and only a closed connection or one with something waiting is checked the
full way, and replaced when the check fails. What neither way sees in advance, a peer gone without
a word (a cut network), fails that request, and Django closes the connection after it.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base, operations


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

    @property
    def prepares(self) -> bool:
        """OPTIONS["prepare"] (DATABASE_PREPARE): false behind a PgBouncer that cannot keep prepared
        statements (transaction mode before 1.21); prepared_cursor() then gives a plain cursor."""
        return self.settings_dict["OPTIONS"].get("prepare", True)

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        params.pop("prepare", None)  # ccweb's, not a connection parameter
        return params

    def is_usable(self) -> bool:
        """Django's check of a kept connection before its first use in a request, without a round
        trip when its socket is quiet (see the module's docstring)."""
        if self.connection is not None and not _has_something_to_say(self.connection):
            return True
        return super().is_usable()

    def prepared_cursor(self) -> Any:
        """A cursor like cursor()'s whose queries are prepared statements (PreparedCursor)."""
        if not self.prepares:
            return self.cursor()
        self.close_if_health_check_failed()  # as cursor() does first
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
