import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversions import activity, selectors, services
from conversions.cloudconvert.client import api_config
from conversions.cloudconvert.errors import ApiError
from conversions.cloudconvert.webhooks import verify_signature
from conversions.forms import OPTION_PREFIX, ConvertForm, DashboardFilterForm, ShareForm
from conversions.models import ConversionJob, WebhookDelivery
from conversions.payloads import MalformedPayload
from conversions.zips import zip_filename, zip_of_outputs

logger = logging.getLogger(__name__)

JOBS_PER_PAGE = 25
WEBHOOK_READ_CHUNK = 64 * 1024
Rejection = WebhookDelivery.Rejection
ROWS_CACHE_SECONDS = 3600
# Running jobs of one dashboard page asked about at the API per request (see services.jobs_refresh_stale).
DASHBOARD_REFRESH_LIMIT = 3
# A job page loaded (or reloaded) asks the API about its running job at most this often.
JOB_PAGE_REFRESH_EVERY = timedelta(seconds=1)


def _dashboard_page(request: HttpRequest) -> tuple[Page, QuerySet, DashboardFilterForm, str]:
    """The page of (pk, updated_at, status) rows the dashboard shows, the jobs behind it, the
    filters (the user's own jobs, or with `shared` those their teams share). Its running jobs
    are brought up to date with the API first when nobody asked about them for a while."""
    # The format filter offers what the API converts to (cached), not a scan of the user's jobs.
    formats = selectors.conversion_catalogue().output_formats() or [request.GET.get("output_format", "")]
    filters = DashboardFilterForm(request.GET or None, formats=[f for f in formats if f])
    jobs = selectors.jobs_matching(request.user, **filters.filters())
    query = urlencode({k: v for k, v in request.GET.items() if k != "page" and v})

    def page_of_jobs() -> Page:
        rows = jobs.values_list("pk", "updated_at", "status")
        return Paginator(rows, JOBS_PER_PAGE).get_page(request.GET.get("page"))

    page = page_of_jobs()
    running = [pk for pk, _, status in page if status not in ConversionJob.TERMINAL]
    # Not the stored payloads (megabytes for a job of many files): the API's answer replaces them.
    watched = ConversionJob.objects.filter(pk__in=running).only(
        "uuid", "status", "remote_job_id", "created_at", "updated_at", "poll_after"
    )
    if running and services.jobs_refresh_stale(jobs=watched, limit=DASHBOARD_REFRESH_LIMIT):
        page = page_of_jobs()
    return page, jobs, filters, query


def _rows_html(request: HttpRequest, page: Page, jobs: QuerySet, filters: DashboardFilterForm, query: str) -> str:
    """The table body, rendered once per state of the jobs it shows: every open dashboard polls
    it, and a row only changes when its job is saved (updated_at)."""
    state = [(pk, updated_at.timestamp()) for pk, updated_at, _ in page]
    key = "conversions:rows:" + hashlib.sha256(repr((request.user.pk, query, state)).encode()).hexdigest()
    html = cache.get(key)
    if html is None:
        rows = jobs.filter(pk__in=[pk for pk, _ in state])
        chosen = filters.filters()
        context = {
            "jobs": rows,
            "shared": chosen.get("shared", False),
            "filtered": any(chosen.get(name) for name in ("query", "status", "output_format")),
        }
        html = render_to_string("conversions/_job_rows.html", context, request=request)
        cache.set(key, html, ROWS_CACHE_SECONDS)
    return html


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    page, jobs, filters, query = _dashboard_page(request)
    return render(
        request,
        "conversions/dashboard.html",
        {
            "page": page,
            "rows": _rows_html(request, page, jobs, filters, query),
            "filters": filters,
            "query": query,
            "shared": filters.filters().get("shared", False),
            "teams": list(selectors.teams_of(request.user).prefetch_related("members")),
            "credits": selectors.account_credits(),
        },
    )


@login_required
@require_GET
def dashboard_rows(request: HttpRequest) -> HttpResponse:
    """The dashboard's table body, polled by live.js: often while a job runs, now and then when
    none does (a job started in another tab or by a team mate appears without a reload)."""
    page, jobs, filters, query = _dashboard_page(request)
    return HttpResponse(_rows_html(request, page, jobs, filters, query))


def _preset_initial(request: HttpRequest) -> dict:
    if not request.GET.get("preset"):
        return {}
    preset = selectors.preset_for_user(user=request.user, uuid=request.GET["preset"])
    initial = {"output_format": preset.output_format}
    initial.update({OPTION_PREFIX + name: value for name, value in preset.options.items()})
    return initial


@login_required
@require_http_methods(["GET", "POST"])
def convert(request: HttpRequest) -> HttpResponse:
    """Choose format and options (and, with JS, the files). The job is created at the API here;
    each file then goes from the browser straight to its job's upload URL."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    catalogue = selectors.conversion_catalogue()
    form = ConvertForm(
        request.POST or None, initial=_preset_initial(request), catalogue=catalogue, teams=selectors.teams_shared_to_by(request.user)
    )
    if not catalogue:
        messages.error(
            request, "The conversion service cannot be reached right now, so no format can be offered. Try again in a minute."
        )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = services.job_start(
                user=request.user,
                output_format=data["output_format"],
                options=form.options(),
                input_filename=data["filename"],
                source_url=data["source_url"],
                notify_by_email=data["notify_by_email"],
                team=data.get("team"),
                redirect_after_upload=not wants_json,
            )
        except services.OptionsRefused as error:
            form.add_option_errors(error.errors, str(error))
            if wants_json:
                return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        except services.ConversionError as error:
            if wants_json:
                return JsonResponse({"error": str(error)}, status=429 if isinstance(error, services.QuotaExceeded) else 502)
            messages.error(request, str(error))
        else:
            if data["save_preset_as"]:
                services.preset_save(
                    user=request.user, name=data["save_preset_as"], output_format=job.output_format, options=job.options
                )
            if wants_json:
                return JsonResponse(
                    {"job": str(job.uuid), "job_url": job.get_absolute_url(), "upload": job.upload_form}, status=201
                )
            if data["source_url"]:
                return redirect(job)
            return redirect("conversions:job_upload", uuid=job.uuid)
    elif request.method == "POST" and wants_json:
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    context = {
        "form": form,
        "catalogue": catalogue.for_browser(),
        "presets": selectors.presets_of(request.user),
        "max_upload_size": settings.CONVERSIONS_MAX_UPLOAD_SIZE,
        "quota": services.daily_quota_of(request.user),
        "used_today": selectors.jobs_started_today(request.user),
    }
    return render(request, "conversions/convert.html", context)


@login_required
@require_POST
def preset_delete(request: HttpRequest, uuid: str) -> HttpResponse:
    preset = selectors.preset_for_user(user=request.user, uuid=uuid)
    preset.delete()
    messages.success(request, f"The preset “{preset.name}” was deleted.")
    return redirect("conversions:convert")


@login_required
@require_GET
def job_upload(request: HttpRequest, uuid: str) -> HttpResponse:
    """Step two without JavaScript: a plain form posting the file to the API's upload URL."""
    job = selectors.job_owned_by(user=request.user, uuid=uuid)
    if not job.is_running or job.upload_form is None:
        return redirect(job)
    return render(
        request,
        "conversions/upload.html",
        {"job": job, "form": job.upload_form, "max_upload_size": settings.CONVERSIONS_MAX_UPLOAD_SIZE},
    )


def _job_context(request: HttpRequest, job: ConversionJob) -> dict:
    """What the job page and its live part show."""
    is_owner = job.user_id == request.user.pk
    return {
        "job": job,
        "is_owner": is_owner,
        "can_retry": is_owner and selectors.job_can_retry(job),
        "tasks": selectors.job_tasks_shown(job),
        "files": list(job.files.all()),
    }


@login_required
@require_GET
def job_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_for_user(user=request.user, uuid=uuid)
    if "upload_error" in request.GET:
        # The API sent the browser back without taking its file; only the owner's visit counts.
        if job.user_id == request.user.pk:
            services.job_upload_refused(job=job, code=request.GET["upload_error"])
        return redirect(job)
    # Loaded right after a plain upload form came back, the page shows the file arrived.
    if services.jobs_refresh_stale(jobs=[job], limit=1, every=JOB_PAGE_REFRESH_EVERY):
        job = selectors.job_for_user(user=request.user, uuid=uuid)
    context = _job_context(request, job)
    if context["is_owner"]:
        teams = selectors.teams_for_sharing(job)
        if teams.exists():
            context["share_form"] = ShareForm(initial={"team": job.team}, teams=teams)
    return render(request, "conversions/job_detail.html", context)


@login_required
@require_GET
def job_status(request: HttpRequest, uuid: str) -> HttpResponse:
    """The job page's live part, polled by live.js while the job runs; as JSON for the
    new-conversion page, which shows each file's progress and downloads on its row."""
    job = selectors.job_for_user(user=request.user, uuid=uuid)
    if services.jobs_refresh_stale(jobs=[job], limit=1):
        job = selectors.job_for_user(user=request.user, uuid=uuid)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(
            {
                "status": job.status,
                "percent": job.percent,
                "error": job.error_message,
                "files": [{"filename": f.filename, "url": f.get_absolute_url()} for f in job.files.all()],
            }
        )
    return render(request, "conversions/_job_status.html", _job_context(request, job))


def _act(request: HttpRequest, action: Callable[[], object]) -> object:
    """Run a job action; API trouble becomes a message, never an error page."""
    try:
        return action()
    except services.ConversionError as error:
        messages.error(request, str(error))
    except ApiError as error:
        logger.warning("job action failed: %r", error)
        messages.error(request, services.api_error_sentence(error))
    return None


@login_required
@require_POST
def job_cancel(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_owned_by(user=request.user, uuid=uuid)
    already_ended = "This conversion had already ended, so there was nothing to cancel."
    if not job.is_running:
        # A Cancel button left on a page from before the job ended: nothing changes.
        messages.info(request, already_ended)
    elif (cancelled := _act(request, lambda: services.job_cancel(job=job))) is not None:
        job = cancelled
        if job.status == ConversionJob.Status.FINISHED:
            messages.info(request, already_ended)  # it finished before the cancel reached it
        else:
            messages.success(request, "The conversion was cancelled.")
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"status": job.status})
    return redirect(job)


@login_required
@require_POST
def job_retry(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_owned_by(user=request.user, uuid=uuid)
    new_job = _act(request, lambda: services.job_retry(job=job))
    if new_job:
        messages.success(request, "The conversion was started again.")
        return redirect(new_job)
    return redirect(job)


@login_required
@require_POST
def job_share(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_owned_by(user=request.user, uuid=uuid)
    form = ShareForm(request.POST, teams=selectors.teams_for_sharing(job))
    if not form.is_valid():
        messages.error(request, "You can only share with a team you belong to.")
    elif _act(request, lambda: services.job_share(job=job, team=form.cleaned_data["team"], by=request.user)):
        if job.team:
            messages.success(request, f"The members of {job.team.name} now see this conversion and its files.")
        else:
            messages.success(request, "Only you see this conversion now.")
    return redirect(job)


@login_required
@require_http_methods(["GET", "POST"])
def job_delete(request: HttpRequest, uuid: str) -> HttpResponse:
    """GET asks for confirmation; POST deletes here and at the API."""
    job = selectors.job_owned_by(user=request.user, uuid=uuid)
    if request.method == "GET":
        return render(request, "conversions/job_delete.html", {"job": job})
    name = job.input_filename or "The conversion"
    if _act(request, lambda: services.job_delete(job=job, by=request.user) or True):
        messages.success(request, f"{name} was deleted, with its converted files.")
        return redirect("conversions:dashboard")
    return redirect(job)


@login_required
@require_GET
def job_zip(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_for_user(user=request.user, uuid=uuid)
    outputs = list(job.files.all())
    if not outputs:
        messages.error(request, "This conversion has no files to download.")
        return redirect(job)
    try:
        archive = zip_of_outputs(outputs)
    except ApiError as error:
        logger.warning("zip of job %s failed: %r", job.uuid, error)
        messages.error(request, "Some files could not be fetched from the conversion service. Try again in a minute.")
        return redirect(job)
    activity.record(actor=request.user, verb=activity.DOWNLOADED, target=job, detail={"files": len(outputs)})
    return FileResponse(archive, as_attachment=True, filename=zip_filename(job))


@login_required
@require_GET
def file_download(request: HttpRequest, uuid: str) -> HttpResponse:
    output = selectors.file_for_user(user=request.user, uuid=uuid)
    if output.file or output.remote_url:
        activity.record(actor=request.user, verb=activity.DOWNLOADED, target=output)
    if output.file:
        return FileResponse(output.file.open("rb"), as_attachment=True, filename=output.filename)
    if output.remote_url:
        # Not copied yet: the API's own signed, expiring link serves it meanwhile.
        return HttpResponseRedirect(output.remote_url)
    messages.error(request, "This file is no longer available. Please convert the original again.")
    return redirect(output.job)


@login_required
@require_GET
def file_thumbnail(request: HttpRequest, uuid: str) -> HttpResponse:
    output = selectors.file_for_user(user=request.user, uuid=uuid)
    if not output.thumbnail:
        return HttpResponse(status=404)
    response = FileResponse(output.thumbnail.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _raw_body(request: HttpRequest, limit: int) -> bytes | None:
    """The request's body, read from the stream, or None when it is longer than `limit` bytes.

    Not request.body: that refuses anything over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), and the
    webhook of a job with a few thousand files is bigger. Reading stops one byte past the limit."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    chunks, size = [], 0
    while chunk := request.read(min(WEBHOOK_READ_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """CloudConvert (or the engine) tells us a job changed. Verify first, then one service.
    A rejected delivery is logged for the admin (one INSERT), never applied."""
    limit = settings.CONVERSIONS_WEBHOOK_MAX_BODY
    body = _raw_body(request, limit)
    if body is None:
        logger.warning("webhook rejected: body over %d bytes", limit)
        services.webhook_reject(
            reason=Rejection.TOO_LARGE, detail=f"larger than {limit} bytes", body=None, size=_declared_size(request)
        )
        return JsonResponse(
            {"error": f"The body is larger than the {filesizeformat(limit)} this webhook accepts."}, status=413
        )
    signature = request.META.get("HTTP_CLOUDCONVERT_SIGNATURE")  # request.headers would copy every header
    if not verify_signature(secret=api_config().webhook_secret, body=body, signature=signature):
        logger.warning("webhook rejected: missing or bad signature")
        detail = "no CloudConvert-Signature header" if not signature else "the signature does not match the body"
        services.webhook_reject(reason=Rejection.BAD_SIGNATURE, detail=detail, body=body, size=len(body))
        return JsonResponse({"error": "invalid signature"}, status=400)
    try:
        event, job_payload = services.webhook_body_parse(body)
        outcome = services.webhook_receive(body=body, event=event, job_payload=job_payload)
    except (MalformedPayload, RecursionError) as error:
        # Nothing was recorded. Any other failure is a 500, and the sender's retry comes back.
        logger.warning("webhook rejected: malformed body: %s", error)
        services.webhook_reject(reason=Rejection.MALFORMED, detail=str(error), body=body, size=len(body))
        return JsonResponse({"error": f"malformed body: {error}"}, status=400)
    logger.info("webhook %s for job %s: %s", event, job_payload.get("id"), outcome)
    return JsonResponse({"result": outcome})


def _declared_size(request: HttpRequest) -> int | None:
    """The Content-Length of a body not read whole (too large): what it claimed, for the log."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or "") or None
    except ValueError:
        return None
