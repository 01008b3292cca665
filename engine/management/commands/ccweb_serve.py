"""Serve ccweb in production shape: gunicorn plus task workers, supervised (engine/supervisor.py)."""

from __future__ import annotations

from argparse import ArgumentParser
from contextlib import ExitStack
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from engine.supervisor import (
    Child,
    Supervisor,
    answering,
    engine_server,
    gunicorn_args,
    shared_metrics,
    worker_args,
)


def calls_its_own_engine() -> bool:
    """ccweb's client talks to the engine served here, through the public server unless told otherwise."""
    return (
        settings.ENGINE_EMBEDDED
        and not settings.CLOUDCONVERT_API_KEY
        and not settings.ENGINE_INTERNAL_URL
        and settings.ENGINE_URL == f"{settings.PUBLIC_URL}/engine"
    )


class Command(BaseCommand):
    help = (
        "Serve ccweb with gunicorn (gthread) and run its task workers beside it, restarting any that dies; "
        "Ctrl+C or SIGTERM stops everything."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-processes", type=int, default=settings.WEB_PROCESSES)
        parser.add_argument("--web-threads", type=int, default=settings.WEB_THREADS)
        parser.add_argument("--engine-processes", type=int, default=settings.ENGINE_SERVER_PROCESSES,
                            help="processes of the loopback server ccweb's own calls to its engine go to; 0: none")
        parser.add_argument("--workers", type=int, default=settings.WORKER_PROCESSES, help="task workers")
        parser.add_argument("--message", default="", help="printed once the web server answers")

    def handle(self, *args: Any, host: str, port: int, web_processes: int, web_threads: int, engine_processes: int,
               workers: int, message: str, **options: Any) -> None:
        children = [Child(f"worker {n}", worker_args(settings.BASE_DIR)) for n in range(1, workers + 1)]
        if not web_processes and not children:
            raise CommandError("Nothing to run: give --web-processes or --workers a number above 0.")

        def announce() -> None:
            if web_processes:
                self.stdout.write(message or f"ccweb is running at http://{host}:{port}/")
            else:  # a worker machine
                self.stdout.write(f"{workers} worker(s) running; Ctrl+C stops them.")
            self.stdout.flush()

        with ExitStack() as stack:
            stack.enter_context(shared_metrics())
            if web_processes:
                bind = f"{host}:{port}"
                children.insert(0, Child("web server", gunicorn_args(bind=bind, processes=web_processes,
                                                                     threads=web_threads)))
                if engine_processes and calls_its_own_engine():
                    children.insert(1, stack.enter_context(engine_server(processes=engine_processes,
                                                                         threads=web_threads)))
            ready = answering(host, port) if web_processes else (lambda: True)
            Supervisor(children, cwd=settings.BASE_DIR, ready=ready, on_ready=announce).run()
