"""Webhooks out: `{"event", "job"}` POSTed compact and signed with `CloudConvert-Signature`.

A job's own `webhook_url` gets job.finished / job.failed signed with ENGINE_WEBHOOK_SECRET; account
webhooks (POST /v2/webhooks) get the events they subscribed to, signed with their own secret.
Network errors and 5xx are retried a few times with growing delays; 410 Gone means "stop".
"""

from __future__ import annotations

import hashlib
import hmac
import http.cookiejar
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.models import Job, Webhook
from engine.serializers import dumps, job_to_api

logger = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS = (10, 60, 300)  # seconds before the 1st, 2nd and 3rd retry
DEFAULT_TIMEOUT = 10.0
JOB_URL_EVENTS = frozenset({"job.finished", "job.failed"})


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


_inline = threading.local()
_sessions = threading.local()


@contextmanager
def first_attempt_inline() -> Iterator[None]:
    """Inside the block, a job's own webhook (its webhook_url) announced by this thread is POSTed by it
    right after the commit that ended the job, instead of being queued; a failed attempt queues its
    retries as usual. The runner delivers this way: in a worker, the delivery is the next thing the
    job needs, and queueing it cost a row, a claim and a bookkeeping write before the same POST.
    Account webhooks stay queued: their receivers are many and not the job's business."""
    previous = getattr(_inline, "active", False)
    _inline.active = True
    try:
        yield
    finally:
        _inline.active = previous


def announce_job(*, job: Job, event: str) -> None:
    """Send (or queue) the deliveries of one job event, with the job as it is now (a snapshot).
    Called after the commit that changed the job."""
    from engine.tasks import deliver_webhook

    targets: list[tuple[str, str | None]] = []
    if job.webhook_url and event in JOB_URL_EVENTS:
        targets.append((job.webhook_url, None))
    for webhook in Webhook.objects.filter(disabled=False):
        if event in webhook.events:
            targets.append((webhook.url, str(webhook.pk)))
    if not targets:
        return
    body = dumps({"event": event, "job": job_to_api(job)})
    for url, webhook_id in targets:
        if webhook_id is None and getattr(_inline, "active", False):
            transaction.on_commit(lambda url=url: deliver(url=url, body=body, webhook_id=None, attempt=0), robust=True)
        else:
            transaction.on_commit(
                lambda url=url, webhook_id=webhook_id: deliver_webhook.enqueue(url, body, webhook_id, 0)
            )


def _session() -> requests.Session:
    """This thread's HTTP session: deliveries to the same receiver reuse its connection (a worker
    sends a job's webhook after every job) instead of opening one each time. It keeps no cookies:
    one receiver's must never reach another's URL on the same host."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def _secret(webhook_id: str | None) -> str | None:
    if webhook_id is None:
        return str(getattr(settings, "ENGINE_WEBHOOK_SECRET", ""))
    webhook = Webhook.objects.filter(pk=webhook_id, disabled=False).first()
    return webhook.signing_secret if webhook else None


def deliver(*, url: str, body: str, webhook_id: str | None, attempt: int) -> None:
    from engine.tasks import deliver_webhook

    secret = _secret(webhook_id)
    if secret is None:
        return  # the account webhook was deleted or disabled since the event
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "CloudConvert-Signature": sign(secret, raw),
        "User-Agent": "ccweb-engine",
    }
    timeout = float(getattr(settings, "ENGINE_WEBHOOK_TIMEOUT", DEFAULT_TIMEOUT))
    try:
        response = _session().post(url, data=raw, headers=headers, timeout=timeout, allow_redirects=False)
        status: int | None = response.status_code
    except requests.RequestException as error:
        logger.warning("Webhook to %s failed (attempt %d): %s", url, attempt + 1, error)
        status = None

    if status is not None and status < 300:
        if webhook_id:
            Webhook.objects.filter(pk=webhook_id, failing=True).update(failing=False)
        return
    if status == 410:
        logger.info("Webhook %s answered 410 Gone; not sending to it again.", url)
        if webhook_id:
            Webhook.objects.filter(pk=webhook_id).update(disabled=True, updated_at=timezone.now())
        return
    if status is not None and status < 500:
        logger.warning("Webhook to %s refused with HTTP %d; not retrying.", url, status)
        return
    delays = list(getattr(settings, "ENGINE_WEBHOOK_RETRY_DELAYS", DEFAULT_RETRY_DELAYS))
    if attempt < len(delays):
        run_after = timezone.now() + timedelta(seconds=float(delays[attempt]))
        deliver_webhook.using(run_after=run_after).enqueue(url, body, webhook_id, attempt + 1)
        return
    logger.error("Webhook to %s failed after %d attempts; giving up.", url, attempt + 1)
    if webhook_id:
        Webhook.objects.filter(pk=webhook_id).update(failing=True, updated_at=timezone.now())
