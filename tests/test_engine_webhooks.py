"""Webhooks sent by the engine: signed job events, retried while the receiver fails."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from django.conf import settings

from tests.conftest import wait_for
from tests.test_engine_helpers import CONVERT_TO_JPG, Api, Receiver, png_bytes, receiver, task_named, upload  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_finished_job_is_posted_to_its_webhook_url_with_a_valid_signature(
    live_engine: str, worker, receiver: Receiver
) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG, webhook_url=receiver.url, tag="order-7")
    upload(task_named(job, "upload"), png_bytes(), "photo.png")

    wait_for(lambda: receiver.deliveries)

    (delivery,) = receiver.deliveries
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["CloudConvert-Signature"] == signature(
        settings.ENGINE_WEBHOOK_SECRET, delivery.body
    )
    assert delivery.body.startswith(b'{"event":"job.finished","job":{')
    payload = delivery.json
    assert payload["job"]["id"] == job["id"]
    assert payload["job"]["tag"] == "order-7"
    assert payload["job"]["status"] == "finished"
    assert task_named(payload["job"], "export")["result"]["files"][0]["url"]


def test_a_failed_job_sends_job_failed(live_engine: str, worker, receiver: Receiver) -> None:
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG, webhook_url=receiver.url)
    upload(task_named(job, "upload"), b"not a png", "broken.png")

    wait_for(lambda: receiver.deliveries)

    assert receiver.deliveries[0].json["event"] == "job.failed"
    assert receiver.deliveries[0].json["job"]["status"] == "error"


def test_a_webhook_is_retried_after_a_500_then_delivered(
    live_engine: str, worker, receiver: Receiver, settings
) -> None:
    settings.ENGINE_WEBHOOK_RETRY_DELAYS = [0.2, 0.2, 0.2]
    receiver.statuses = [500, 503]
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG, webhook_url=receiver.url)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")

    wait_for(lambda: receiver.deliveries)

    assert receiver.attempts == 3
    assert len(receiver.deliveries) == 1
    delivery = receiver.deliveries[0]
    assert delivery.headers["CloudConvert-Signature"] == signature(
        settings.ENGINE_WEBHOOK_SECRET, delivery.body
    )


def test_a_410_stops_the_retries(live_engine: str, worker, receiver: Receiver, settings) -> None:
    settings.ENGINE_WEBHOOK_RETRY_DELAYS = [0.1, 0.1, 0.1]
    receiver.statuses = [410]
    api = Api(live_engine)
    job = api.create_job(CONVERT_TO_JPG, webhook_url=receiver.url)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")
    api.wait_job(job["id"])

    wait_for(lambda: receiver.attempts == 1)
    time.sleep(0.8)  # longer than every retry delay
    assert receiver.attempts == 1
    assert receiver.deliveries == []
