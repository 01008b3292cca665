"""ccweb/db/postgresql: a pooled connection is checked before use only when its socket has something
to say, so a quiet one costs no round trip and one the server terminated is never handed out."""

import time

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pooled(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the pool is PostgreSQL's; SQLite connections are files, not sockets a server can close")
    assert connection.pool is not None, "DATABASE_POOL is on by default"
    checks: list[object] = []
    execute = psycopg.Connection.execute

    def counted(self: psycopg.Connection, query: object, *args: object, **kwargs: object) -> object:
        if query == "":  # psycopg_pool's check: an empty query, one round trip
            checks.append(self)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    return checks


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate_every_other_backend() -> int:
    """What a restart or an administrator does to the pool's idle connections."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "localhost", port=db["PORT"] or 5432, user=db["USER"],
                         password=db["PASSWORD"] or None, dbname=db["NAME"], autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_a_quiet_pooled_connection_is_handed_out_without_a_round_trip(pooled):
    first = backend_pid()
    connection.close()  # back to the pool, as at the end of a request

    assert backend_pid() > 0  # the next request's connection works
    assert pooled == [], "no empty query was sent to check it"
    assert first > 0


def test_a_connection_the_server_terminated_is_replaced_before_anyone_uses_it(pooled):
    before = backend_pid()
    connection.close()
    assert terminate_every_other_backend() >= 1
    time.sleep(0.2)  # the terminated backends' goodbyes reach the pool's sockets

    after = backend_pid()  # a query on a terminated connection would raise here

    assert after != before
    assert len(pooled) >= 1, "the connection that had something to say was checked the full way"


# --- Prepared statements (the webhook's) ------------------------------------------------------------


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        return [statement for (statement,) in cursor.fetchall()]


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements of a connection are PostgreSQL's")


def test_a_prepared_cursor_prepares_its_query_once_and_binds_values_apart(postgresql):
    hostile = "'); DROP TABLE conversions_conversionjob; --"
    for _ in range(3):
        with connection.prepared_cursor() as cursor:
            cursor.execute("SELECT %s::text, %s::int + 1", [hostile, 1])
            assert cursor.fetchone() == (hostile, 2)
    assert prepared_statements() == ["SELECT $1::text, $2::int + 1"]

    with connection.cursor() as cursor:  # Django's own cursors still bind on the client
        for _ in range(10):
            cursor.execute("SELECT %s::int", [1])
    assert prepared_statements() == ["SELECT $1::text, $2::int + 1"]


def test_a_prepared_cursor_fails_as_django_cursors_do(postgresql):
    from django.db import ProgrammingError

    with pytest.raises(ProgrammingError), connection.prepared_cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table WHERE id = %s", [1])
    with connection.prepared_cursor() as cursor:  # the connection goes on
        cursor.execute("SELECT %s::int", [5])
        assert cursor.fetchone() == (5,)


def test_the_webhook_statement_is_prepared_and_reused(postgresql, alice, settings):
    from conversions.models import ConversionJob
    from tests.factories import post_signed_webhook

    for n in range(3):
        job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id=f"prepared-{n}")
        response = post_signed_webhook(job.remote_job_id, "finished")
        assert response.json() == {"result": "applied"}
        job.refresh_from_db()
        assert (job.status, job.files.count()) == ("finished", 1)
    [statement] = [s for s in prepared_statements() if s.startswith("WITH recorded AS")]
    assert "$1" in statement and "job.finished" not in statement  # the values travel apart
