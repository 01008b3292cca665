"""ccweb's URLs plus the reference views the benchmarks measure against, served by the same server
with the same middleware (DJANGO_SETTINGS_MODULE=bench.settings); never part of ccweb itself."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ccweb.urls import urlpatterns as ccweb_urlpatterns

CHUNK = 1024 * 1024


@csrf_exempt
@require_POST
def bare(request: HttpRequest) -> JsonResponse:
    """What any POST costs this server: the body read, a small JSON answer."""
    return JsonResponse({"result": "ok", "bytes": len(request.body)})


@csrf_exempt
@require_POST
def drain(request: HttpRequest) -> JsonResponse:
    """The fastest this server can take in a body: read in large pieces and thrown away."""
    received = 0
    while chunk := request.read(CHUNK):
        received += len(chunk)
    return JsonResponse({"bytes": received})


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/drain/", drain),
    *ccweb_urlpatterns,
]
