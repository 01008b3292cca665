"""ccweb/db/postgresql: a connection a thread keeps from one request to the next is checked before
its first use in a request only when its socket has something to say, so a quiet one costs no
round trip and one the server terminated is never used."""

import time

import psycopg
import pytest
from django.db import close_old_connections, connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kept(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("kept connections are checked on PostgreSQL; SQLite connections are files, not sockets a server can close")
    assert connection.settings_dict["CONN_MAX_AGE"] > 0, "a thread keeps its connection by default"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"], "and it is checked before each request uses it"
    checks: list[object] = []
    execute = psycopg.Cursor.execute

    def counted(self: psycopg.Cursor, query: object, *args: object, **kwargs: object) -> object:
        if query == "SELECT 1":  # Django's check (DatabaseWrapper.is_usable): one round trip
            checks.append(self)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    return checks


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate_every_other_backend() -> int:
    """What a restart or an administrator does to the connections the threads keep."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "localhost", port=db["PORT"] or 5432, user=db["USER"],
                         password=db["PASSWORD"] or None, dbname=db["NAME"], autocommit=True) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_a_quiet_kept_connection_is_used_again_without_a_round_trip(kept):
    first = backend_pid()
    close_old_connections()  # the end of a request, then the start of the next

    assert backend_pid() == first  # the next request's query runs on the same connection
    assert kept == [], "no SELECT 1 was sent to check it"


def test_a_connection_the_server_terminated_is_replaced_before_anyone_uses_it(kept):
    before = backend_pid()
    close_old_connections()
    assert terminate_every_other_backend() >= 1
    time.sleep(0.2)  # the terminated backend's goodbye reaches the socket

    after = backend_pid()  # a query on the terminated connection would raise here

    assert after != before
    assert len(kept) == 1, "the connection that had something to say was checked the full way"


def test_the_webhook_checks_a_kept_connection_too(kept, alice):
    """Its statement runs on a prepared cursor (below), which checks the connection as cursor() does,
    and is the first query of its request once its text is built (the first delivery builds it)."""
    from conversions.models import ConversionJob
    from tests.factories import post_signed_webhook

    first, second = (
        ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id=f"kept-{n}") for n in (1, 2)
    )
    assert post_signed_webhook(first.remote_job_id, "finished").json() == {"result": "applied"}
    before = backend_pid()
    close_old_connections()
    assert terminate_every_other_backend() >= 1
    time.sleep(0.2)

    assert post_signed_webhook(second.remote_job_id, "finished").json() == {"result": "applied"}

    assert backend_pid() != before
    second.refresh_from_db()
    assert second.status == "finished"


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


def test_with_prepare_off_nothing_is_prepared_and_the_webhook_applies_all_the_same(postgresql, alice, monkeypatch):
    """DATABASE_PREPARE=false, for a PgBouncer in transaction mode before 1.21, which cannot keep a
    connection's prepared statements: prepared_cursor() is then a plain cursor."""
    from conversions.models import ConversionJob
    from tests.factories import post_signed_webhook

    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "prepare", False)
    connection.close()  # a new connection, without an earlier test's statements
    job = ConversionJob.objects.create(user=alice, output_format="jpg", remote_job_id="unprepared")

    assert post_signed_webhook(job.remote_job_id, "finished").json() == {"result": "applied"}

    job.refresh_from_db()
    assert (job.status, job.files.count()) == ("finished", 1)
    assert prepared_statements() == []
