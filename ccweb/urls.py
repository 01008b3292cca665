from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Log in, sign up, e-mail verification, password reset, OpenID Connect (django-allauth).
    path("accounts/", include("allauth.urls")),
    path("", include("ops.urls")),
    path("", include("conversions.urls")),
]

if settings.ENGINE_EMBEDDED:
    urlpatterns.append(path("engine/", include("engine.urls")))
