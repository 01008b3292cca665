"""Teams pages: the user's teams, a team's shared jobs, its members and invitations, and the
invitation link's page. Every team comes through teams.membership_* (404 for anyone not in it,
or without the role an action needs)."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversions import teams
from conversions.cloudconvert.errors import ApiError
from conversions.forms import InvitationForm, RoleForm, TeamForm, TeamJobFilterForm
from conversions.models import Membership
from conversions.services import api_error_sentence

JOBS_PER_PAGE = 25


@login_required
@require_http_methods(["GET", "POST"])
def team_list(request: HttpRequest) -> HttpResponse:
    """The user's teams, and a form to make one."""
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = teams.team_create(user=request.user, name=form.cleaned_data["name"])
        messages.success(request, f"The team {team.name} was created. Invite people from its Members page.")
        return redirect(team)
    return render(request, "conversions/teams.html", {"memberships": teams.memberships_of(request.user), "form": form})


@login_required
@require_GET
def team_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    """What is shared with the team, searched and filtered by who shared it, format and day."""
    membership = teams.membership_for_user(user=request.user, uuid=uuid)
    team = membership.team
    members = list(teams.members_of(team))
    filters = TeamJobFilterForm(request.GET or None, members=members, formats=teams.team_formats(team))
    chosen = filters.filters()
    jobs = teams.team_jobs(team, **chosen)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in request.GET.items() if k != "page" and v})
    return render(
        request,
        "conversions/team_detail.html",
        {
            "team": team,
            "membership": membership,
            "members": members,
            "filters": filters,
            "filtered": any(chosen.values()),
            "page": page,
            "query": query,
        },
    )


def _members_page(
    request: HttpRequest, membership: Membership, invite_form: InvitationForm | None = None
) -> HttpResponse:
    team = membership.team
    owner = membership.role == Membership.Role.OWNER
    context = {"team": team, "membership": membership, "members": teams.members_of(team)}
    if membership.manages:
        context["invitations"] = teams.invitations_pending(team)
        context["invite_form"] = invite_form or InvitationForm(owner=owner)
        context["role_choices"] = RoleForm(owner=owner).fields["role"].choices
    status = 400 if invite_form is not None and invite_form.errors else 200
    return render(request, "conversions/team_members.html", context, status=status)


@login_required
@require_GET
def team_members(request: HttpRequest, uuid: str) -> HttpResponse:
    return _members_page(request, teams.membership_for_user(user=request.user, uuid=uuid))


def _to_members(membership: Membership) -> HttpResponse:
    return redirect("conversions:team_members", uuid=membership.team.uuid)


@login_required
@require_POST
def team_invite(request: HttpRequest, uuid: str) -> HttpResponse:
    membership = teams.membership_managing(user=request.user, uuid=uuid)
    form = InvitationForm(request.POST, owner=membership.role == Membership.Role.OWNER)
    if not form.is_valid():
        return _members_page(request, membership, form)
    try:
        invitation = teams.invitation_send(
            by=membership, email=form.cleaned_data["email"], role=form.cleaned_data["role"]
        )
    except teams.TeamError as error:
        form.add_error("email", str(error))
        return _members_page(request, membership, form)
    messages.success(request, f"An invitation was e-mailed to {invitation.email}.")
    return _to_members(membership)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, uuid: str, invitation: str) -> HttpResponse:
    membership = teams.membership_managing(user=request.user, uuid=uuid)
    pending = teams.invitation_of_team(team=membership.team, uuid=invitation)
    try:
        teams.invitation_revoke(by=membership, invitation=pending)
    except teams.TeamError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"The invitation to {pending.email} was withdrawn; its link no longer works.")
    return _to_members(membership)


@login_required
@require_POST
def member_role(request: HttpRequest, uuid: str, member: str) -> HttpResponse:
    membership = teams.membership_managing(user=request.user, uuid=uuid)
    target = teams.member_of_team(team=membership.team, uuid=member)
    form = RoleForm(request.POST, owner=membership.role == Membership.Role.OWNER)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles offered.")
        return _to_members(membership)
    try:
        teams.membership_change_role(by=membership, membership=target, role=form.cleaned_data["role"])
    except teams.TeamError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{target.user.get_username()} is now {target.get_role_display().lower()}.")
    return _to_members(membership)


@login_required
@require_POST
def member_remove(request: HttpRequest, uuid: str, member: str) -> HttpResponse:
    membership = teams.membership_managing(user=request.user, uuid=uuid)
    target = teams.member_of_team(team=membership.team, uuid=member)
    try:
        teams.membership_remove(by=membership, membership=target)
    except teams.TeamError as error:
        messages.error(request, str(error))
        return _to_members(membership)
    if target.pk == membership.pk:
        messages.success(request, f"You left {membership.team.name}.")
        return redirect("conversions:team_list")
    messages.success(request, f"{target.user.get_username()} was removed from {membership.team.name}.")
    return _to_members(membership)


@login_required
@require_POST
def team_leave(request: HttpRequest, uuid: str) -> HttpResponse:
    membership = teams.membership_for_user(user=request.user, uuid=uuid)
    try:
        teams.team_leave(membership=membership)
    except teams.TeamError as error:
        messages.error(request, str(error))
        return _to_members(membership)
    messages.success(request, f"You left {membership.team.name}. What you shared with it stays shared.")
    return redirect("conversions:team_list")


@login_required
@require_http_methods(["GET", "POST"])
def team_delete(request: HttpRequest, uuid: str) -> HttpResponse:
    """GET asks for confirmation; POST deletes the team (its shared jobs become private)."""
    membership = teams.membership_owning(user=request.user, uuid=uuid)
    if request.method == "GET":
        return render(request, "conversions/team_delete.html", {"team": membership.team})
    teams.team_delete(by=membership)
    messages.success(request, f"The team {membership.team.name} was deleted. What was shared with it is private again.")
    return redirect("conversions:team_list")


@login_required
@require_http_methods(["GET", "POST"])
def team_job_delete(request: HttpRequest, uuid: str, job: str) -> HttpResponse:
    """An owner or admin deletes a job shared with the team. GET asks for confirmation."""
    membership, shared = teams.team_job_managed(user=request.user, team_uuid=uuid, job_uuid=job)
    if request.method == "GET":
        return render(request, "conversions/team_job_delete.html", {"team": membership.team, "job": shared})
    name = shared.input_filename or "The conversion"
    try:
        teams.team_job_delete(by=membership, job=shared)
    except ApiError as error:
        messages.error(request, api_error_sentence(error))
    else:
        messages.success(request, f"{name}, shared by {shared.user.get_username()}, was deleted with its files.")
    return redirect(membership.team)


@require_GET
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invitation's e-mail links to: accept or decline, after logging in or signing up
    (with the address invited) when needed. Unknown, expired or answered links are 404."""
    invited = teams.invitation_by_token(token)
    here = reverse("conversions:invitation", args=[token])
    context = {"invitation": invited, "token": token}
    if request.user.is_authenticated:
        context["is_for_user"] = teams.invitation_is_for(invited, request.user)
    else:
        # Remembered for the sign-up that follows (ACCOUNT_SIGNUP=invite lets only its address in).
        teams.invitation_remember(request, token)
        context["signup_url"] = reverse("account_signup") + "?" + urlencode({"email": invited.email, "next": here})
        context["login_url"] = reverse("account_login") + "?" + urlencode({"next": here})
    return render(request, "conversions/invitation.html", context)


@login_required
@require_POST
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invited = teams.invitation_by_token(token)
    try:
        teams.invitation_accept(invitation=invited, user=request.user)
    except teams.TeamError as error:
        messages.error(request, str(error))
        return redirect("conversions:invitation", token=token)
    messages.success(request, f"Welcome to {invited.team.name}: what its members share is listed here.")
    return redirect(invited.team)


@require_POST
def invitation_decline(request: HttpRequest, token: str) -> HttpResponse:
    invited = teams.invitation_by_token(token)
    teams.invitation_decline(invitation=invited, user=request.user)
    messages.info(request, f"You declined the invitation to {invited.team.name}.")
    if request.user.is_authenticated:
        return redirect("conversions:team_list")
    return redirect("account_login")
