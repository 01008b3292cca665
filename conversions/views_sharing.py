"""Share links: made and revoked from the job page; the public page and download need no login.
Links come through sharing.share_link_managed (404 for anyone who may not revoke it) and
sharing.share_link_public (404 for a link unknown, revoked, expired or used up, alike)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversions import selectors, sharing
from conversions.forms import ShareLinkForm, ShareLinkPasswordForm
from conversions.models import ShareLink


def _private(response: HttpResponse) -> HttpResponse:
    """A public link's answers stay out of caches, search engines and other sites' Referer."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
@require_POST
def share_link_create(request: HttpRequest, uuid: str) -> HttpResponse:
    job = selectors.job_owned_by(user=request.user, uuid=uuid)
    form = ShareLinkForm(request.POST, outputs=job.files.all())
    if form.is_valid():
        try:
            link = sharing.share_link_create(
                job=job,
                user=request.user,
                output=form.cleaned_data["output"],
                expires_at=form.expires_at(),
                password=form.cleaned_data["password"],
                max_downloads=form.cleaned_data["max_downloads"],
            )
        except sharing.ShareLinkError as error:
            form.add_error(None, str(error))
        else:
            url = request.build_absolute_uri(link.get_absolute_url())
            messages.success(request, f"Anyone with this link can download without an account: {url}")
            return redirect(job.get_absolute_url() + "#share-links")
    return render(request, "conversions/share_link_new.html", {"job": job, "form": form}, status=400)


@login_required
@require_POST
def share_link_revoke(request: HttpRequest, uuid: str) -> HttpResponse:
    link = sharing.share_link_managed(user=request.user, uuid=uuid)
    sharing.share_link_revoke(link=link, by=request.user)
    messages.success(request, "The link was revoked: it no longer opens anything.")
    return redirect(link.job.get_absolute_url() + "#share-links")


def _public_page(request: HttpRequest, link: ShareLink, form: ShareLinkPasswordForm | None = None) -> HttpResponse:
    outputs = sharing.share_link_outputs(link)
    context = {
        "link": link,
        "name": sharing.share_link_name(link, outputs),
        "size": sharing.share_link_size(outputs),
        "unlocked": sharing.share_link_is_unlocked(request, link),
        "form": form or ShareLinkPasswordForm(),
    }
    status = 400 if form is not None and form.errors else 200
    return _private(render(request, "conversions/share_link_public.html", context, status=status))


@require_http_methods(["GET", "POST"])
def share_link_public(request: HttpRequest, token: str) -> HttpResponse:
    """The link's page: the name, the size, a download button (behind a password when set)."""
    link = sharing.share_link_public(token)
    if request.method == "GET":
        return _public_page(request, link)
    form = ShareLinkPasswordForm(request.POST)
    if form.is_valid():
        try:
            sharing.share_link_unlock(request, link=link, password=form.cleaned_data["password"])
        except sharing.ShareLinkError as error:
            form.add_error("password", str(error))
        else:
            return _private(redirect(link.get_absolute_url()))
    return _public_page(request, link, form)


@require_GET
def share_link_download(request: HttpRequest, token: str) -> HttpResponse:
    link = sharing.share_link_public(token)
    if not sharing.share_link_is_unlocked(request, link):
        return _private(redirect(link.get_absolute_url()))
    try:
        content, filename = sharing.share_link_download(link=link)
    except sharing.ShareLinkError as error:
        messages.error(request, str(error))
        return _private(redirect(link.get_absolute_url()))
    return _private(FileResponse(content, as_attachment=True, filename=filename))
