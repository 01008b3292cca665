"""Activity pages: a team's log with its retention, for the team's owners and admins (404 for
anyone else, through teams.membership_managing), and a user's own log (what happened to their jobs
and what they did)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from conversions import activity, retention, teams
from conversions.forms import RetentionForm

EVENTS_PER_PAGE = 50


@login_required
@require_GET
def activity_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(activity.own_activity(request.user), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "conversions/activity.html", {"page": page})


@login_required
@require_http_methods(["GET", "POST"])
def team_activity(request: HttpRequest, uuid: str) -> HttpResponse:
    """The team's log, and how long it keeps the files shared with it (POST: change that)."""
    membership = teams.membership_managing(user=request.user, uuid=uuid)
    team = membership.team
    form = RetentionForm(request.POST or None, initial={"days": team.retention_days})
    if request.method == "POST" and form.is_valid():
        try:
            retention.team_retention_set(team=team, days=form.cleaned_data["days"], by=request.user)
        except retention.RetentionError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, _retention_sentence(team.retention_days, team.name))
            return redirect("conversions:team_activity", uuid=team.uuid)
    page = Paginator(activity.team_activity(team), EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "team": team,
        "membership": membership,
        "page": page,
        "form": form,
        "retention": _retention_sentence(team.retention_days, team.name),
    }
    return render(request, "conversions/team_activity.html", context, status=400 if form.errors else 200)


def _retention_sentence(days: int | None, team: str) -> str:
    effective = retention.days_for(days)
    whose = "this site's default" if days is None else f"{team}'s choice"
    if not effective:
        return f"Files shared with {team} are kept until their owner deletes them ({whose})."
    return (
        f"Files shared with {team} are deleted {effective} day{'s' if effective != 1 else ''} after their "
        f"conversion ended ({whose}); pages warn {settings.CONVERSIONS_RETENTION_WARNING_DAYS} days ahead."
    )
