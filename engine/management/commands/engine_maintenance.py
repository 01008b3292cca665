"""Run the engine's chores once, now: what dead workers left, stuck-task recovery, timeouts, retention (for cron)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from engine.maintenance import run_chores


class Command(BaseCommand):
    help = (
        "Settle what dead workers left on this machine and in the queue, recover tasks whose worker died, "
        "fail timed-out tasks, delete jobs past retention."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = run_chores()
        self.stdout.write(", ".join(f"{key}: {value}" for key, value in done.items()))
