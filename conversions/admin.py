"""The admin as the operations console. Every action goes through the services the app uses,
declares the permission it needs, reports per object ("3 cancelled, 1 could not be: ..."), and
leaves a line in the activity log. Beside the models: an overview page and usage per user and
team (conversions/console.py), linked from the jobs' list."""

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from conversions import activity, console, services
from conversions.cloudconvert.errors import ApiError
from conversions.models import (
    ActivityEvent,
    ConversionJob,
    Membership,
    OutputFile,
    Preset,
    QuotaOverride,
    Team,
    WebhookDelivery,
)

logger = logging.getLogger(__name__)

# Names of objects a report lists per reason before it says "and N more".
NAMES_PER_REASON = 5
# Bytes of a logged webhook body shown on its page.
BODY_SHOWN = 64 * 1024


class Refused(Exception):
    """An object an action could not act on, with the reason as a sentence."""


def run_per_object(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable[Model],
    *,
    done: str,
    act: Callable[[Any], ConversionJob | None],
    action: str,
) -> None:
    """Run `act` on each object and report it as "3 cancelled, 1 could not be: <reason>" (the
    names of those that could not, per reason). `act` returns the job it acted on, for the
    activity log (None: the service logged it itself), or raises Refused, ConversionError or
    ApiError to say why not."""
    succeeded = 0
    refused: dict[str, list[str]] = {}
    for obj in objects:
        try:
            job = act(obj)
        except (Refused, services.ConversionError) as error:
            refused.setdefault(str(error), []).append(str(obj))
            continue
        except ApiError as error:
            logger.warning("admin %s of %s failed: %r", action, obj, error)
            # Staff read the API's own words (the app's users get api_error_sentence's).
            refused.setdefault(str(error) or services.api_error_sentence(error), []).append(str(obj))
            continue
        succeeded += 1
        if job is not None:
            activity.record(actor=request.user, verb=activity.ADMIN_ACTION, target=job, detail={"action": action})
    failed = sum(len(names) for names in refused.values())
    report = f"{succeeded} {done}"
    if failed:
        reasons = "; ".join(f"{_names(names)}: {reason.rstrip('.')}" for reason, names in refused.items())
        report += f", {failed} could not be: {reasons}."
    else:
        report += "."
    level = messages.SUCCESS if not failed else messages.WARNING if succeeded else messages.ERROR
    model_admin.message_user(request, report, level=level)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_PER_REASON])
    return shown + (f" and {len(names) - NAMES_PER_REASON} more" if len(names) > NAMES_PER_REASON else "")


class OutputFileInline(admin.TabularInline):
    model = OutputFile
    extra = 0
    fields = ("filename", "size", "file", "remote_url", "created_at")
    readonly_fields = fields
    can_delete = False


@admin.register(ConversionJob)
class ConversionJobAdmin(admin.ModelAdmin):
    list_display = ("uuid", "user", "input_filename", "output_format", "status", "percent", "team", "created_at", "finished_at")
    list_filter = ("status", "output_format", "team", "created_at")
    search_fields = ("uuid", "remote_job_id", "input_filename", "user__username", "user__email")
    list_select_related = ("user", "team")
    date_hierarchy = "created_at"
    readonly_fields = (
        "uuid", "remote_job_id", "tag", "status", "percent", "error_code", "error_message",
        "payload", "created_at", "updated_at", "finished_at",
    )
    inlines = [OutputFileInline]
    actions = ["cancel_jobs", "retry_jobs", "refresh_from_api", "copy_outputs_again", "delete_jobs"]

    def get_actions(self, request: HttpRequest) -> dict:
        # Django's own bulk delete would leave the jobs (and their files) at the API: delete_jobs instead.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_urls(self) -> list[URLPattern]:
        return [
            path("overview/", self.admin_site.admin_view(self.overview_view), name="conversions_overview"),
            path("usage/", self.admin_site.admin_view(self.usage_view), name="conversions_usage"),
            *super().get_urls(),
        ]

    def _console_page(self, request: HttpRequest, template: str, context: dict) -> TemplateResponse:
        # Staff who may not view jobs do not learn that these pages exist.
        if not self.has_view_permission(request):
            raise Http404("No such page.")
        return TemplateResponse(
            request, template, {**self.admin_site.each_context(request), "opts": self.model._meta, **context}
        )

    def overview_view(self, request: HttpRequest) -> TemplateResponse:
        return self._console_page(
            request, "admin/conversions/overview.html", {"title": "Overview", "overview": console.overview()}
        )

    def usage_view(self, request: HttpRequest) -> TemplateResponse:
        context = {
            "title": f"Usage in the last {console.USAGE_DAYS} days",
            "users": console.usage_by_user(),
            "teams": console.usage_by_team(),
            "may_override": request.user.has_perm("conversions.add_quotaoverride"),
        }
        return self._console_page(request, "admin/conversions/usage.html", context)

    # Writes the job (status, files): staff who may only view jobs neither see nor post it.
    @admin.action(description="Cancel the selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[ConversionJob]) -> None:
        def cancel(job: ConversionJob) -> ConversionJob:
            if not job.is_running:
                raise Refused("it had already ended")
            job = services.job_cancel(job=job)
            if job.status == ConversionJob.Status.FINISHED:
                raise Refused("it finished before the cancel reached it")
            return job

        run_per_object(self, request, queryset, done="cancelled", act=cancel, action="cancel")

    # A retry starts a new job for the owner (and counts against their daily quota).
    @admin.action(description="Retry the selected jobs with the same file", permissions=["add"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[ConversionJob]) -> None:
        def retry(job: ConversionJob) -> ConversionJob:
            services.job_retry(job=job)
            return job

        run_per_object(self, request, queryset.select_related("user"), done="retried", act=retry, action="retry")

    @admin.action(description="Refresh the selected jobs from the API", permissions=["change"])
    def refresh_from_api(self, request: HttpRequest, queryset: QuerySet[ConversionJob]) -> None:
        def refresh(job: ConversionJob) -> ConversionJob:
            if not job.remote_job_id:
                raise Refused("the API never created it")
            return services.job_refresh(job=job)

        run_per_object(self, request, queryset, done="refreshed", act=refresh, action="refresh from the API")

    @admin.action(description="Copy the selected jobs' files into storage again", permissions=["change"])
    def copy_outputs_again(self, request: HttpRequest, queryset: QuerySet[ConversionJob]) -> None:
        def copy(job: ConversionJob) -> ConversionJob:
            services.job_outputs_copy_again(job=job)
            return job

        run_per_object(self, request, queryset, done="copied again", act=copy, action="copy files again")

    @admin.action(description="Delete the selected jobs here and at the API", permissions=["delete"])
    def delete_jobs(self, request: HttpRequest, queryset: QuerySet[ConversionJob]) -> HttpResponse | None:
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(
                request,
                "admin/conversions/confirm_action.html",
                {
                    **self.admin_site.each_context(request),
                    "opts": self.model._meta,
                    "title": "Delete these jobs here and at the API?",
                    "objects": queryset,
                    "action": "delete_jobs",
                    "consequence": "Their converted files are deleted too, here and at the API. This cannot be undone.",
                },
            )

        run_per_object(self, request, queryset, done="deleted", act=self._delete(request), action="delete")
        return None

    @staticmethod
    def _delete(request: HttpRequest) -> Callable[[ConversionJob], None]:
        def delete(job: ConversionJob) -> None:
            services.job_delete(job=job, by=request.user, detail={"via": "admin"})

        return delete

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None) -> HttpResponse:
        """A job's own Delete button: Django's confirmation page, then the service, which asks the
        API first (outside Django's transaction around deleting: no lock is held over the call)."""
        if request.method != "POST":
            return super().delete_view(request, object_id, extra_context)
        job = self.get_object(request, unquote(object_id))
        if job is None or not self.has_delete_permission(request, job):
            raise PermissionDenied

        run_per_object(self, request, [job], done="deleted", act=self._delete(request), action="delete")
        if job.pk is not None:  # not deleted (Django clears the pk of what it deleted): the report says why
            return HttpResponseRedirect(reverse("admin:conversions_conversionjob_change", args=[job.pk]))
        return HttpResponseRedirect(reverse("admin:conversions_conversionjob_changelist"))


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("accepted", "Accepted"), ("rejected", "Rejected (any reason)"), *WebhookDelivery.Rejection.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> QuerySet[WebhookDelivery]:
        value = self.value()
        if value == "accepted":
            return queryset.filter(rejected_because="")
        if value == "rejected":
            return queryset.exclude(rejected_because="")
        if value in WebhookDelivery.Rejection.values:
            return queryset.filter(rejected_because=value)
        return queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The webhook's log: accepted deliveries (their bodies kept for a replay) and rejected ones."""

    list_display = ("received_at", "outcome", "event", "remote_job_id", "body_size")
    list_filter = (OutcomeFilter, "event", "received_at")
    search_fields = ("remote_job_id", "body_sha256")
    date_hierarchy = "received_at"
    fields = (
        "received_at", "outcome", "detail", "event", "remote_job_id", "body_sha256", "body_size", "body_text",
    )
    readonly_fields = fields
    actions = ["replay"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # The list shows no body (up to megabytes each); a delivery's own page loads it.
        return super().get_queryset(request).defer("body")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only the webhook writes the log

    def has_change_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversions.replay_webhookdelivery")

    @admin.display(description="outcome", ordering="rejected_because")
    def outcome(self, delivery: WebhookDelivery) -> str:
        return f"Rejected: {delivery.get_rejected_because_display()}" if delivery.rejected_because else "Accepted"

    @admin.display(description="body")
    def body_text(self, delivery: WebhookDelivery) -> str:
        if not delivery.body:
            return "(not kept)"
        body = bytes(delivery.body)
        text = body[:BODY_SHOWN].decode("utf-8", errors="replace")
        cut = len(body) < (delivery.body_size or 0) or len(body) > BODY_SHOWN
        return format_html("<pre>{}</pre>{}", text, "(cut short)" if cut else "")

    @admin.action(description="Apply the selected deliveries again", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        run_per_object(
            self, request, queryset,
            done="applied again", act=lambda delivery: services.webhook_replay(delivery=delivery),
            action="replay webhook delivery",
        )


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "output_format", "created_at")
    list_filter = ("output_format",)
    search_fields = ("name", "user__username")
    list_select_related = ("user",)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    fields = ("user", "role", "joined_at")
    readonly_fields = ("joined_at",)
    raw_id_fields = ("user",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "member_count", "created_at")
    search_fields = ("name", "members__username", "members__email")
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("members", distinct=True))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, team: Team) -> int:
        return team.member_count

    # What staff change here reaches the team's activity log, as the same change made on the team's
    # own pages does (the admin saves a form and its inlines in one transaction, the log with them).

    def save_model(self, request: HttpRequest, obj: Team, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            activity.record(
                actor=request.user, verb=activity.ADMIN_ACTION, target=obj, detail={"action": "create the team"}
            )
        elif "retention_days" in form.changed_data:
            activity.record(
                actor=request.user,
                verb=activity.RETENTION_CHANGED,
                target=obj,
                detail={"from": form.initial.get("retention_days"), "to": obj.retention_days},
            )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is not Membership:
            return
        done = [(member, f"add as {member.get_role_display().lower()}") for member in formset.new_objects]
        done += [
            (member, f"make {member.get_role_display().lower()}")
            for member, fields in formset.changed_objects
            if "role" in fields
        ]
        done += [(member, "remove from the team") for member in formset.deleted_objects]
        for member, action in done:
            activity.record(actor=request.user, verb=activity.ADMIN_ACTION, target=member, detail={"action": action})


@admin.register(ActivityEvent)
class ActivityEventAdmin(admin.ModelAdmin):
    """Everything the activity log holds, for staff; nobody writes it here."""

    list_display = ("created_at", "sentence", "verb", "actor_label", "team", "owner")
    list_filter = ("verb", "created_at")
    search_fields = ("actor_label", "target_label", "team__name", "owner__username")
    list_select_related = ("team", "owner")
    date_hierarchy = "created_at"
    fields = ("created_at", "sentence", "verb", "actor", "actor_label", "team", "owner", "job", "target_type",
              "target_label", "detail")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ActivityEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ActivityEvent | None = None) -> bool:
        return False  # the log is trimmed by age only (CONVERSIONS_ACTIVITY_LOG_DAYS)


@admin.register(QuotaOverride)
class QuotaOverrideAdmin(admin.ModelAdmin):
    """Daily quotas other than CONVERSIONS_DAILY_JOB_QUOTA, for one user or a team's members."""

    list_display = ("__str__", "user", "team", "daily_jobs", "note", "updated_at")
    search_fields = ("user__username", "user__email", "team__name", "note")
    list_select_related = ("user", "team")
    raw_id_fields = ("user", "team")
