"""Serve ccweb in production shape: gunicorn plus task workers, supervised (engine/supervisor.py)."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from engine.supervisor import Child, Supervisor, answering, gunicorn_args, worker_args


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
        parser.add_argument("--workers", type=int, default=settings.WORKER_PROCESSES, help="task workers")
        parser.add_argument("--message", default="", help="printed once the web server answers")

    def handle(self, *args: Any, host: str, port: int, web_processes: int, web_threads: int, workers: int,
               message: str, **options: Any) -> None:
        children = [Child(f"worker {n}", worker_args(settings.BASE_DIR)) for n in range(1, workers + 1)]
        if web_processes:
            web = Child("web server", gunicorn_args(host=host, port=port, processes=web_processes, threads=web_threads))
            children.insert(0, web)
        elif not children:
            raise CommandError("Nothing to run: give --web-processes or --workers a number above 0.")

        def announce() -> None:
            if web_processes:
                self.stdout.write(message or f"ccweb is running at http://{host}:{port}/")
            else:  # a worker machine
                self.stdout.write(f"{workers} worker(s) running; Ctrl+C stops them.")
            self.stdout.flush()

        ready = answering(host, port) if web_processes else (lambda: True)
        Supervisor(children, cwd=settings.BASE_DIR, ready=ready, on_ready=announce).run()
