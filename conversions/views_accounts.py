"""The account page: what a user manages about their account, each through allauth's own page."""

from allauth.socialaccount.adapter import get_adapter
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversions.accounts import verified_emails


@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "account/overview.html",
        {
            "emails": sorted(verified_emails(request.user)),
            "has_password": request.user.has_usable_password(),
            "providers": get_adapter().list_providers(request),
        },
    )
