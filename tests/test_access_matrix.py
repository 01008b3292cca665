"""The access matrix: every URL of ccweb, asked by every kind of visitor, with what each must get.

One world: alice owns a finished job with a stored output file, shared with the team Design, where
she is owner, bob admin, carol member and dave viewer; erin is an outsider (with a pending
invitation to Design); a share link opens alice's file; sam is staff without any permission, sue is
staff who may view and change the conversions models (not add or delete them).

The actors (columns): owner (alice), admin (bob), member (carol), viewer (dave), outsider (erin),
anonymous, link (anonymous, holding the share link: they opened it first), sam, sue.

Outcomes (cells):
- show: 2xx, and the page (or file) shows the row's object.
- ok:   2xx, and the row's object is not in it (a page of the visitor's own, or a public one).
- done: a redirect (3xx); for an action, the action happened.
- kept: a redirect (3xx) whose page says why not (a message); nothing changed.
- login: the redirect to the login page (the app's or, under /admin/, the admin's), nothing looked up.
- 404:  404, the body shows nothing of the world, nothing changed.
- 400:  400, the body shows nothing of the world.

Rules that hold throughout, and that the matrix shows:
- Anonymous visitors (and link holders, for whom a link opens that link alone) get the login
  redirect from every page that needs a login, before anything is looked up: so for an object that
  does not exist too. Logged in, the same address of an object that does not exist, or that the
  visitor may not see or act on, is a 404 alike. Each object address below is also asked with each
  of its ids replaced by an unknown one ("missing ..." rows): 404 for everyone logged in, the login
  redirect for anonymous visitors, 404 for everyone on the public links.
- A share link and an invitation link are bearer links: whoever holds the address opens it,
  logged in or not; an unknown, revoked or used-up one is a 404.
- Staff rights are for the admin: in the app, sam and sue are outsiders.
- The admin: anonymous visitors get the admin's login redirect; anyone logged in who is not staff,
  and staff without the permission a page needs, get 404 (not Django's 403: ccweb/admin.py); staff
  who may view a model see its list, objects and history, and an unknown id of it sends them to the
  admin's index saying so (Django's), while staff without any permission on the model get 404
  whether the id exists or not. The old `<id>/` address of a model's object only redirects to
  `<id>/change/` (no lookup). Rows for every registered model are made from the admin's registry.

Two parts are covered by a rule instead of a row per URL (test_a_rule_covers_*):
- The engine's API under /engine/ has its own API-key auth (tests/test_engine_api.py): no
  visitor's session opens anything there (401 for the API, 403 for the signed storage URLs, 404 for
  the rest), except the two public catalogue routes. Each route is asked with GET, or, when it does
  not take GET (405), with each method its Allow header names (the upload form's POST).
- allauth's own pages under /accounts/ (log in, sign up, e-mail, password, OpenID Connect) are about
  the visitor's own account: none answers with an error, and none shows anything of alice's world
  to anyone but alice.

test_every_url_of_ccweb_is_in_the_matrix fails when a URL pattern has no row and no rule.
"""

import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django.utils.regex_helper import normalize
from django_tasks_db.models import DBTaskResult

from conversions import activity, selectors, sharing
from conversions.catalogue import Catalogue
from conversions.models import (
    ActivityEvent,
    ConversionJob,
    Membership,
    OutputFile,
    Preset,
    QuotaOverride,
    ShareLink,
    Team,
    TeamInvitation,
    WebhookDelivery,
)
from engine import models as engine_models
from tests.files import png_bytes

pytestmark = pytest.mark.django_db

ACTORS = ("owner", "admin", "member", "viewer", "outsider", "anonymous", "link", "sam", "sue")
OUTCOMES = {"show", "ok", "done", "kept", "login", "404", "400"}
# The actors in the team Design, with their roles.
TEAM_ROLES = {"owner": "owner", "admin": "admin", "member": "member", "viewer": "viewer"}

JOB_NAME = "merger-plans.docx"
OUTPUT_NAME = "merger-plans.pdf"
FILE_CONTENT = b"%PDF-1.7 the merger plans of alice"
THUMBNAIL = png_bytes((8, 8))
TEAM_NAME = "Design"
PRESET_NAME = "Board handouts"
ALICE_EMAIL = "alice@example.com"
REMOTE_JOB_ID = "7f3a9c0e-remote-of-merger"
# What no refused visitor may see, in any body.
SECRETS = (JOB_NAME, OUTPUT_NAME, FILE_CONTENT, TEAM_NAME, PRESET_NAME, ALICE_EMAIL, REMOTE_JOB_ID)


# --- The world ------------------------------------------------------------------------------------


@dataclass
class World:
    users: dict[str, User]
    team: Team
    job: ConversionJob
    output: OutputFile
    link: ShareLink
    preset: Preset
    invitation: TeamInvitation
    invitation_token: str
    # One object per model registered in the admin, for its object pages.
    admin_objects: dict[type[Model], Model]
    engine_job: engine_models.Job
    engine_task: engine_models.Task
    engine_file: engine_models.File
    engine_webhook: engine_models.Webhook

    def slot(self, name: str) -> str:
        """The id a URL names the world's objects by (see At)."""
        return {
            "job": str(self.job.uuid),
            "output": str(self.output.uuid),
            "team": str(self.team.uuid),
            "carol": str(Membership.objects.get(team=self.team, user=self.users["member"]).uuid),
            "invitation": str(self.invitation.uuid),
            "invitation_token": self.invitation_token,
            "link": str(self.link.uuid),
            "link_token": self.link.token,
            "preset": str(self.preset.uuid),
        }[name]


def make_user(name: str, **fields: Any) -> User:
    # No password: hashing one costs more than the rest of the world (tests log in with force_login).
    return User.objects.create_user(name, f"{name}@example.com", **fields)


@pytest.fixture
def world(settings, monkeypatch) -> World:
    # The app's pages ask the API what it converts and how many credits are left: it cannot say
    # (without waiting on a page's retry). Any other call meets an address that refuses at once.
    monkeypatch.setattr(selectors, "conversion_catalogue", Catalogue)
    monkeypatch.setattr(selectors, "account_credits", lambda: None)
    settings.ENGINE_URL = "http://127.0.0.1:9/engine"
    settings.ENGINE_INTERNAL_URL = ""
    settings.CLOUDCONVERT_API_KEY = ""
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    settings.METRICS_TOKEN = ""
    now = timezone.now()
    users = {
        "owner": make_user("alice"),
        "admin": make_user("bob"),
        "member": make_user("carol"),
        "viewer": make_user("dave"),
        "outsider": make_user("erin"),
        "sam": make_user("sam", is_staff=True),
        "sue": make_user("sue", is_staff=True),
    }
    alice = users["owner"]
    users["sue"].user_permissions.set(
        Permission.objects.filter(content_type__app_label="conversions", codename__regex=r"^(view|change)_")
    )
    team = Team.objects.create(name=TEAM_NAME)
    for actor, role in TEAM_ROLES.items():
        Membership.objects.create(team=team, user=users[actor], role=role)
    job = ConversionJob.objects.create(
        user=alice, team=team, output_format="pdf", input_filename=JOB_NAME, status="finished", finished_at=now
    )
    output = OutputFile(job=job, filename=OUTPUT_NAME, size=len(FILE_CONTENT))
    output.file.save(OUTPUT_NAME, ContentFile(FILE_CONTENT), save=False)
    output.thumbnail.save("merger-plans.png", ContentFile(THUMBNAIL), save=False)
    output.save()
    shared = activity.record(actor=alice, verb=activity.SHARED, target=job)
    link = sharing.share_link_create(job=job, user=alice, output=output)
    preset = Preset.objects.create(user=alice, name=PRESET_NAME, output_format="pdf")
    token = secrets.token_urlsafe(32)
    invitation = TeamInvitation.objects.create(
        team=team, email="erin@example.com", role="member", token_sha256=hashlib.sha256(token.encode()).hexdigest(),
        invited_by=alice, expires_at=now + timedelta(days=7),
    )
    delivery = WebhookDelivery.objects.create(
        event="job.finished", remote_job_id=REMOTE_JOB_ID, body_sha256="0" * 64, body=b"{}", body_size=2
    )
    quota = QuotaOverride.objects.create(user=alice, daily_jobs=50, note="The board meeting")

    # What the embedded engine would hold of alice's job, and the rest of the admin's models.
    engine_job = engine_models.Job.objects.create(tag=str(job.uuid), status="finished")
    engine_task = engine_models.Task.objects.create(
        job=engine_job, name="export", operation="export/url", status="finished",
        result={"files": [{"filename": OUTPUT_NAME}]},
    )
    engine_file = engine_models.File.objects.create(
        task=engine_task, filename=OUTPUT_NAME, size=len(FILE_CONTENT), path=f"{engine_task.id}/{OUTPUT_NAME}"
    )
    engine_webhook = engine_models.Webhook.objects.create(
        url="http://127.0.0.1:9/hook", events=["job.finished"], signing_secret="s"
    )
    # Alive, on another host: /readyz then answers 200.
    worker = engine_models.Worker.objects.create(
        worker_id="worker-1", hostname="another-host", pid=1, owner="1:1", queues="*", started_at=now, last_seen_at=now
    )
    task_result = DBTaskResult.objects.create(
        args_kwargs={"args": [], "kwargs": {}}, task_path="conversions.tasks.nothing", backend_name="default",
        run_after=now,
    )
    # (ccweb records each new user's address; this one is verified.)
    email, _ = EmailAddress.objects.update_or_create(user=alice, email=ALICE_EMAIL, defaults={"verified": True})
    social_app = SocialApp.objects.create(provider="openid_connect", provider_id="acme", name="Acme", client_id="c")
    social_account = SocialAccount.objects.create(user=alice, provider="acme", uid="alice-at-acme", extra_data={})
    social_token = SocialToken.objects.create(app=social_app, account=social_account, token="t")
    objects = [
        job, delivery, preset, team, shared, quota, alice,
        Group.objects.create(name="Auditors"), task_result, engine_job, engine_task, engine_file,
        engine_webhook, worker, email, social_app, social_token, social_account,
    ]
    return World(
        users=users, team=team, job=job, output=output, link=link, preset=preset, invitation=invitation,
        invitation_token=token, admin_objects={type(obj): obj for obj in objects}, engine_job=engine_job,
        engine_task=engine_task, engine_file=engine_file, engine_webhook=engine_webhook,
    )


def clients(world: World) -> dict[str, Client]:
    """A browser per actor, logged in as that actor; the link holder has opened the share link."""
    browsers = {}
    handler = Client().handler
    for actor in ACTORS:
        browser = Client()
        # One middleware chain for all: building one (whitenoise lists every static file) would
        # otherwise take most of the matrix's time.
        browser.handler = handler
        if actor in world.users:
            browser.force_login(world.users[actor])
        browsers[actor] = browser
    assert browsers["link"].get(world.link.get_absolute_url()).status_code == 200
    return browsers


# --- Rows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class At:
    """A URL by name, its arguments and query values named by World.slot."""

    name: str
    args: tuple[str, ...] = ()
    query: dict[str, str] = field(default_factory=dict)
    params: str = ""  # a literal query string
    missing: str | None = None  # the slot replaced by an unknown id

    def slots(self) -> list[str]:
        return [*self.args, *self.query.values()]

    def path(self, world: World) -> str:
        def value(slot: str) -> str:
            if slot != self.missing:
                return world.slot(slot)
            return secrets.token_urlsafe(32) if slot.endswith("_token") else str(uuid.uuid4())

        query = [f"{key}={value(slot)}" for key, slot in self.query.items()] + ([self.params] if self.params else [])
        path = reverse(self.name, args=[value(slot) for slot in self.args])
        return path + ("?" + "&".join(query) if query else "")


Effect = Callable[[World, User | None], bool]


@dataclass(frozen=True)
class Row:
    pattern: str  # the URL pattern's name, or the route of an unnamed one
    method: str
    at: At | Callable[[World], str]
    outcomes: dict[str, str]
    markers: Callable[[World], tuple] = lambda world: ()
    data: Callable[[World], dict] = lambda world: {}
    effect: Effect | None = None  # whether the action happened (for that actor)
    label: str = ""

    @property
    def id(self) -> str:
        return " ".join(filter(None, (self.pattern, self.method, self.label)))


def cells(table: str) -> dict[str, str]:
    values = table.split()
    assert len(values) == len(ACTORS) and set(values) <= OUTCOMES, table
    return dict(zip(ACTORS, values, strict=True))


def row(pattern: str, method: str, at: At, table: str, **options: Any) -> Row:
    return Row(pattern=pattern, method=method, at=at, outcomes=cells(table), **options)


def shows(*markers: Any) -> Callable[[World], tuple]:
    return lambda world: markers


NAME = shows(JOB_NAME)
FILE = shows(FILE_CONTENT)
TEAM = shows(TEAM_NAME)


def job_gone(world: World, user: User | None) -> bool:
    return not ConversionJob.objects.filter(pk=world.job.pk).exists()


def membership_of(world: World, actor: str) -> Membership | None:
    return Membership.objects.filter(team=world.team, user=world.users[actor]).first()


def invitation_status(world: World) -> str:
    return TeamInvitation.objects.get(pk=world.invitation.pk).status


def c(name: str) -> str:
    return f"conversions:{name}"


J, F, T = ("job",), ("output",), ("team",)

# fmt: off
APP_ROWS = [
    #                                                                         owner admin member viewer outsider anonymous link sam sue
    row(c("dashboard"), "GET", At(c("dashboard")),                           "show  ok    ok     ok     ok       login     login ok  ok", markers=NAME),
    row(c("dashboard"), "GET", At(c("dashboard"), params="shared=1"),      "ok    show  show   show   ok       login     login ok  ok", markers=NAME,
        label="shared tab"),
    row(c("dashboard_rows"), "GET", At(c("dashboard_rows")),                 "show  ok    ok     ok     ok       login     login ok  ok", markers=NAME),
    row(c("convert"), "GET", At(c("convert")),                               "show  ok    ok     ok     ok       login     login ok  ok", markers=shows(PRESET_NAME)),
    row(c("convert"), "GET", At(c("convert"), query={"preset": "preset"}),   "show  404   404    404    404      login     login 404 404", markers=shows(PRESET_NAME),
        label="with alice's preset"),
    row(c("preset_delete"), "POST", At(c("preset_delete"), ("preset",)),     "done  404   404    404    404      login     login 404 404",
        effect=lambda w, u: not Preset.objects.filter(pk=w.preset.pk).exists()),
    row(c("job_detail"), "GET", At(c("job_detail"), J),                      "show  show  show   show   404      login     login 404 404", markers=NAME),
    # The job has finished: the upload page sends its owner to the job page.
    row(c("job_upload"), "GET", At(c("job_upload"), J),                      "done  404   404    404    404      login     login 404 404"),
    row(c("job_status"), "GET", At(c("job_status"), J),                      "show  show  show   show   404      login     login 404 404", markers=shows(OUTPUT_NAME)),
    # Ended already: the owner is told so, nothing changes.
    row(c("job_cancel"), "POST", At(c("job_cancel"), J),                     "done  404   404    404    404      login     login 404 404"),
    # The API cannot give the original back (it is unreachable here): the owner is told so.
    row(c("job_retry"), "POST", At(c("job_retry"), J),                       "done  404   404    404    404      login     login 404 404"),
    row(c("job_share"), "POST", At(c("job_share"), J),                       "done  404   404    404    404      login     login 404 404",
        data=lambda w: {"team": ""}, effect=lambda w, u: ConversionJob.objects.get(pk=w.job.pk).team_id is None),
    row(c("job_delete"), "GET", At(c("job_delete"), J),                      "show  404   404    404    404      login     login 404 404", markers=NAME),
    row(c("job_delete"), "POST", At(c("job_delete"), J),                     "done  404   404    404    404      login     login 404 404", effect=job_gone),
    row(c("job_zip"), "GET", At(c("job_zip"), J),                            "show  show  show   show   404      login     login 404 404", markers=shows(OUTPUT_NAME.encode())),
    row(c("file_download"), "GET", At(c("file_download"), F),                "show  show  show   show   404      login     login 404 404", markers=FILE),
    row(c("file_thumbnail"), "GET", At(c("file_thumbnail"), F),              "show  show  show   show   404      login     login 404 404", markers=shows(THUMBNAIL)),
    # Public, for the API's deliveries: without a valid signature, refused alike for everyone.
    row(c("webhook"), "POST", At(c("webhook")),                              "400   400   400    400    400      400       400   400 400"),
    row(c("account"), "GET", At(c("account")),                               "show  ok    ok     ok     ok       login     login ok  ok", markers=shows(ALICE_EMAIL)),
    row(c("team_list"), "GET", At(c("team_list")),                           "show  show  show   show   ok       login     login ok  ok", markers=TEAM),
    row(c("team_list"), "POST", At(c("team_list")),                          "done  done  done   done   done     login     login done done",
        data=lambda w: {"name": "Launch"}, effect=lambda w, u: Team.objects.filter(name="Launch").exists()),
    row(c("team_detail"), "GET", At(c("team_detail"), T),                    "show  show  show   show   404      login     login 404 404", markers=shows(TEAM_NAME, JOB_NAME)),
    row(c("team_members"), "GET", At(c("team_members"), T),                  "show  show  show   show   404      login     login 404 404", markers=shows(TEAM_NAME, "carol")),
    row(c("team_invite"), "POST", At(c("team_invite"), T),                   "done  done  404    404    404      login     login 404 404",
        data=lambda w: {"email": "frank@example.com", "role": "member"},
        effect=lambda w, u: TeamInvitation.objects.filter(email="frank@example.com").exists()),
    row(c("invitation_revoke"), "POST", At(c("invitation_revoke"), ("team", "invitation")),
                                                                             "done  done  404    404    404      login     login 404 404",
        effect=lambda w, u: invitation_status(w) == "revoked"),
    row(c("member_role"), "POST", At(c("member_role"), ("team", "carol")),   "done  done  404    404    404      login     login 404 404",
        data=lambda w: {"role": "viewer"}, effect=lambda w, u: membership_of(w, "member").role == "viewer"),
    row(c("member_remove"), "POST", At(c("member_remove"), ("team", "carol")),
                                                                             "done  done  404    404    404      login     login 404 404",
        effect=lambda w, u: membership_of(w, "member") is None),
    # The last owner is told to hand the team over first.
    row(c("team_leave"), "POST", At(c("team_leave"), T),                     "kept  done  done   done   404      login     login 404 404",
        effect=lambda w, u: Membership.objects.filter(team=w.team).count() < len(TEAM_ROLES)),
    row(c("team_delete"), "GET", At(c("team_delete"), T),                    "show  404   404    404    404      login     login 404 404", markers=TEAM),
    row(c("team_delete"), "POST", At(c("team_delete"), T),                   "done  404   404    404    404      login     login 404 404",
        effect=lambda w, u: not Team.objects.filter(pk=w.team.pk).exists()),
    row(c("team_job_delete"), "GET", At(c("team_job_delete"), ("team", "job")),
                                                                             "show  show  404    404    404      login     login 404 404", markers=NAME),
    row(c("team_job_delete"), "POST", At(c("team_job_delete"), ("team", "job")),
                                                                             "done  done  404    404    404      login     login 404 404", effect=job_gone),
    row(c("team_activity"), "GET", At(c("team_activity"), T),                "show  show  404    404    404      login     login 404 404", markers=NAME),
    row(c("team_activity"), "POST", At(c("team_activity"), T),               "done  done  404    404    404      login     login 404 404",
        data=lambda w: {"days": "7"}, effect=lambda w, u: Team.objects.get(pk=w.team.pk).retention_days == 7),
    row(c("activity"), "GET", At(c("activity")),                             "show  ok    ok     ok     ok       login     login ok  ok", markers=NAME),
    # A bearer link: whoever holds it sees whom it invites where; only erin's account may accept.
    row(c("invitation"), "GET", At(c("invitation"), ("invitation_token",)),  "show  show  show   show   show     show      show  show show", markers=TEAM),
    row(c("invitation_accept"), "POST", At(c("invitation_accept"), ("invitation_token",)),
                                                                             "kept  kept  kept   kept   done     login     login kept kept",
        effect=lambda w, u: u is not None and Membership.objects.filter(team=w.team, user=u).exists()
        and invitation_status(w) == "accepted"),
    # Anyone holding the link may decline it (logged out, they are sent to the login page after).
    row(c("invitation_decline"), "POST", At(c("invitation_decline"), ("invitation_token",)),
                                                                             "done  done  done   done   done     done      done  done done",
        effect=lambda w, u: invitation_status(w) == "declined"),
    row(c("share_link_create"), "POST", At(c("share_link_create"), J),       "done  404   404    404    404      login     login 404 404",
        data=lambda w: {"output": str(w.output.uuid)}, effect=lambda w, u: ShareLink.objects.count() == 2),
    # The job's owner and the managers of the team it is shared with revoke its links.
    row(c("share_link_revoke"), "POST", At(c("share_link_revoke"), ("link",)),
                                                                             "done  done  404    404    404      login     login 404 404",
        effect=lambda w, u: ShareLink.objects.get(pk=w.link.pk).revoked_at is not None),
    row(c("share_link_public"), "GET", At(c("share_link_public"), ("link_token",)),
                                                                             "show  show  show   show   show     show      show  show show", markers=shows(OUTPUT_NAME)),
    row(c("share_link_download"), "GET", At(c("share_link_download"), ("link_token",)),
                                                                             "show  show  show   show   show     show      show  show show", markers=FILE),
    # For whoever runs ccweb: public, and about ccweb itself (no world object in them).
    row("ops:healthz", "GET", At("ops:healthz"),                             "ok    ok    ok     ok     ok       ok        ok    ok  ok", markers=lambda w: SECRETS),
    row("ops:readyz", "GET", At("ops:readyz"),                               "ok    ok    ok     ok     ok       ok        ok    ok  ok", markers=lambda w: SECRETS),
    row("ops:metrics", "GET", At("ops:metrics"),                             "ok    ok    ok     ok     ok       ok        ok    ok  ok", markers=lambda w: SECRETS),
]
# fmt: on


def missing_rows(rows: list[Row]) -> Iterator[Row]:
    """Each object address again with one of its ids unknown: 404 for everyone, except the login
    redirect that anonymous visitors get from a page needing a login before anything is looked up."""
    for real in rows:
        for slot in real.at.slots():
            outcomes = {actor: "login" if outcome == "login" else "404" for actor, outcome in real.outcomes.items()}
            yield replace(real, at=replace(real.at, missing=slot), outcomes=outcomes, label=f"{real.label} missing {slot}".strip())


# --- The admin ------------------------------------------------------------------------------------


def admin_object(world: World, model: type[Model]) -> Model:
    if model not in world.admin_objects:
        pytest.fail(f"The world has no {model.__name__} for its admin pages: add one to the `world` fixture.")
    return world.admin_objects[model]


def admin_marker(obj: Model) -> str:
    """What the admin's list, change and history pages of the object show of it."""
    if isinstance(obj, ConversionJob | ActivityEvent):
        return JOB_NAME  # an event's sentence names its job ("alice shared merger-plans.docx with Design.")
    if isinstance(obj, WebhookDelivery):
        return REMOTE_JOB_ID  # the list shows it in a column of its own
    return str(obj)


def unknown_pk(model: type[Model]) -> str:
    return str(uuid.uuid4()) if model._meta.pk.get_internal_type() == "UUIDField" else "987654321"


def admin_model_rows() -> Iterator[Row]:
    """Rows for every model registered in the admin. Sue may view and change the conversions models
    (not add or delete them); sam may do nothing."""
    for model in admin.site._registry:
        meta = model._meta
        prefix = f"admin:{meta.app_label}_{meta.model_name}"
        sue_views = "show" if meta.app_label == "conversions" else "404"

        def pk(world: World, model: type[Model] = model) -> str:
            return str(admin_object(world, model).pk)

        def marker(world: World, model: type[Model] = model) -> tuple:
            return (admin_marker(admin_object(world, model)),)

        def changelist(world: World, prefix: str = prefix) -> str:
            return reverse(f"{prefix}_changelist")

        def add(world: World, prefix: str = prefix) -> str:
            return reverse(f"{prefix}_add")

        def object_page(page: str, object_id: Callable[[World], str] = pk, prefix: str = prefix) -> Callable:
            return lambda world: reverse(f"{prefix}_{page}", args=[object_id(world)])

        def old_address(object_id: Callable[[World], str] = pk, prefix: str = prefix) -> Callable:
            return lambda world: reverse(f"{prefix}_change", args=[object_id(world)]).removesuffix("change/")

        def unknown(world: World, model: type[Model] = model) -> str:
            return unknown_pk(model)

        old_route = f"admin/{meta.app_label}/{meta.model_name}/<path:object_id>/"
        # Logged in without staff rights: 404; sam, without permission: 404.
        base = "404 404 404 404 404 login login 404"
        yield Row(f"{prefix}_changelist", "GET", changelist, cells(f"{base} {sue_views}"), markers=marker)
        yield Row(f"{prefix}_add", "GET", add, cells(f"{base} 404"), markers=marker)
        for page in ("change", "history"):
            yield Row(f"{prefix}_{page}", "GET", object_page(page), cells(f"{base} {sue_views}"), markers=marker)
            # An unknown id: sue may view the model and is told it does not exist; sam learns nothing.
            yield Row(
                f"{prefix}_{page}", "GET", object_page(page, unknown),
                cells(f"{base} {'done' if sue_views == 'show' else '404'}"), label="missing object",
            )
        yield Row(f"{prefix}_delete", "GET", object_page("delete"), cells(f"{base} 404"), markers=marker)
        yield Row(f"{prefix}_delete", "GET", object_page("delete", unknown), cells(f"{base} 404"), label="missing object")
        yield Row(old_route, "GET", old_address(), cells("404 404 404 404 404 login login done done"))


def view_on_site(world: World, obj: Model) -> str:
    return reverse("admin:view_on_site", args=[ContentType.objects.get_for_model(obj).pk, obj.pk])


# fmt: off
ADMIN_SITE_ROWS = [
    #                                                                          owner admin member viewer outsider anonymous link sam sue
    # The index lists what the visitor may see: nothing for sam.
    Row("admin:index", "GET", lambda w: reverse("admin:index"),          cells("404   404   404    404    404      login     login ok  show"),
        markers=shows("Webhook deliveries")),
    # The login form is public; staff already logged in are sent on to the index.
    Row("admin:login", "GET", lambda w: reverse("admin:login"),          cells("ok    ok    ok     ok     ok       ok        ok    done done")),
    # Staff are logged out and sent where every logout goes (LOGOUT_REDIRECT_URL: the app's login page).
    Row("admin:logout", "POST", lambda w: reverse("admin:logout"),       cells("404   404   404    404    404      done      done  done done")),
    Row("admin:password_change", "GET", lambda w: reverse("admin:password_change"),
                                                                         cells("404   404   404    404    404      login     login ok  ok")),
    Row("admin:password_change_done", "GET", lambda w: reverse("admin:password_change_done"),
                                                                         cells("404   404   404    404    404      login     login ok  ok")),
    # No model offers an autocomplete field.
    Row("admin:autocomplete", "GET", lambda w: reverse("admin:autocomplete"),
                                                                         cells("404   404   404    404    404      login     login 404 404")),
    Row("admin:jsi18n", "GET", lambda w: reverse("admin:jsi18n"),        cells("404   404   404    404    404      login     login ok  ok")),
    Row("admin:app_list", "GET", lambda w: reverse("admin:app_list", args=["conversions"]),
                                                                         cells("404   404   404    404    404      login     login 404 show"),
        markers=shows("Webhook deliveries")),
    Row("admin:app_list", "GET", lambda w: reverse("admin:app_list", args=["engine"]),
                                                                         cells("404   404   404    404    404      login     login 404 404"),
        label="an app sue may not view"),
    # "View on site": only for objects of a model the visitor may view in the admin.
    Row("admin:view_on_site", "GET", lambda w: view_on_site(w, w.job),   cells("404   404   404    404    404      login     login 404 done")),
    # Share links are not in the admin: their page (the token is its address) is nobody's to find here.
    Row("admin:view_on_site", "GET", lambda w: view_on_site(w, w.link),  cells("404   404   404    404    404      login     login 404 404"),
        label="a share link"),
    Row("admin:auth_user_password_change", "GET", lambda w: reverse("admin:auth_user_password_change", args=[w.users["owner"].pk]),
                                                                         cells("404   404   404    404    404      login     login 404 404")),
    # The console's pages (conversions/admin.py), for staff who may view jobs.
    Row("admin:conversions_overview", "GET", lambda w: reverse("admin:conversions_overview"),
                                                                         cells("404   404   404    404    404      login     login 404 ok")),
    Row("admin:conversions_usage", "GET", lambda w: reverse("admin:conversions_usage"),
                                                                         cells("404   404   404    404    404      login     login 404 show"),
        markers=shows(">alice<")),
    Row("admin/(?P<url>.*)$", "GET", lambda w: "/admin/no/such/page/",   cells("404   404   404    404    404      login     login 404 404")),
]
# fmt: on

ROWS = [*APP_ROWS, *missing_rows(APP_ROWS), *ADMIN_SITE_ROWS, *admin_model_rows()]


# --- Asking ---------------------------------------------------------------------------------------


def content(response: HttpResponse) -> bytes:
    # Read to the end, the test client's wrapper closes the response itself; closing it again
    # would send request_finished, whose close_old_connections closes the test's own connection.
    return b"".join(response.streaming_content) if response.streaming else response.content


def contains(body: bytes, marker: str | bytes) -> bool:
    return (marker if isinstance(marker, bytes) else marker.encode()) in body


def mismatch(row: Row, actor: str, path: str, response: HttpResponse, world: World, changed: bool | None) -> str | None:
    """What is wrong with the answer, or None."""
    expected = row.outcomes[actor]
    status = response.status_code
    body = content(response)
    location = response.get("Location", "")
    markers = row.markers(world)
    leaked = [m for m in SECRETS if contains(body, m)]
    if expected == "show":
        if not 200 <= status < 300:
            return f"answered {status} {location}, not 2xx"
        missing = [m for m in markers if not contains(body, m)]
        return f"does not show {missing}" if missing else None
    if expected == "ok":
        if not 200 <= status < 300:
            return f"answered {status} {location}, not 2xx"
        shown = [m for m in markers if contains(body, m)]
        return f"shows {shown}" if shown else None
    if expected == "login":
        login = reverse("admin:login") if path.startswith("/admin/") else reverse("account_login")
        if status != 302 or not location.startswith(f"{login}?next="):
            return f"answered {status} {location}, not the login redirect"
        return None
    if expected in ("done", "kept"):
        if not 300 <= status < 400:
            return f"answered {status}, not a redirect"
        if changed is not None and changed != (expected == "done"):
            return "the action happened" if changed else "the action did not happen"
        return f"its page shows {leaked}" if leaked else None
    if status != int(expected):
        return f"answered {status} {location}, not {expected}"
    if leaked:
        return f"the {status} shows {leaked}"
    if changed:
        return f"the {status} came with the action done"
    return None


def ask(row: Row, world: World) -> list[str]:
    """Every actor asks the row's URL; each in a savepoint rolled back after, so that one actor's
    action does not change what the next one finds."""
    browsers = clients(world)
    problems = []
    for actor in ACTORS:
        user = world.users.get(actor)
        with transaction.atomic():
            path = row.at.path(world) if isinstance(row.at, At) else row.at(world)
            request = getattr(browsers[actor], row.method.lower())
            try:
                response = request(path, row.data(world))
            except Exception as error:  # a 500: the test client raises the view's exception
                problems.append(f"{actor}: {row.method} {path} raised {error!r}")
                transaction.set_rollback(True)
                continue
            changed = row.effect(world, user) if row.effect else None
            problem = mismatch(row, actor, path, response, world, changed)
            if problem:
                problems.append(f"{actor} (expected {row.outcomes[actor]}): {row.method} {path} {problem}")
            transaction.set_rollback(True)
    return problems


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_each_visitor_gets_what_the_matrix_says(row: Row, world: World):
    problems = ask(row, world)
    assert not problems, "\n".join(problems)


# --- Rules ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    levels: tuple  # the patterns from the root to the view
    name: str | None

    @property
    def text(self) -> str:
        return "".join(str(level) for level in self.levels)

    def sample_path(self, values: dict[str, str]) -> str:
        """A path this route matches, its arguments taken from `values` (or "x")."""
        parts = []
        for level in self.levels:
            form, params = normalize(level.regex.pattern)[0]
            parts.append(form % {param: values.get(param, "x") for param in params})
        return "/" + "".join(parts)


def routes(patterns: list | None = None, levels: tuple = (), namespace: str = "") -> Iterator[Route]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from routes(pattern.url_patterns, (*levels, pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            yield Route((*levels, pattern.pattern), f"{namespace}{pattern.name}" if pattern.name else None)


RULES = {"engine/": "the engine's API (its own API-key auth)", "accounts/": "allauth's own pages"}


def ruled(route: Route, prefix: str) -> bool:
    return route.text.startswith(prefix)


def test_every_url_of_ccweb_is_in_the_matrix():
    covered = {r.pattern for r in ROWS}
    uncovered = [
        route.text
        for route in routes()
        if route.name not in covered and route.text not in covered and not any(ruled(route, p) for p in RULES)
    ]
    assert not uncovered, "URL patterns with no row in the access matrix and no rule: " + ", ".join(uncovered)
    known = {route.name for route in routes()} | {route.text for route in routes()}
    assert covered <= known, f"rows for URL patterns that do not exist: {covered - known}"
    # Every actor and outcome is spelled out for each row (the table would not parse otherwise).
    assert all(set(r.outcomes) == set(ACTORS) for r in ROWS)


# Public in the engine: what it converts, for anyone.
ENGINE_PUBLIC = {"convert/formats", "operations"}


def engine_values(world: World) -> dict[str, str]:
    return {
        "job_id": str(world.engine_job.id),
        "task_id": str(world.engine_task.id),
        "webhook_id": str(world.engine_webhook.id),
        "file_id": str(world.engine_file.id),
        "filename": OUTPUT_NAME,
        "operation": "convert",
    }


@pytest.mark.parametrize("route", [r for r in routes() if ruled(r, "engine/")], ids=lambda r: r.text)
def test_a_rule_covers_the_engine_no_session_opens_anything_there(route: Route, world: World):
    path = route.sample_path(engine_values(world))
    public = any(path.endswith(f"/v2/{name}") for name in ENGINE_PUBLIC)
    problems = []
    for actor, browser in clients(world).items():
        for method, response in engine_answers(browser, path):
            body = content(response)
            if public:
                allowed = response.status_code == 200
            elif "/storage/" in path:
                allowed = response.status_code in (403, 404)  # a signed URL without its signature
            else:
                allowed = response.status_code in (401, 404)  # 404: the catch-all and the unknown-route answer
            leaked = [m for m in SECRETS if contains(body, m)]
            if not allowed or leaked:
                problems.append(f"{actor}: {method} {path} answered {response.status_code}, showing {leaked}")
    assert not problems, "\n".join(problems)


def engine_answers(browser: Client, path: str) -> Iterator[tuple[str, HttpResponse]]:
    """The answers to GET, or, where the route does not take GET (405), to each method it does take
    (its Allow header; OPTIONS is the browsers' CORS preflight, which opens nothing)."""
    response = browser.get(path)
    if response.status_code != 405:
        yield "GET", response
        return
    methods = [m.strip().upper() for m in response.get("Allow", "").split(",")]
    assert methods != [""], f"GET {path} answered 405 without an Allow header"
    for method in methods:
        if method not in ("GET", "HEAD", "OPTIONS"):
            yield method, browser.generic(method, path)


@pytest.mark.parametrize("route", [r for r in routes() if ruled(r, "accounts/")], ids=lambda r: r.text)
def test_a_rule_covers_allauths_pages_they_show_nobody_else_anything_of_alices(route: Route, world: World):
    path = route.sample_path({"provider_id": "acme", "key": "not-a-key", "uidb36": "1"})
    problems = []
    for actor, browser in clients(world).items():
        response = browser.get(path)
        body = content(response)
        leaked = [m for m in SECRETS if contains(body, m)] if actor != "owner" else []
        if response.status_code >= 500 or leaked:
            problems.append(f"{actor}: GET {path} answered {response.status_code}, showing {leaked}")
    assert not problems, "\n".join(problems)
