import json
import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from conversions import selectors, services
from conversions.cloudconvert.client import api_config
from conversions.cloudconvert.webhooks import verify_signature
from conversions.forms import ConvertForm

logger = logging.getLogger(__name__)

JOBS_PER_PAGE = 25


def _dashboard_page(request: HttpRequest):
    paginator = Paginator(selectors.jobs_visible_to(request.user), JOBS_PER_PAGE)
    return paginator.get_page(request.GET.get("page"))


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "conversions/dashboard.html", {"page": _dashboard_page(request)})


@login_required
@require_GET
def dashboard_rows(request: HttpRequest) -> HttpResponse:
    """The dashboard's table body, polled by live.js while a job runs."""
    return render(request, "conversions/_job_rows.html", {"page": _dashboard_page(request)})


@login_required
def convert(request: HttpRequest) -> HttpResponse:
    """Step one: the output format and options. The job is created at the API here; the file
    then goes from the browser straight to the job's upload URL (XHR, or the upload page)."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    choices = selectors.output_format_choices()
    form = ConvertForm(request.POST or None, output_choices=choices)
    if not choices:
        messages.error(
            request, "The conversion service cannot be reached right now, so no format can be offered. Try again in a minute."
        )
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_start(
                user=request.user,
                output_format=form.cleaned_data["output_format"],
                options=form.options(),
                input_filename=form.cleaned_data["filename"],
                redirect_after_upload=not wants_json,
            )
        except services.ConversionError as error:
            if wants_json:
                return JsonResponse({"error": str(error)}, status=502)
            messages.error(request, str(error))
        else:
            if wants_json:
                return JsonResponse({"job": str(job.uuid), "job_url": job.get_absolute_url(), "upload": job.upload_form}, status=201)
            return redirect("conversions:job_upload", uuid=job.uuid)
    elif request.method == "POST" and wants_json:
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    return render(request, "conversions/convert.html", {"form": form})


@login_required
@require_GET
def job_upload(request: HttpRequest, uuid: str) -> HttpResponse:
    """Step two without JavaScript: a plain form posting the file to the API's upload URL."""
    job = selectors.job_for_user(user=request.user, uuid=uuid)
    if job.upload_form is None:
        return redirect(job)
    return render(request, "conversions/upload.html", {"job": job, "form": job.upload_form})


@login_required
@require_GET
def job_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_for_user(user=request.user, uuid=uuid)
    return render(request, "conversions/job_detail.html", {"job": job})


@login_required
@require_GET
def job_status(request: HttpRequest, uuid: str) -> HttpResponse:
    """The job page's live part, polled by live.js while the job runs."""
    job = selectors.job_for_user(user=request.user, uuid=uuid)
    return render(request, "conversions/_job_status.html", {"job": job})


@login_required
@require_GET
def file_download(request: HttpRequest, uuid: str) -> HttpResponse:
    output = selectors.file_for_user(user=request.user, uuid=uuid)
    if output.file:
        return FileResponse(output.file.open("rb"), as_attachment=True, filename=output.filename)
    if output.remote_url:
        # Not copied yet: the API's own signed, expiring link serves it meanwhile.
        return HttpResponseRedirect(output.remote_url)
    messages.error(request, "This file is no longer available. Please convert the original again.")
    return redirect(output.job)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    """CloudConvert (or the engine) tells us a job changed. Verify first, then one service."""
    signature = request.headers.get("CloudConvert-Signature")
    if not verify_signature(secret=api_config().webhook_secret, body=request.body, signature=signature):
        logger.warning("webhook rejected: missing or bad signature")
        return JsonResponse({"error": "invalid signature"}, status=400)
    try:
        data = json.loads(request.body)
        event, job_payload = str(data["event"]), data["job"]
        if not isinstance(job_payload, dict):
            raise TypeError("job is not an object")
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("webhook rejected: malformed body: %r", error)
        return JsonResponse({"error": "malformed body"}, status=400)
    outcome = services.webhook_receive(body=request.body, event=event, job_payload=job_payload)
    logger.info("webhook %s for job %s: %s", event, job_payload.get("id"), outcome)
    return JsonResponse({"result": outcome})
