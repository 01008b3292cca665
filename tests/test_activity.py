"""The activity log: sharing, downloads, deletions and admin actions are logged; a team's owners and
admins read its log, a user reads what happened to their own jobs, staff read everything in the
admin; nobody else sees a line of it. Team and share-link services log through the same function."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from conversions import activity
from conversions.models import ActivityEvent, ConversionJob, Membership, OutputFile, Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def design(alice, bob, charlie, django_user_model) -> Team:
    """Alice owns it, Bob is a member, Dana an admin, Victor a viewer; Charlie is not in it."""
    team = Team.objects.create(name="Design")
    Membership.objects.create(team=team, user=alice, role="owner")
    Membership.objects.create(team=team, user=bob, role="member")
    dana = django_user_model.objects.create_user("dana", "dana@example.com", "dana-password")
    Membership.objects.create(team=team, user=dana, role="admin")
    victor = django_user_model.objects.create_user("victor", "victor@example.com", "victor-password")
    Membership.objects.create(team=team, user=victor, role="viewer")
    return team


def finished_job(user, name: str = "poster.png", team: Team | None = None) -> ConversionJob:
    """A finished job the API never heard of (no remote id): deleting it asks nothing of the API."""
    job = ConversionJob.objects.create(
        user=user, team=team, output_format="jpg", input_filename=name, status="finished"
    )
    output = OutputFile(job=job, filename=name.rsplit(".", 1)[0] + ".jpg", size=5)
    output.file.save(output.filename, ContentFile(b"bytes"), save=True)
    return job


def lines(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def team_log(team: Team) -> str:
    return reverse("conversions:team_activity", args=[team.uuid])


OWN_LOG = reverse("conversions:activity")


def test_it_logs_sharing_in_the_team_and_for_the_owner(client, alice, design):
    job = finished_job(alice)
    client.force_login(alice)

    client.post(reverse("conversions:job_share", args=[job.uuid]), {"team": design.uuid})
    client.post(reverse("conversions:job_share", args=[job.uuid]), {"team": ""})

    assert [e.verb for e in ActivityEvent.objects.order_by("id")] == ["shared", "unshared"]
    page = lines(client, team_log(design))
    assert "alice shared poster.png with Design." in page
    assert "alice stopped sharing poster.png with Design." in page
    assert "alice shared poster.png with Design." in lines(client, OWN_LOG)


def test_a_team_mates_download_is_seen_by_the_owner_and_the_teams_managers(
    client, alice, bob, design, django_user_model
):
    job = finished_job(alice, team=design)
    client.force_login(bob)

    assert client.get(job.files.get().get_absolute_url()).status_code == 200
    assert client.get(reverse("conversions:job_zip", args=[job.uuid])).status_code == 200

    event = ActivityEvent.objects.filter(target_type="outputfile").get()
    assert (event.actor, event.verb, event.owner, event.job, event.team) == (bob, "downloaded", alice, job, design)
    client.force_login(alice)
    assert "bob downloaded poster.jpg." in lines(client, OWN_LOG)
    client.force_login(django_user_model.objects.get(username="dana"))
    page = lines(client, team_log(design))
    assert "bob downloaded poster.jpg." in page and "bob downloaded poster.png." in page  # the file, the zip


def test_a_deletion_keeps_its_line_after_the_job_is_gone(client, alice, design):
    job = finished_job(alice, name="plan.png", team=design)
    client.force_login(alice)

    client.post(reverse("conversions:job_delete", args=[job.uuid]))

    assert not ConversionJob.objects.exists()
    event = ActivityEvent.objects.get()
    assert (event.verb, event.job, event.owner, event.team) == ("deleted", None, alice, design)
    assert event.target_label == "plan.png"
    assert "alice deleted plan.png." in lines(client, team_log(design))
    assert "alice deleted plan.png." in lines(client, OWN_LOG)


def test_a_team_admin_deleting_a_members_job_is_named_for_it(client, alice, bob, design, django_user_model):
    job = finished_job(bob, name="draft.png", team=design)
    dana = django_user_model.objects.get(username="dana")
    client.force_login(dana)

    client.post(reverse("conversions:team_job_delete", args=[design.uuid, job.uuid]))

    event = ActivityEvent.objects.get()
    assert (event.actor, event.verb, event.owner) == (dana, "deleted", bob)
    client.force_login(bob)
    assert "dana deleted draft.png." in lines(client, OWN_LOG)


@pytest.mark.parametrize("who", ["bob", "victor", "charlie"])
def test_only_the_teams_owners_and_admins_read_its_log(client, alice, design, who, django_user_model):
    job = finished_job(alice, team=design)
    activity.record(actor=alice, verb=activity.SHARED, target=job)
    client.force_login(django_user_model.objects.get(username=who))

    assert client.get(team_log(design)).status_code == 404
    assert client.post(team_log(design), {"days": "1"}).status_code == 404
    page = client.get(design.get_absolute_url()).content.decode()
    assert team_log(design) not in page  # no tab to it either
    design.refresh_from_db()
    assert design.retention_days is None


def test_a_user_reads_only_what_concerns_them(client, alice, bob, charlie, design):
    alices = finished_job(alice, name="alices.png")
    charlies = finished_job(charlie, name="charlies.png")
    activity.record(actor=alice, verb=activity.DOWNLOADED, target=alices.files.get())
    activity.record(actor=charlie, verb=activity.DOWNLOADED, target=charlies.files.get())

    client.force_login(bob)
    page = lines(client, OWN_LOG)
    assert "alices.jpg" not in page and "charlies.jpg" not in page
    assert "Nothing yet." in page
    client.force_login(alice)
    page = lines(client, OWN_LOG)
    assert "alice downloaded alices.jpg." in page and "charlies.jpg" not in page


def test_staff_read_the_whole_log_in_the_admin_and_nobody_edits_it(client, alice, design, django_user_model):
    job = finished_job(alice, team=design)
    activity.record(actor=alice, verb=activity.SHARED, target=job)
    auditor = django_user_model.objects.create_user("auditor", "auditor@example.com", "x", is_staff=True)
    auditor.user_permissions.set(Permission.objects.filter(codename="view_activityevent"))
    client.force_login(auditor)

    listing = lines(client, reverse("admin:conversions_activityevent_changelist"))

    assert "alice shared poster.png with Design." in listing
    event = ActivityEvent.objects.get()
    assert client.get(reverse("admin:conversions_activityevent_add")).status_code == 404  # ccweb/admin.py
    delete = reverse("admin:conversions_activityevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 404
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "x")
    client.force_login(superuser)
    client.post(reverse("admin:conversions_activityevent_change", args=[event.pk]), {"verb": "deleted"})
    assert ActivityEvent.objects.get().verb == "shared"


def test_membership_changes_are_logged_for_the_team_and_the_people_concerned(
    client, alice, bob, charlie, design, mailoutbox
):
    client.force_login(alice)
    invite = reverse("conversions:team_invite", args=[design.uuid])
    client.post(invite, {"email": "charlie@example.com", "role": "viewer"})
    [invitation] = mailoutbox
    token = re.search(r"/invitations/([\w-]+)/", invitation.body).group(1)
    client.force_login(charlie)
    client.post(reverse("conversions:invitation_accept", args=[token]))
    client.force_login(alice)
    charlies = Membership.objects.get(team=design, user=charlie)
    client.post(reverse("conversions:member_role", args=[design.uuid, charlies.uuid]), {"role": "member"})
    bobs = Membership.objects.get(team=design, user=bob)
    client.post(reverse("conversions:member_remove", args=[design.uuid, bobs.uuid]))
    client.force_login(charlie)
    client.post(reverse("conversions:team_leave", args=[design.uuid]))

    assert list(ActivityEvent.objects.order_by("id").values_list("verb", flat=True)) == [
        "member_invited", "member_joined", "role_changed", "member_removed", "member_left",
    ]
    assert ActivityEvent.objects.get(verb="role_changed").detail == {"from": "viewer", "to": "member"}
    client.force_login(alice)
    page = lines(client, team_log(design))
    for sentence in (
        "alice invited charlie@example.com to Design.", "charlie joined Design.",
        "alice changed the role of charlie in Design.", "alice removed bob from Design.", "charlie left Design.",
    ):
        assert sentence in page
    client.force_login(charlie)
    assert "charlie left Design." in lines(client, OWN_LOG)


def test_what_staff_change_in_a_teams_admin_page_reaches_the_teams_log(
    client, alice, bob, charlie, design, django_user_model
):
    """Members added, moved and removed, and the retention set, through the admin's team form: the
    team's owners read it on the team's page, as when they do it themselves."""
    staff = django_user_model.objects.create_user("sue", "sue@example.com", "x", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(
        codename__in=["change_team", "view_team", "add_membership", "change_membership", "delete_membership"]
    ))
    members = list(Membership.objects.filter(team=design).order_by("id"))
    form = {"name": "Design", "retention_days": "30", "memberships-TOTAL_FORMS": str(len(members) + 1),
            "memberships-INITIAL_FORMS": str(len(members)), "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000"}
    for index, member in enumerate(members):
        form |= {f"memberships-{index}-id": str(member.pk), f"memberships-{index}-team": str(design.pk),
                 f"memberships-{index}-user": str(member.user_id), f"memberships-{index}-role": member.role}
    bobs = members.index(Membership.objects.get(team=design, user=bob))
    form[f"memberships-{bobs}-role"] = "admin"
    form[f"memberships-{len(members) - 1}-DELETE"] = "on"  # victor, the viewer
    form |= {f"memberships-{len(members)}-user": str(charlie.pk), f"memberships-{len(members)}-role": "member",
             f"memberships-{len(members)}-team": str(design.pk)}
    client.force_login(staff)

    response = client.post(reverse("admin:conversions_team_change", args=[design.pk]), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    design.refresh_from_db()
    assert design.retention_days == 30
    assert set(design.memberships.values_list("user__username", "role")) == {
        ("alice", "owner"), ("bob", "admin"), ("dana", "admin"), ("charlie", "member")
    }
    client.force_login(alice)
    page = lines(client, team_log(design))
    for sentence in (
        "sue changed how long Design keeps files.",
        "sue (staff) used “add as member” on charlie in the admin.",
        "sue (staff) used “make admin” on bob in the admin.",
        "sue (staff) used “remove from the team” on victor in the admin.",
    ):
        assert sentence in page
    assert ActivityEvent.objects.get(verb="retention_changed").detail == {"from": None, "to": 30}


def test_share_links_made_used_and_revoked_are_logged_for_the_owner(client, alice, design):
    job = finished_job(alice, team=design)
    client.force_login(alice)
    client.post(reverse("conversions:share_link_create", args=[job.uuid]), {"output": str(job.files.get().uuid)})
    link = job.share_links.get()

    download = Client().get(reverse("conversions:share_link_download", args=[link.token]))
    assert download.status_code == 200
    client.post(reverse("conversions:share_link_revoke", args=[link.uuid]))

    events = list(ActivityEvent.objects.order_by("id"))
    assert [(e.verb, e.actor, e.actor_label) for e in events] == [
        ("link_created", alice, "alice"), ("link_downloaded", None, "share link"), ("link_revoked", alice, "alice"),
    ]
    assert {(e.owner, e.job, e.team) for e in events} == {(alice, job, design)}
    page = lines(client, OWN_LOG)
    assert "alice created a share link to poster.jpg." in page
    assert "Someone downloaded poster.jpg through a share link." in page
    assert "alice revoked a share link to poster.jpg." in page
