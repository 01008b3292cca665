"""Reads for the admin as the operations console: the overview page (today by status, failures
of the last 24 hours, storage used, the webhook's health) and usage per user and team over the last
30 days. Each is a fixed number of queries, however many jobs there are."""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, IntegerField, Min, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversions import services
from conversions.models import ConversionJob, OutputFile, Team, WebhookDelivery

Status = ConversionJob.Status
FAILURES_SHOWN = 20
REASONS_SHOWN = 10
USAGE_DAYS = 30
USAGE_ROWS = 100


@dataclass
class Overview:
    today: list[tuple[str, str, int]]  # (status, label, jobs started today)
    today_total: int
    running: int
    oldest_running: datetime | None
    failures: list[ConversionJob]  # the latest of the last 24 h
    failure_count: int
    failure_reasons: list[dict]  # error_code, error_message, jobs: the commonest
    stored_files: int
    stored_bytes: int
    deliveries_accepted: int
    deliveries_rejected: list[tuple[str, int]] = field(default_factory=list)  # (reason label, count)


def overview(now: datetime | None = None) -> Overview:
    """What the admin's overview page shows, in seven queries."""
    now = now or timezone.now()
    day_start = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    since = now - timedelta(hours=24)

    started = dict(
        ConversionJob.objects.filter(created_at__gte=day_start).order_by().values_list("status").annotate(n=Count("id"))
    )
    running = ConversionJob.objects.exclude(status__in=ConversionJob.TERMINAL).aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    failed = ConversionJob.objects.filter(status=Status.ERROR, finished_at__gte=since)
    failures = list(
        failed.select_related("user")
        .only("uuid", "input_filename", "output_format", "error_code", "error_message", "finished_at", "user__username")
        .order_by("-finished_at", "-id")[:FAILURES_SHOWN]
    )
    reasons = list(
        failed.order_by().values("error_code", "error_message").annotate(jobs=Count("id")).order_by("-jobs")
    )
    stored = OutputFile.objects.exclude(file="").aggregate(n=Count("id"), bytes=Coalesce(Sum("size"), 0))
    deliveries = dict(
        WebhookDelivery.objects.filter(received_at__gte=since)
        .order_by()
        .values_list("rejected_because")
        .annotate(n=Count("id"))
    )
    labels = dict(WebhookDelivery.Rejection.choices)
    return Overview(
        today=[(value, label, started.get(value, 0)) for value, label in Status.choices],
        today_total=sum(started.values()),
        running=running["n"],
        oldest_running=running["oldest"],
        failures=failures,
        failure_count=sum(reason["jobs"] for reason in reasons),
        failure_reasons=reasons[:REASONS_SHOWN],
        stored_files=stored["n"],
        stored_bytes=stored["bytes"],
        deliveries_accepted=deliveries.pop("", 0),
        deliveries_rejected=[(labels.get(reason, reason), n) for reason, n in sorted(deliveries.items())],
    )


def _bytes_of(jobs: QuerySet[OutputFile], group: str) -> Subquery:
    """The summed size of the files of `jobs`, per `group` (a correlated subquery: joining files
    beside other counts would count each job once per file)."""
    return Subquery(
        jobs.order_by().values(group).annotate(total=Sum("size")).values("total")[:1], output_field=IntegerField()
    )


def usage_by_user(now: datetime | None = None) -> list:
    """The users who started jobs in the last 30 days, busiest first: jobs, failures, bytes
    converted, and their daily quota (with the override, if any). Two queries."""
    since = (now or timezone.now()) - timedelta(days=USAGE_DAYS)
    recent = Q(conversion_jobs__created_at__gte=since)
    files = OutputFile.objects.filter(job__user=OuterRef("pk"), job__created_at__gte=since)
    users = list(
        get_user_model()
        .objects.annotate(
            jobs=Count("conversion_jobs", filter=recent),
            failures=Count("conversion_jobs", filter=recent & Q(conversion_jobs__status=Status.ERROR)),
            bytes=_bytes_of(files, "job__user"),
        )
        .filter(jobs__gt=0)
        .select_related("quota_override")
        .order_by("-jobs", "pk")[:USAGE_ROWS]
    )
    quotas = services.daily_quotas_of(user.pk for user in users)
    for user in users:
        user.daily_quota = quotas[user.pk]
    return users


def usage_by_team(now: datetime | None = None) -> list[Team]:
    """The teams jobs were shared with in the last 30 days, busiest first: jobs, failures, bytes,
    members, and the quota override of their members, if any. One query."""
    since = (now or timezone.now()) - timedelta(days=USAGE_DAYS)
    recent = Q(jobs__created_at__gte=since)
    files = OutputFile.objects.filter(job__team=OuterRef("pk"), job__created_at__gte=since)
    members = Subquery(
        Team.objects.filter(pk=OuterRef("pk")).annotate(n=Count("memberships")).values("n")[:1],
        output_field=IntegerField(),
    )
    return list(
        Team.objects.annotate(
            job_count=Count("jobs", filter=recent),
            failures=Count("jobs", filter=recent & Q(jobs__status=Status.ERROR)),
            bytes=_bytes_of(files, "job__team"),
            member_count=members,
        )
        .filter(job_count__gt=0)
        .select_related("quota_override")
        .order_by("-job_count", "pk")[:USAGE_ROWS]
    )
