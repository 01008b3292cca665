from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from conversions import services
from conversions.cloudconvert.errors import ApiError
from conversions.models import ConversionJob, OutputFile, Preset, Team, WebhookDelivery


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
    actions = ["refresh_from_api"]

    # Refreshing writes the job (status, files): staff who may only view jobs neither see nor post it.
    @admin.action(description="Refresh the selected jobs from the API", permissions=["change"])
    def refresh_from_api(self, request: HttpRequest, queryset: QuerySet[ConversionJob]) -> None:
        refreshed = 0
        for job in queryset.exclude(remote_job_id=""):
            try:
                services.job_refresh(job=job)
                refreshed += 1
            except ApiError as error:
                self.message_user(request, f"{job.uuid}: {error}", level=messages.WARNING)
        self.message_user(request, f"{refreshed} job(s) refreshed.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event", "remote_job_id", "received_at")
    list_filter = ("event",)
    search_fields = ("remote_job_id", "body_sha256")
    readonly_fields = ("body_sha256", "event", "remote_job_id", "received_at")


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "output_format", "created_at")
    list_filter = ("output_format",)
    search_fields = ("name", "user__username")
    list_select_related = ("user",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "member_count", "created_at")
    search_fields = ("name", "members__username", "members__email")
    filter_horizontal = ("members",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).annotate(member_count=Count("members", distinct=True))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, team: Team) -> int:
        return team.member_count
