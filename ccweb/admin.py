"""ccweb's admin site: Django's, except that it shows its pages only to whom may use them.

Logged in without staff rights, or staff without the permission a page needs, the admin answers
404, as the app does for an object a user may not see: Django's 403, and the admin's login form
offered to someone already logged in, would tell them the page exists. Anonymous visitors still get
the admin's login redirect. Installed by ccweb.apps.AdminConfig, so every admin.register (ccweb's,
allauth's, django_tasks') lands here."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.contrib.contenttypes.views import shortcut
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

NO_SUCH_PAGE = "The requested admin page does not exist."


class AdminSite(admin.AdminSite):
    def admin_view(self, view: Callable, cacheable: bool = False) -> Callable:
        django_checked = super().admin_view(view, cacheable)
        # A model's pages (ModelAdmin.get_urls, and the console's in conversions/admin.py) are its
        # ModelAdmin's bound methods.
        model_admin = getattr(view, "__self__", None)
        if not isinstance(model_admin, admin.ModelAdmin):
            model_admin = None

        @wraps(django_checked)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not self.has_permission(request):
                if request.user.is_authenticated:
                    raise Http404(NO_SUCH_PAGE)
                return django_checked(request, *args, **kwargs)  # the admin's login redirect
            # Without any permission on the model, an unknown id would otherwise still be told
            # apart from a known one (the history page checks the object's existence first).
            if model_admin is not None and not self.may_see(request, model_admin):
                raise Http404(NO_SUCH_PAGE)
            try:
                return django_checked(request, *args, **kwargs)
            except PermissionDenied as refused:
                raise Http404(NO_SUCH_PAGE) from refused

        return inner

    def may_see(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> bool:
        """Whether the model is on the visitor's admin index (Django's own test for it)."""
        return model_admin.has_module_permission(request) and any(model_admin.get_model_perms(request).values())

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            path("r/<path:content_type_id>/<path:object_id>/", self.admin_view(self.view_on_site), name="view_on_site")
            if getattr(pattern, "name", None) == "view_on_site"
            else pattern
            for pattern in super().get_urls()
        ]

    def view_on_site(self, request: HttpRequest, content_type_id: str, object_id: str) -> HttpResponse:
        """Django's "View on site" redirect, only for objects of a model the visitor may view here:
        Django's own redirects any staff member to any object's page, and so tells them it exists."""
        try:
            model = ContentType.objects.get_for_id(int(content_type_id)).model_class()
        except (ContentType.DoesNotExist, ValueError) as unknown:
            raise Http404(NO_SUCH_PAGE) from unknown
        model_admin = self._registry.get(model)
        if model_admin is None or not model_admin.has_view_or_change_permission(request):
            raise Http404(NO_SUCH_PAGE)
        return shortcut(request, content_type_id, object_id)
