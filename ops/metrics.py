"""Prometheus metrics (prometheus_client): state read from the database at scrape time, plus how the
webhook endpoint answered (duplicates and 5xx included, which its log does not keep).

Why from the database: task workers are separate processes, and may run on other machines; only the
database sees every task end, every queued task, every job and every logged webhook, whichever process
handled it. So task time is a gauge histogram of the engine tasks that ended in the last METRICS_WINDOW
seconds (a per-process histogram observed in workers would miss the other machines' and restart from
zero with each worker), and rejected webhooks are counted over the same window (the log forgets them
after CONVERSIONS_WEBHOOK_LOG_DAYS). A scrape costs a constant number of queries (QUERIES), each a
single aggregate, whatever the number of rows.

Why multiprocess mode for the response counter: gunicorn answers from several processes.
`manage.py ccweb_serve` gives them one PROMETHEUS_MULTIPROC_DIR (engine/supervisor.py), where
prometheus_client keeps each process's counts; a scrape sums them. Without that variable (runserver,
tests) the counter lives in the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from conversions.models import ConversionJob, WebhookDelivery
from engine.models import Job, Task, Webhook
from engine.workers import live_workers

# Upper bounds (seconds) of the task-time buckets: a small image takes tens of milliseconds, an
# office document about a second, a video minutes.
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
# One aggregate query per family below: conversion jobs, engine jobs, task time, queue, webhook
# deliveries, account webhooks, workers.
QUERIES = 7

WEBHOOK_RESPONSES = Counter(
    "ccweb_webhook_responses",
    "Requests to ccweb's webhook endpoint (/webhooks/cloudconvert/) by HTTP status and outcome: accepted "
    "(2xx: applied, duplicate or unknown job), rejected (4xx: bad signature, malformed or too large body, wrong "
    "method), failed (5xx: the sender retries).",
    ["code", "outcome"],
    registry=None,
)


def webhook_answered(status_code: int) -> None:
    outcome = "accepted" if status_code < 400 else "rejected" if status_code < 500 else "failed"
    WEBHOOK_RESPONSES.labels(code=str(status_code), outcome=outcome).inc()


def _by_status(name: str, documentation: str, statuses: list[str], counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in statuses:  # every status, so a series exists before its first job
        family.add_metric([status], counts.get(status, 0))
    return family


def _bucket_label(bound: float) -> str:
    return f"{bound:g}"


class DatabaseCollector(Collector):
    """Everything the database knows, read when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self.jobs()
        yield self.task_time()
        yield from self.queue()
        yield from self.webhooks()
        yield GaugeMetricFamily(
            "ccweb_workers_live", "Task workers (manage.py ccweb_worker) whose heartbeat is recent.",
            value=len(live_workers()),
        )

    def jobs(self) -> Iterator[Metric]:
        ccweb = dict(ConversionJob.objects.order_by().values_list("status").annotate(n=Count("id")))
        yield _by_status("ccweb_conversion_jobs", "ccweb's conversions by status.",
                         ConversionJob.Status.values, ccweb)
        engine = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
        yield _by_status("ccweb_engine_jobs", "The engine's jobs by status (kept ENGINE_RETENTION seconds).",
                         Job.Status.values, engine)

    def task_time(self) -> Metric:
        window = int(settings.METRICS_WINDOW)
        duration = ExpressionWrapper(F("ended_at") - F("started_at"), output_field=DurationField())
        buckets = {
            f"le_{index}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
            for index, bound in enumerate(TASK_BUCKETS)
        }
        rows = (
            Task.objects.filter(ended_at__gte=timezone.now() - timedelta(seconds=window), started_at__isnull=False)
            .annotate(duration=duration)
            .order_by()
            .values("operation", "engine", "status")
            .annotate(count=Count("id"), total=Sum("duration"), **buckets)
        )
        family = GaugeHistogramMetricFamily(
            "ccweb_engine_task_duration_seconds",
            f"How long the engine's tasks that ended in the last {window} seconds ran (started to ended), by "
            "operation, engine (the converter) and final status.",
            labels=["operation", "engine", "status"],
        )
        for row in rows:
            counts = [(_bucket_label(bound), row[f"le_{index}"]) for index, bound in enumerate(TASK_BUCKETS)]
            family.add_metric(
                [row["operation"], row["engine"] or "", row["status"]],
                [*counts, ("+Inf", row["count"])],
                row["total"].total_seconds() if row["total"] is not None else 0.0,
            )
        return family

    def queue(self) -> Iterator[Metric]:
        now = timezone.now()
        due = Q(run_after=get_date_max()) | Q(run_after__lte=now)
        rows = (
            DBTaskResult.objects.filter(status="READY")
            .order_by()
            .values("queue_name", "task_path")
            .annotate(due=Count("id", filter=due), later=Count("id", filter=~due))
        )
        depth = GaugeMetricFamily(
            "ccweb_task_queue_depth",
            "Background tasks waiting for a worker now, by queue and task (engine.tasks.deliver_webhook: the "
            "engine's outgoing webhooks).",
            labels=["queue", "task"],
        )
        scheduled = GaugeMetricFamily(
            "ccweb_task_queue_scheduled",
            "Background tasks queued to run later (webhook retries, chores), by queue and task.",
            labels=["queue", "task"],
        )
        for row in rows:
            labels = [row["queue_name"], row["task_path"]]
            depth.add_metric(labels, row["due"])
            scheduled.add_metric(labels, row["later"])
        yield depth
        yield scheduled

    def webhooks(self) -> Iterator[Metric]:
        # Accepted deliveries stay in the log (their hash recognises late duplicates): a count that only
        # grows. Rejected ones go after CONVERSIONS_WEBHOOK_LOG_DAYS: counted over the recent window.
        since = timezone.now() - timedelta(seconds=int(settings.METRICS_WINDOW))
        rows = (
            WebhookDelivery.objects.order_by()
            .values("rejected_because", "event")
            .annotate(total=Count("id"), recent=Count("id", filter=Q(received_at__gte=since)))
        )
        delivered = CounterMetricFamily(
            "ccweb_webhook_deliveries",
            "Webhook deliveries ccweb accepted and logged (distinct bodies; exact replays are not), by event.",
            labels=["event"],
        )
        rejected = dict.fromkeys(WebhookDelivery.Rejection.values, 0)
        for row in rows:
            if row["rejected_because"]:
                rejected[row["rejected_because"]] = rejected.get(row["rejected_because"], 0) + row["recent"]
            else:
                delivered.add_metric([row["event"]], row["total"])
        yield delivered
        rejections = GaugeMetricFamily(
            "ccweb_webhook_rejections_recent",
            f"Webhook deliveries ccweb rejected in the last {int(settings.METRICS_WINDOW)} seconds, by reason "
            "(bad_signature, malformed, too_large), whichever process or machine received them.",
            labels=["reason"],
        )
        for reason, count in rejected.items():
            rejections.add_metric([reason], count)
        yield rejections
        states = Webhook.objects.order_by().aggregate(
            in_disabled=Count("id", filter=Q(disabled=True)),
            in_failing=Count("id", filter=Q(disabled=False, failing=True)),
            in_active=Count("id", filter=Q(disabled=False, failing=False)),
        )
        accounts = GaugeMetricFamily(
            "ccweb_engine_account_webhooks",
            "The engine's account webhooks (POST /v2/webhooks): active, failing (the last delivery failed after "
            "every retry) or disabled (the receiver answered 410 Gone).",
            labels=["state"],
        )
        for state in ("active", "failing", "disabled"):
            accounts.add_metric([state], states[f"in_{state}"])
        yield accounts


def registry() -> CollectorRegistry:
    """The registry one scrape reads: the database's state and the webhook counter, summed over
    gunicorn's processes in multiprocess mode."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector())
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        MultiProcessCollector(scrape, path=directory)
    else:
        scrape.register(WEBHOOK_RESPONSES)
    return scrape
