"""When a job's stored files are deleted (conversions/retention.py), said on the job page and the
dashboard's rows: a date, a warning when it is near, and afterwards when they went."""

from collections.abc import Iterable

from django import template

from conversions.models import ConversionJob
from conversions.retention import Notice, retention_notices

register = template.Library()


@register.inclusion_tag("conversions/_retention_notice.html")
def retention_notice(job: ConversionJob) -> dict:
    """The job page's notice."""
    return {"notice": retention_notices([job.pk]).get(job.pk)}


@register.simple_tag
def retention_notices_of(jobs: Iterable[ConversionJob]) -> dict[int, Notice]:
    """The notices of a page of jobs, in one query: `{% retention_notices_of jobs as notices %}`."""
    return retention_notices([job.pk for job in jobs])


@register.filter
def notice_of(notices: dict[int, Notice], job: ConversionJob) -> Notice | None:
    return notices.get(job.pk)
