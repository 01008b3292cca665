"""Queuing a task of the database backend (django-tasks-db) as part of a statement ccweb writes
itself: the webhook's, which records a delivery, moves its job and queues what follows in one
statement (on SQLite, a trigger's), and the ORM-free INSERT of a transaction of several.

`task.enqueue()` builds the same row through the ORM (DBTaskResult.objects.create), sends
task_enqueued, and ccweb's receiver of that signal rings the workers' doorbell after the commit
(engine/wakeup.py). Here the row is built from the model the same way (the backend's id, the
model's defaults and pre_save, each field's own conversion for this database), and the caller
rings: wakeup.ring_when_committed() on SQLite; on PostgreSQL the statement itself calls
pg_notify (wakeup.notify_call), which PostgreSQL delivers when, and only if, it commits.
task_enqueued is not sent for these rows: ccweb's receiver is the ring, done here; django-tasks'
own only logs.

Only for a task whose backend is DatabaseBackend (uses_rows); any other is enqueued the usual way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field
from django.db.models.signals import pre_save
from django.utils import timezone
from django_tasks.base import Task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.compat import normalize_json
from django_tasks_db.models import DBTaskResult


def uses_rows(task: Task) -> bool:
    return isinstance(task.get_backend(), DatabaseBackend)


# The columns whose values differ from one row to the next; every other one holds the same value
# in every row of a task (its path, queue, priority and backend, the model's defaults).
PER_ROW = ("id", "enqueued_at", "args_kwargs")


def _row(task: Task, args: list) -> list[tuple[str, object, str]]:
    """(quoted column, value for this database, column type) of each column of the row that
    task.enqueue(*args) would insert now."""
    fresh = _fresh(task, args)
    return [
        (column, fresh.get(field.name, value), db_type)
        for (field, column, db_type), value in zip(
            _fields(connection.vendor), _same_in_every_row(task, connection.vendor), strict=True
        )
    ]


def _fresh(task: Task, args: list | None) -> dict[str, object]:
    """The values of PER_ROW for a new row of task(*args), ready for this database (without the
    arguments when args is None)."""
    meta = DBTaskResult._meta
    database = connections[DEFAULT_DB_ALIAS]  # `connection` looks it up again at each use
    fresh = {
        "id": meta.pk.get_db_prep_save(task.get_backend()._get_id(), database),
        "enqueued_at": database.ops.adapt_datetimefield_value(timezone.now()),
    }
    if args is not None:
        arguments = normalize_json({"args": args, "kwargs": {}})
        fresh["args_kwargs"] = meta.get_field("args_kwargs").get_db_prep_save(arguments, database)
    return fresh


@functools.lru_cache(maxsize=64)
def _same_in_every_row(task: Task, vendor: str) -> list[object]:
    """The values of a row of `task` as enqueue() builds it (the model with the backend's
    arguments, its defaults, pre_save and each field's conversion for this database), built once
    per task and database; those of PER_ROW are replaced for each row."""
    backend = task.get_backend()
    backend.validate_task(task)
    result = DBTaskResult(
        id=backend._get_id(),
        args_kwargs=normalize_json({"args": [], "kwargs": {}}),
        priority=task.priority,
        task_path=task.module_path,
        queue_name=task.queue_name,
        run_after=task.run_after,
        backend_name=backend.alias,
    )
    pre_save.send(sender=DBTaskResult, instance=result, raw=False, using=connection.alias, update_fields=None)
    return [field.get_db_prep_save(field.pre_save(result, True), connection) for field, _, _ in _fields(vendor)]


@functools.cache
def _fields(vendor: str) -> list[tuple[Field, str, str]]:
    """DBTaskResult's columns: each field, its quoted column and its type on this database."""
    return [
        (field, connection.ops.quote_name(field.column), field.db_type(connection))
        for field in DBTaskResult._meta.concrete_fields
    ]


def insert(task: Task, *args: object) -> tuple[str, list]:
    """The INSERT queuing task(*args), and its parameters: for the caller's transaction."""
    row = _row(task, list(args))
    sql = (
        f"INSERT INTO {connection.ops.quote_name(DBTaskResult._meta.db_table)} "
        f"({', '.join(column for column, _, _ in row)}) VALUES ({', '.join(['%s'] * len(row))})"
    )
    return sql, [value for _, value, _ in row]


def insert_from(task: Task, *, source: str, first_arg: str, where: str = "TRUE", name: str = "task") -> tuple[str, dict]:
    """An INSERT ... SELECT queuing task(x) once for each row of `source` (a WITH query of the same
    statement) that meets `where`, x being the SQL `first_arg` (a column of `source`), and its
    parameters, named <name>_id and <name>_enqueued_at. PostgreSQL only: the arguments are built as
    JSON by the statement, and the values the same in every row are written in as literals
    (psycopg's quoting). The text is written once for each task and place (_insert_select)."""
    fresh = _fresh(task, None)
    return (
        f"{_insert_select(task, connection.vendor, first_arg, name)} FROM {source} WHERE {where}",
        {f"{name}_id": fresh["id"], f"{name}_enqueued_at": fresh["enqueued_at"]},
    )


@functools.lru_cache(maxsize=64)
def _insert_select(task: Task, vendor: str, first_arg: str, name: str) -> str:
    """INSERT INTO ... SELECT of a row of `task` without its FROM: id and enqueued_at parameters
    named after `name`, the arguments [first_arg], the rest literals."""
    types = {field.name: db_type for field, _, db_type in _fields(vendor)}
    per_row = {
        "id": f"CAST(%({name}_id)s AS {types['id']})",
        "enqueued_at": f"CAST(%({name}_enqueued_at)s AS {types['enqueued_at']})",
        "args_kwargs": f"jsonb_build_object('args', jsonb_build_array({first_arg}), 'kwargs', '{{}}'::jsonb)",
    }
    return _insert_select_of(
        task, vendor, per_row, lambda value, db_type: f"CAST({connection.ops.compose_sql('%s', [value])} AS {db_type})"
    )


def insert_select_sqlite(task: Task, *, first_arg: str, row_id: str, enqueued_at: str) -> str:
    """The same for SQLite, in a trigger (conversions/services.py, _sqlite_apply_ddl): no
    parameters, the id and enqueued_at are the SQL `row_id` and `enqueued_at`, the arguments are
    built as JSON by SQLite, the rest are literals."""
    from django.db.backends.sqlite3.schema import DatabaseSchemaEditor

    literal = DatabaseSchemaEditor(connection).quote_value
    per_row = {
        "id": row_id,
        "enqueued_at": enqueued_at,
        "args_kwargs": f"json_object('args', json_array({first_arg}), 'kwargs', json_object())",
    }
    return _insert_select_of(task, "sqlite", per_row, lambda value, _db_type: literal(value))


def _insert_select_of(task: Task, vendor: str, per_row: dict[str, str], literal: Callable[[object, str], str]) -> str:
    """INSERT INTO ... SELECT of a row of `task` without its FROM: the SQL `per_row` gives for the
    columns of PER_ROW, the others written in by `literal(value, column type)`."""
    values = [
        per_row[field.name] if field.name in per_row else literal(value, db_type)
        for (field, _, db_type), value in zip(_fields(vendor), _same_in_every_row(task, vendor), strict=True)
    ]
    return (
        f"INSERT INTO {connection.ops.quote_name(DBTaskResult._meta.db_table)} "
        f"({', '.join(column for _, column, _ in _fields(vendor))}) SELECT {', '.join(values)}"
    )


def fresh_id(task: Task) -> object:
    """The id of a new row of `task`, ready for this database."""
    return _fresh(task, None)["id"]
