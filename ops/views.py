"""Probes and metrics for whoever runs ccweb: a load balancer, an orchestrator, Prometheus."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder

from ops import metrics, readiness


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers. Nothing else is asked (no database): restarting a process cannot fix a
    database that is down, so liveness must not depend on it."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks = readiness.run_checks()
    failed = [check.detail for check in checks if not check.ok]
    body: dict[str, object] = {"ready": not failed, "checks": [check.as_dict() for check in checks]}
    if failed:
        body["error"] = "Not ready. " + " ".join(failed)
    return JsonResponse(body, status=503 if failed else 200)


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return not settings.PRODUCTION
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    if not _may_read_metrics(request):
        if not settings.METRICS_TOKEN:
            message = "Metrics are off in production until METRICS_TOKEN is set; then send it as a Bearer token.\n"
            return HttpResponse(message, status=403, content_type="text/plain")
        response = HttpResponse("Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'.\n",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(metrics.registry()), content_type=content_type)
