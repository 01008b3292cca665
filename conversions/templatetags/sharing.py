"""The job page's share links section, for those who may manage the job's links: the job's
owner, and the owners and admins of the team it is shared with (sharing.may_manage_links)."""

from django import template
from django.template.context import Context

from conversions import sharing
from conversions.forms import ShareLinkForm
from conversions.models import ConversionJob

register = template.Library()


@register.inclusion_tag("conversions/_share_links.html", takes_context=True)
def share_links(context: Context, job: ConversionJob) -> dict:
    request = context["request"]
    if not request.user.is_authenticated or not sharing.may_manage_links(request.user, job):
        return {"shown": False}
    is_owner = job.user_id == request.user.pk
    can_create = is_owner and job.status == ConversionJob.Status.FINISHED
    return {
        "shown": True,
        "request": request,
        "job": job,
        "is_owner": is_owner,
        "links": sharing.links_of_job(job),
        "form": ShareLinkForm(outputs=job.files.all()) if can_create else None,
        "csrf_token": context.get("csrf_token"),
    }
