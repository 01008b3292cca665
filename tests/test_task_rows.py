"""Tasks queued by ccweb's own statements (conversions/task_rows.py): the same row enqueue() writes,
a worker's doorbell rung when (and only when) the statement's transaction commits."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from conversions import task_rows
from conversions.models import ConversionJob
from conversions.tasks import notify_owner, store_outputs
from engine import wakeup
from engine.wakeup import Doorbell
from tests.factories import post_signed_webhook

pytestmark = pytest.mark.django_db(transaction=True)

# Differ from one row to the next, whoever writes it.
OWN = ("id", "enqueued_at")


def row(result: DBTaskResult) -> dict:
    return {name: value for name, value in model_to_dict(result).items() if name not in OWN}


def test_a_row_queued_by_a_statement_is_the_row_enqueue_writes() -> None:
    enqueued = DBTaskResult.objects.get(pk=store_outputs.enqueue(42).id)
    with connection.cursor() as cursor:
        cursor.execute(*task_rows.insert(store_outputs, 42))
    [written] = DBTaskResult.objects.exclude(pk=enqueued.pk)

    assert row(written) == row(enqueued)
    assert written.task_result.args == [42]
    assert written.task_result.task.func is store_outputs.func
    assert abs((written.enqueued_at - enqueued.enqueued_at).total_seconds()) < 5


def test_a_row_queued_for_each_row_of_a_query_is_that_row_too() -> None:
    """PostgreSQL: for each row of a WITH query of the same statement; SQLite: as the webhook's
    trigger does it, the id and time given as SQL."""
    enqueued = DBTaskResult.objects.get(pk=notify_owner.enqueue(7).id)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            statement, params = task_rows.insert_from(notify_owner, source="ids", first_arg="ids.n", where="ids.n > 6")
            cursor.execute(f"WITH ids (n) AS (VALUES (6), (7)), queued AS ({statement}) SELECT 1", params)
        else:
            statement = task_rows.insert_select_sqlite(notify_owner, first_arg="ids.n", row_id="%s", enqueued_at="%s")
            cursor.execute(
                f"{statement} FROM (SELECT 6 AS n UNION ALL SELECT 7) AS ids WHERE ids.n > 6",
                [task_rows.fresh_id(notify_owner), connection.ops.adapt_datetimefield_value(timezone.now())],
            )
    [written] = DBTaskResult.objects.exclude(pk=enqueued.pk)

    assert row(written) == row(enqueued)
    assert written.task_result.args == [7]


def rung(doorbell: Doorbell, within: float) -> bool:
    started = time.monotonic()
    doorbell.wait(within)
    return time.monotonic() - started < within * 0.9


def test_the_workers_are_rung_once_the_transaction_commits_and_not_before() -> None:
    doorbell = Doorbell(["default"])
    doorbell.open()
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(*task_rows.insert(store_outputs, 1))
            wakeup.ring_when_committed(store_outputs)
            assert not rung(doorbell, 0.5)
        assert rung(doorbell, 5.0)

        with pytest.raises(RuntimeError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(*task_rows.insert(store_outputs, 2))
            wakeup.ring_when_committed(store_outputs)
            raise RuntimeError("rolled back")
        assert not rung(doorbell, 0.5)
    finally:
        doorbell.close()
    assert [result.args_kwargs["args"] for result in DBTaskResult.objects.all()] == [[1]]


@pytest.mark.parametrize("notify_by_email", [False, True])
def test_a_finishing_webhook_queues_the_copy_and_the_mail_asked_for_and_rings(alice, settings, notify_by_email) -> None:
    job = ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="6b4ea3ea-0000-4000-8000-0000000000bb",
        notify_by_email=notify_by_email,
    )
    doorbell = Doorbell(["default"])
    doorbell.open()
    try:
        response = post_signed_webhook(job.remote_job_id, "finished")
        assert response.json() == {"result": "applied"}
        assert rung(doorbell, 5.0)
    finally:
        doorbell.close()
    queued = sorted((result.task_path, result.args_kwargs["args"]) for result in DBTaskResult.objects.all())
    expected = [("conversions.tasks.store_outputs", [job.pk])]
    if notify_by_email:
        expected.insert(0, ("conversions.tasks.notify_owner", [job.pk]))
    assert queued == expected
    assert all(result.status == "READY" for result in DBTaskResult.objects.all())


def test_with_another_task_backend_a_finishing_webhook_enqueues_through_it(alice, settings) -> None:
    """No row is written by the webhook's statement then: the copy and the e-mail are enqueued the
    usual way, once the delivery is applied (on PostgreSQL by a transaction of several statements)."""
    from django_tasks import default_task_backend

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["default", "engine"]}}
    job = ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="6b4ea3ea-0000-4000-8000-0000000000cc", notify_by_email=True,
    )
    response = post_signed_webhook(job.remote_job_id, "finished")

    assert response.json() == {"result": "applied"}
    job.refresh_from_db()
    assert job.status == "finished"
    assert sorted((result.task.name, result.args) for result in default_task_backend.results) == [
        ("notify_owner", [job.pk]), ("store_outputs", [job.pk])
    ]
    assert not DBTaskResult.objects.exists()
