"""Run a background worker for ccweb's queues (default and engine) that outlives database outages.

The same options as django-tasks-db's `db_worker`; what differs is the worker (engine/workers.py):
database errors are waited out with backoff, the worker keeps a heartbeat row, and at start it
settles what dead workers left. Code reloading is left out: bin/run restarts workers instead.
"""

from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.management.base import CommandError
from django_tasks_db.management.commands import db_worker

from engine.workers import ResilientWorker


class Command(db_worker.Command):
    help = "Run a ccweb background worker (queues default and engine) that survives database outages."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(queue_name=",".join(settings.TASKS["default"]["QUEUES"]), reload=False)

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options: object,
    ) -> None:
        if reload:
            raise CommandError("ccweb_worker does not reload code; restart it (bin/run restarts dead workers).")
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        self.configure_logging(verbosity)
        worker = ResilientWorker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded,
        )
        worker.configure_signals()
        worker.run()
