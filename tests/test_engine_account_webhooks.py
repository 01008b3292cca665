"""Account webhooks (POST /v2/webhooks): each signs with its own secret; 410 disables it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from engine.models import Webhook
from tests.conftest import wait_for
from tests.test_engine_helpers import CONVERT_TO_JPG, Api, Receiver, png_bytes, receiver, task_named, upload  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_webhooks_are_created_listed_and_deleted(live_engine: str) -> None:
    api = Api(live_engine)
    response = api.post("v2/webhooks", {"url": "https://ccweb.example/hook", "events": ["job.finished"]})
    assert response.status_code == 201
    webhook = response.json()["data"]
    assert len(webhook["signing_secret"]) >= 32
    assert (webhook["disabled"], webhook["failing"]) == (False, False)

    listed = api.get("v2/users/me/webhooks").json()
    assert [w["id"] for w in listed["data"]] == [webhook["id"]]
    assert listed["data"][0]["signing_secret"] == webhook["signing_secret"]
    assert api.get("v2/users/me/webhooks", params={"filter[url]": "https://other"}).json()["data"] == []

    assert api.delete(f"v2/webhooks/{webhook['id']}").status_code == 204
    assert api.delete(f"v2/webhooks/{webhook['id']}").status_code == 404
    invalid = api.post("v2/webhooks", {"url": "nope", "events": ["job.exploded"]})
    assert set(invalid.json()["errors"]) == {"url", "events"}


def test_an_account_webhook_gets_created_and_finished_signed_with_its_secret(
    live_engine: str, worker, receiver: Receiver
) -> None:
    api = Api(live_engine)
    webhook = api.post(
        "v2/webhooks", {"url": receiver.url, "events": ["job.created", "job.finished"]}
    ).json()["data"]
    job = api.create_job(CONVERT_TO_JPG)
    upload(task_named(job, "upload"), png_bytes(), "photo.png")

    wait_for(lambda: len(receiver.deliveries) == 2)

    assert [d.json["event"] for d in receiver.deliveries] == ["job.created", "job.finished"]
    for delivery in receiver.deliveries:
        expected = hmac.new(webhook["signing_secret"].encode(), delivery.body, hashlib.sha256).hexdigest()
        assert delivery.headers["CloudConvert-Signature"] == expected
        assert delivery.json["job"]["id"] == job["id"]


def test_a_410_disables_an_account_webhook(live_engine: str, worker, receiver: Receiver) -> None:
    receiver.statuses = [410]
    api = Api(live_engine)
    webhook = api.post("v2/webhooks", {"url": receiver.url, "events": ["job.created"]}).json()["data"]

    api.create_job(CONVERT_TO_JPG)

    wait_for(lambda: Webhook.objects.get(pk=webhook["id"]).disabled)
    api.create_job(CONVERT_TO_JPG)
    listed = api.get("v2/users/me/webhooks").json()["data"]
    assert listed[0]["disabled"] is True
    assert receiver.attempts == 1
