"""Teams run by their users: making one, inviting by e-mail, roles, leaving and removing, what each
role may do with the team's shared jobs, and the team page's search and filters. Whatever a user
may not see or do answers 404."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conversions.models import ConversionJob, Membership, OutputFile, Team, TeamInvitation

pytestmark = pytest.mark.django_db


def invitation_link(message) -> str:
    """The path of the invitation link in an e-mail."""
    return re.search(r"https?://[^/\s]+(/invitations/[\w-]+/)", message.body).group(1)


@pytest.fixture
def design(alice, bob) -> Team:
    """Alice owns it, Bob is a member."""
    team = Team.objects.create(name="Design")
    Membership.objects.create(team=team, user=alice, role="owner")
    Membership.objects.create(team=team, user=bob, role="member")
    return team


def membership(team: Team, user) -> Membership:
    return Membership.objects.get(team=team, user=user)


def shared_job(user, team: Team, name: str = "poster.png", output_format: str = "jpg", **fields) -> ConversionJob:
    job = ConversionJob.objects.create(
        user=user, team=team, output_format=output_format, input_filename=name, status="finished", **fields
    )
    output = OutputFile(job=job, filename=name.rsplit(".", 1)[0] + f".{output_format}", size=5)
    output.file.save(output.filename, ContentFile(b"bytes"), save=True)
    return job


def test_it_makes_a_team_whose_maker_is_its_owner(client, charlie):
    client.force_login(charlie)
    response = client.post(reverse("conversions:team_list"), {"name": "  Sales  "}, follow=True)
    team = Team.objects.get()
    assert team.name == "Sales"
    assert membership(team, charlie).role == "owner"
    assert "The team Sales was created." in response.content.decode()
    listing = client.get(reverse("conversions:team_list")).content.decode()
    assert f'<a href="{team.get_absolute_url()}">Sales</a>' in listing and "Owner" in listing


def test_two_teams_may_have_the_same_name(client, alice, charlie):
    for user in (alice, charlie):
        client.force_login(user)
        assert client.post(reverse("conversions:team_list"), {"name": "Design"}).status_code == 302
    assert Team.objects.filter(name="Design").count() == 2


def test_an_invitation_is_emailed_and_accepted_by_the_account_of_that_address(
    client, design, alice, charlie, mailoutbox
):
    client.force_login(alice)
    response = client.post(
        reverse("conversions:team_invite", args=[design.uuid]),
        {"email": "Charlie@Example.com", "role": "viewer"},
        follow=True,
    )
    assert "An invitation was e-mailed to charlie@example.com." in response.content.decode()
    assert "charlie@example.com as viewer" in response.content.decode()
    [message] = mailoutbox
    assert message.to == ["charlie@example.com"]
    assert message.subject == "alice invites you to Design on ccweb"
    link = invitation_link(message)
    token = link.split("/")[2]
    assert len(token) >= 43  # secrets.token_urlsafe(32): 256 bits
    invitation = TeamInvitation.objects.get()
    assert invitation.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(TeamInvitation.objects.values().get())  # only its hash is stored

    client.force_login(charlie)
    page = client.get(link).content.decode()
    assert "alice invites you to join the team Design as viewer." in page
    accepted = client.post(reverse("conversions:invitation_accept", args=[token]), follow=True)
    assert accepted.redirect_chain[-1][0] == design.get_absolute_url()
    assert "Welcome to Design" in accepted.content.decode()
    assert membership(design, charlie).role == "viewer"
    assert client.get(link).status_code == 404  # answered: the link is spent


def test_an_invitation_cannot_be_accepted_by_an_account_of_another_address(
    client, design, alice, bob, charlie, mailoutbox
):
    client.force_login(alice)
    client.post(reverse("conversions:team_invite", args=[design.uuid]), {"email": "dora@example.com", "role": "admin"})
    link = invitation_link(mailoutbox[0])
    token = link.split("/")[2]
    client.force_login(charlie)
    assert "whose verified addresses do not include dora@example.com" in client.get(link).content.decode()
    refused = client.post(reverse("conversions:invitation_accept", args=[token]), follow=True)
    assert "This invitation was sent to an address your account has not verified." in refused.content.decode()
    assert not Membership.objects.filter(team=design, user=charlie).exists()
    assert TeamInvitation.objects.get().status == "pending"


@pytest.mark.parametrize("fate", ["expired", "revoked", "declined", "replaced", "unknown"])
def test_an_invitation_link_that_is_no_longer_valid_is_404(client, design, alice, charlie, mailoutbox, fate):
    client.force_login(alice)
    invite = reverse("conversions:team_invite", args=[design.uuid])
    client.post(invite, {"email": "charlie@example.com", "role": "member"})
    token = invitation_link(mailoutbox[0]).split("/")[2]
    invitation = TeamInvitation.objects.get()
    if fate == "expired":
        TeamInvitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    elif fate == "revoked":
        assert (
            client.post(reverse("conversions:invitation_revoke", args=[design.uuid, invitation.uuid])).status_code
            == 302
        )
    elif fate == "declined":
        client.logout()
        assert client.post(reverse("conversions:invitation_decline", args=[token])).status_code == 302
        assert TeamInvitation.objects.get().status == "declined"
    elif fate == "replaced":
        client.post(invite, {"email": "charlie@example.com", "role": "member"})
        assert TeamInvitation.objects.filter(status="pending").count() == 1
        assert invitation_link(mailoutbox[1]).split("/")[2] != token
    else:
        token = token[:-4] + "AAAA"
    client.force_login(charlie)
    for response in (
        client.get(reverse("conversions:invitation", args=[token])),
        client.post(reverse("conversions:invitation_accept", args=[token])),
        client.post(reverse("conversions:invitation_decline", args=[token])),
    ):
        assert response.status_code == 404
        assert b"Design" not in response.content
    assert not Membership.objects.filter(team=design, user=charlie).exists()


def test_inviting_someone_already_in_the_team_is_refused_in_words(client, design, alice):
    client.force_login(alice)
    response = client.post(
        reverse("conversions:team_invite", args=[design.uuid]), {"email": "BOB@example.com", "role": "member"}
    )
    assert response.status_code == 400
    assert "bob@example.com is already in Design." in response.content.decode()
    assert not TeamInvitation.objects.exists()


def test_admins_invite_and_manage_but_never_touch_owners(client, design, alice, bob, charlie, mailoutbox):
    Membership.objects.filter(team=design, user=bob).update(role="admin")
    Membership.objects.create(team=design, user=charlie, role="viewer")
    client.force_login(bob)
    page = client.get(reverse("conversions:team_members", args=[design.uuid])).content.decode()
    assert '<option value="owner"' not in page  # an admin is offered no owner role
    invite = reverse("conversions:team_invite", args=[design.uuid])
    assert client.post(invite, {"email": "dora@example.com", "role": "owner"}).status_code == 400
    assert client.post(invite, {"email": "dora@example.com", "role": "admin"}).status_code == 302
    assert len(mailoutbox) == 1

    alices = membership(design, alice)
    charlies = membership(design, charlie)
    role = lambda m: reverse("conversions:member_role", args=[design.uuid, m.uuid])  # noqa: E731
    remove = lambda m: reverse("conversions:member_remove", args=[design.uuid, m.uuid])  # noqa: E731
    refused = client.post(role(alices), {"role": "member"}, follow=True).content.decode()
    assert "Only the team&#x27;s owners can make someone an owner, or change an owner&#x27;s role." in refused
    client.post(remove(alices))
    client.post(role(charlies), {"role": "owner"})
    assert membership(design, alice).role == "owner" and membership(design, charlie).role == "viewer"

    assert "charlie is now member." in client.post(role(charlies), {"role": "member"}, follow=True).content.decode()
    assert "charlie was removed from Design." in client.post(remove(charlies), follow=True).content.decode()
    assert not Membership.objects.filter(team=design, user=charlie).exists()


def test_members_and_viewers_get_404_for_what_only_owners_and_admins_do(client, design, alice, bob, charlie):
    Membership.objects.create(team=design, user=charlie, role="viewer")
    job = shared_job(alice, design)
    invitation = TeamInvitation.objects.create(
        team=design, email="dora@example.com", token_sha256="0" * 64, expires_at=timezone.now() + timedelta(days=1)
    )
    alices = membership(design, alice)
    for user in (bob, charlie):
        client.force_login(user)
        assert client.get(design.get_absolute_url()).status_code == 200
        members = client.get(reverse("conversions:team_members", args=[design.uuid])).content.decode()
        assert "Invite someone" not in members and "dora@example.com" not in members
        for url in (
            reverse("conversions:team_invite", args=[design.uuid]),
            reverse("conversions:invitation_revoke", args=[design.uuid, invitation.uuid]),
            reverse("conversions:member_role", args=[design.uuid, alices.uuid]),
            reverse("conversions:member_remove", args=[design.uuid, alices.uuid]),
            reverse("conversions:team_delete", args=[design.uuid]),
            reverse("conversions:team_job_delete", args=[design.uuid, job.uuid]),
        ):
            assert client.post(url, {"email": "eve@example.com", "role": "owner"}).status_code == 404, url
    assert membership(design, alice).role == "owner"
    assert ConversionJob.objects.filter(pk=job.pk).exists()
    assert TeamInvitation.objects.get().status == "pending"


def test_an_outsider_gets_404_for_every_page_of_a_team(client, design, alice, charlie):
    job = shared_job(alice, design)
    client.force_login(charlie)
    for url in (
        design.get_absolute_url(),
        reverse("conversions:team_members", args=[design.uuid]),
        reverse("conversions:team_delete", args=[design.uuid]),
        reverse("conversions:team_job_delete", args=[design.uuid, job.uuid]),
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Design" not in response.content and b"poster" not in response.content
    assert client.post(reverse("conversions:team_leave", args=[design.uuid])).status_code == 404
    client.logout()
    assert client.get(design.get_absolute_url()).status_code == 302  # to the login page


def test_the_last_owner_hands_over_before_leaving(client, design, alice, bob):
    client.force_login(alice)
    leave = reverse("conversions:team_leave", args=[design.uuid])
    refused = client.post(leave, follow=True).content.decode()
    assert "A team needs an owner: make someone else owner before leaving." in refused
    demote = client.post(
        reverse("conversions:member_role", args=[design.uuid, membership(design, alice).uuid]),
        {"role": "admin"},
        follow=True,
    )
    assert "A team needs an owner: make someone else owner first." in demote.content.decode()
    assert membership(design, alice).role == "owner"

    client.post(reverse("conversions:member_role", args=[design.uuid, membership(design, bob).uuid]), {"role": "owner"})
    left = client.post(leave, follow=True)
    assert "You left Design." in left.content.decode()
    assert list(design.memberships.values_list("user__username", "role")) == [("bob", "owner")]
    assert client.get(design.get_absolute_url()).status_code == 404


def test_anyone_may_leave_and_what_they_shared_stays_shared(client, design, alice, bob):
    job = shared_job(bob, design)
    client.force_login(bob)
    client.post(reverse("conversions:team_leave", args=[design.uuid]))
    assert not Membership.objects.filter(team=design, user=bob).exists()
    client.force_login(alice)
    assert "poster.png" in client.get(design.get_absolute_url()).content.decode()
    job.refresh_from_db()
    assert job.team == design


def test_viewers_look_and_download_but_share_nothing_with_the_team(client, design, alice, charlie):
    Membership.objects.create(team=design, user=charlie, role="viewer")
    job = shared_job(alice, design)
    own = ConversionJob.objects.create(user=charlie, output_format="pdf", input_filename="mine.docx", status="finished")
    client.force_login(charlie)
    assert client.get(job.get_absolute_url()).status_code == 200
    download = client.get(job.files.get().get_absolute_url())
    assert b"".join(download.streaming_content) == b"bytes"
    assert "Shared with" not in client.get(own.get_absolute_url()).content.decode()  # no team to share with
    refused = client.post(reverse("conversions:job_share", args=[own.uuid]), {"team": str(design.uuid)}, follow=True)
    assert "You can only share with a team you belong to." in refused.content.decode()
    own.refresh_from_db()
    assert own.team is None


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_delete_a_members_shared_job(client, design, alice, bob, charlie, role):
    Membership.objects.create(team=design, user=charlie, role=role)
    job = shared_job(bob, design)
    stored = job.files.get().file.name
    storage = job.files.get().file.storage
    client.force_login(charlie)
    page = client.get(design.get_absolute_url()).content.decode()
    delete = reverse("conversions:team_job_delete", args=[design.uuid, job.uuid])
    assert f'href="{delete}"' in page
    assert "shared with Design by bob, will be deleted" in client.get(delete).content.decode()
    response = client.post(delete, follow=True)
    assert "poster.png, shared by bob, was deleted with its files." in response.content.decode()
    assert not ConversionJob.objects.filter(pk=job.pk).exists()
    assert not storage.exists(stored)


def test_a_member_sees_no_delete_on_the_team_page(client, design, alice, bob):
    shared_job(alice, design)
    client.force_login(bob)
    page = client.get(design.get_absolute_url()).content.decode()
    assert "poster.png" in page and "/delete/" not in page


def test_deleting_a_team_makes_its_jobs_private_again(client, design, alice, bob):
    job = shared_job(alice, design)
    client.force_login(alice)
    delete = reverse("conversions:team_delete", args=[design.uuid])
    assert "cannot be undone" in client.get(delete).content.decode()
    client.post(delete)
    assert not Team.objects.exists() and not Membership.objects.exists()
    job.refresh_from_db()
    assert job.team is None
    client.force_login(bob)
    assert client.get(job.get_absolute_url()).status_code == 404


def test_the_team_page_searches_and_filters_by_member_format_and_day(client, design, alice, bob):
    now = timezone.now()
    shared_job(alice, design, "poster.png", "jpg")
    shared_job(bob, design, "report.docx", "pdf")
    old = shared_job(bob, design, "old-poster.png", "jpg")
    ConversionJob.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=10))
    ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="private.png", status="finished")
    url = design.get_absolute_url()
    client.force_login(bob)

    def names(**params: str) -> list[str]:
        html = client.get(url, params).content.decode()
        table = html[html.index('id="team-jobs"') :]
        return [n for n in ("poster.png", "report.docx", "old-poster.png", "private.png") if f">{n}<" in table]

    assert names() == ["poster.png", "report.docx", "old-poster.png"]
    assert names(q="POSTER") == ["poster.png", "old-poster.png"]
    assert names(member=str(membership(design, bob).uuid)) == ["report.docx", "old-poster.png"]
    assert names(output_format="pdf") == ["report.docx"]
    today = timezone.localdate().isoformat()
    assert names(since=today) == ["poster.png", "report.docx"]
    assert names(until=(timezone.localdate() - timedelta(days=5)).isoformat()) == ["old-poster.png"]
    assert names(q="poster", member=str(membership(design, alice).uuid), since=today) == ["poster.png"]
    assert "No conversion matches." in client.get(url, {"q": "invoice"}).content.decode()
    assert "Shared by" in client.get(url).content.decode()


def test_the_team_page_issues_the_same_queries_for_5_and_50_jobs(client, design, alice, bob):
    def share(count: int) -> None:
        jobs = ConversionJob.objects.bulk_create(
            ConversionJob(user=alice, team=design, output_format="jpg", status="finished", input_filename=f"p-{n}.png")
            for n in range(count)
        )
        OutputFile.objects.bulk_create(
            OutputFile(job=job, filename=f"{job.pk}.jpg", remote_url="http://127.0.0.1:9/x") for job in jobs
        )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(design.get_absolute_url()).status_code == 200
        return len(captured)

    client.force_login(bob)
    share(5)
    few = queries()
    share(45)
    assert queries() == few


def test_existing_members_become_members_when_roles_arrive(transactional_db):
    """Migration 0006: the plain members of teams staff made before roles existed keep their teams."""
    executor = MigrationExecutor(connection)
    executor.migrate([("conversions", "0005_daily_job_count_and_poll_after")])
    old = executor.loader.project_state([("conversions", "0005_daily_job_count_and_poll_after")]).apps
    User = old.get_model("auth", "User")
    OldTeam = old.get_model("conversions", "Team")
    team = OldTeam.objects.create(name="Legacy")
    team.members.add(User.objects.create(username="ann"), User.objects.create(username="ben"))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    legacy = Team.objects.get(name="Legacy")
    assert sorted(legacy.memberships.values_list("user__username", "role")) == [("ann", "member"), ("ben", "member")]
    assert sorted(legacy.members.values_list("username", flat=True)) == ["ann", "ben"]


def test_every_page_links_to_the_teams_and_a_team_needs_a_name(client, alice):
    client.force_login(alice)
    response = client.post(reverse("conversions:team_list"), {"name": "   "})
    html = response.content.decode()
    assert f'<a href="{reverse("conversions:team_list")}">Teams</a>' in html
    assert response.status_code == 200 and "This field is required." in html
    assert not Team.objects.exists()
