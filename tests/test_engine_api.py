"""The engine's REST API shapes: envelopes, status codes, auth and validation errors."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client

from engine.models import Job, Task
from tests.test_engine_helpers import CONVERT_TO_JPG

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(client: Client) -> Client:
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {settings.ENGINE_API_KEY}"
    return client


def post(api: Client, path: str, body: dict) -> object:
    return api.post(f"/engine/{path}", data=json.dumps(body), content_type="application/json")


def test_it_creates_a_job_with_201_and_a_compact_data_envelope(api: Client) -> None:
    response = post(api, "v2/jobs", {"tasks": CONVERT_TO_JPG, "tag": "order-42", "webhook_url": None})

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    assert response.content.startswith(b'{"data":{"id":"')
    assert response.content.endswith(b"}}")
    job = response.json()["data"]
    assert job["tag"] == "order-42"
    assert job["status"] == "waiting"
    assert job["links"]["self"] == f"{settings.ENGINE_URL}/v2/jobs/{job['id']}"
    assert job["created_at"].endswith("+00:00")
    upload, convert, export = job["tasks"]
    assert (upload["name"], upload["operation"], upload["status"]) == ("upload", "import/upload", "waiting")
    assert upload["message"] == "Waiting for file upload"
    assert upload["percent"] == 100
    assert upload["result"]["form"]["url"] == f"{settings.ENGINE_URL}/storage/upload/{upload['id']}"
    assert all(isinstance(v, str) for v in upload["result"]["form"]["parameters"].values())
    assert convert["depends_on_task_ids"] == [upload["id"]]
    assert export["depends_on_task_ids"] == [convert["id"]]
    assert upload["depends_on_task_ids"] == []
    assert export["job_id"] == job["id"]


def test_it_ignores_extra_keys_and_null_tag_and_webhook(api: Client) -> None:
    tasks = {"upload": {"operation": "import/upload", "name": "upload", "colour": "blue"}}
    response = post(api, "v2/jobs", {"tasks": tasks, "tag": None, "webhook_url": None, "extra": 1})
    assert response.status_code == 201
    assert response.json()["data"]["tag"] is None


def test_it_answers_401_without_or_with_a_wrong_key(client: Client) -> None:
    for headers in (
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong"},
        {"HTTP_AUTHORIZATION": settings.ENGINE_API_KEY},
    ):
        response = client.get("/engine/v2/jobs", **headers)
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthenticated.", "code": "UNAUTHENTICATED"}
        assert response["Content-Type"] == "application/json"


def test_it_rejects_empty_tasks_with_422_invalid_data(api: Client) -> None:
    response = post(api, "v2/jobs", {"tasks": {}})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "INVALID_DATA"
    assert body["message"] == "The given data was invalid."
    assert "tasks" in body["errors"]
    assert not Job.objects.exists()


def test_it_names_each_invalid_field_of_each_task(api: Client) -> None:
    tasks = {
        "upload": {"operation": "import/upload"},
        "convert-1": {"operation": "convert", "input": "upload"},
        "bad name!": {"operation": "import/upload"},
        "teleport": {"operation": "teleport"},
        "export": {"operation": "export/url", "input": "missing"},
        "resize": {
            "operation": "convert",
            "input": "upload",
            "input_format": "png",
            "output_format": "jpg",
            "quality": 500,
        },
        "impossible": {
            "operation": "convert",
            "input": "upload",
            "input_format": "png",
            "output_format": "docx",
        },
    }
    errors = post(api, "v2/jobs", {"tasks": tasks}).json()["errors"]
    assert set(errors) == {
        "tasks.convert-1.output_format",
        "tasks.bad name!",
        "tasks.teleport.operation",
        "tasks.export.input",
        "tasks.resize.quality",
        "tasks.impossible.output_format",
    }
    assert all(isinstance(messages, list) and messages for messages in errors.values())
    assert not Task.objects.exists()


def test_it_refuses_a_cycle_of_inputs(api: Client) -> None:
    tasks = {
        "a": {"operation": "convert", "input": "b", "output_format": "png"},
        "b": {"operation": "convert", "input": "a", "output_format": "png"},
    }
    response = post(api, "v2/jobs", {"tasks": tasks})
    assert response.status_code == 422


def test_it_answers_json_404_for_unknown_ids_and_routes(api: Client) -> None:
    for path in (
        "v2/jobs/00000000-0000-0000-0000-000000000000",
        "v2/tasks/not-a-uuid",
        "v2/nothing/here",
        "x",
    ):
        response = api.get(f"/engine/{path}")
        assert response.status_code == 404, path
        assert response.json()["code"] == "NOT_FOUND"
        assert response["Content-Type"] == "application/json"


def test_it_answers_json_405_for_a_wrong_method(api: Client) -> None:
    response = api.put("/engine/v2/jobs")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_it_shows_lists_and_filters_jobs_with_a_simple_paginator(api: Client) -> None:
    for tag in ("a", "b", "a"):
        post(api, "v2/jobs", {"tasks": {"upload": {"operation": "import/upload"}}, "tag": tag})

    page = api.get("/engine/v2/jobs", {"filter[tag]": "a", "per_page": 1}).json()
    assert len(page["data"]) == 1
    assert "tasks" not in page["data"][0]
    assert page["links"]["last"] is None and page["links"]["prev"] is None
    assert page["links"]["next"].startswith(f"{settings.ENGINE_URL}/v2/jobs?")
    assert page["meta"] == {
        "current_page": 1,
        "from": 1,
        "path": f"{settings.ENGINE_URL}/v2/jobs",
        "per_page": 1,
        "to": 1,
    }
    second = api.get("/engine/v2/jobs", {"filter[tag]": "a", "per_page": 1, "page": 2}).json()
    assert second["links"]["next"] is None
    assert second["data"][0]["tag"] == "a"

    with_tasks = api.get("/engine/v2/jobs", {"include": "tasks", "filter[status]": "waiting"}).json()
    assert len(with_tasks["data"]) == 3
    assert with_tasks["data"][0]["tasks"][0]["operation"] == "import/upload"
    assert api.get("/engine/v2/jobs", {"filter[status]": "finished"}).json()["data"] == []

    job_id = with_tasks["data"][0]["id"]
    shown = api.get(f"/engine/v2/jobs/{job_id}")
    assert shown.status_code == 200
    assert shown.json()["data"]["tasks"][0]["job_id"] == job_id


def test_it_shows_a_task_with_payload_on_request(api: Client) -> None:
    job = post(api, "v2/jobs", {"tasks": CONVERT_TO_JPG}).json()["data"]
    convert = job["tasks"][1]
    shown = api.get(f"/engine/v2/tasks/{convert['id']}").json()["data"]
    assert "payload" not in shown
    shown = api.get(f"/engine/v2/tasks/{convert['id']}", {"include": "payload,depends_on_tasks"}).json()[
        "data"
    ]
    assert shown["payload"]["output_format"] == "jpg"
    assert shown["depends_on_tasks"][0]["id"] == job["tasks"][0]["id"]


def test_it_cancels_a_waiting_task_and_fails_its_job(api: Client) -> None:
    job = post(api, "v2/jobs", {"tasks": CONVERT_TO_JPG}).json()["data"]
    upload = job["tasks"][0]

    response = api.post(f"/engine/v2/tasks/{upload['id']}/cancel", data="{}", content_type="application/json")
    assert response.status_code == 200
    task = response.json()["data"]
    assert (task["id"], task["status"], task["code"]) == (upload["id"], "error", "CANCELLED")

    job = api.get(f"/engine/v2/jobs/{job['id']}").json()["data"]
    assert job["status"] == "error"
    assert [t["code"] for t in job["tasks"]] == ["CANCELLED", "INPUT_TASK_FAILED", "INPUT_TASK_FAILED"]
    assert job["tasks"][2]["message"] == "Input task has failed"

    again = api.post(f"/engine/v2/tasks/{upload['id']}/cancel")
    assert again.status_code == 422
    assert again.json()["errors"]["status"]


def test_it_deletes_a_job_with_204(api: Client) -> None:
    job = post(api, "v2/jobs", {"tasks": CONVERT_TO_JPG}).json()["data"]
    response = api.delete(f"/engine/v2/jobs/{job['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/engine/v2/jobs/{job['id']}").status_code == 404


def test_it_describes_the_single_local_account(api: Client) -> None:
    me = api.get("/engine/v2/users/me").json()["data"]
    assert me["id"] == 1
    assert isinstance(me["username"], str) and isinstance(me["email"], str)
    assert "credits" not in me  # unknown, and .NET cannot take a null number
    assert me["links"]["self"] == f"{settings.ENGINE_URL}/v2/users/1"


def test_it_lists_formats_without_a_key_and_filters_them(client: Client) -> None:
    response = client.get("/engine/v2/convert/formats", {"filter[input_format]": "pdf", "include": "options"})
    assert response.status_code == 200
    formats = response.json()["data"]
    assert {f["output_format"] for f in formats} >= {"png", "jpg"}
    assert all(f["input_format"] == "pdf" and f["operation"] == "convert" for f in formats)
    png = next(f for f in formats if f["output_format"] == "png")
    assert {o["name"] for o in png["options"]} >= {"pages", "pixel_density"}

    only_png = client.get("/engine/v2/convert/formats", {"filter[output_format]": "png"}).json()["data"]
    assert only_png and all(f["output_format"] == "png" and "options" not in f for f in only_png)


def test_an_unexpected_error_is_a_json_500_without_details(api: Client, monkeypatch, caplog) -> None:
    def explode(**kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr("engine.services.job_create", explode)

    response = post(api, "v2/jobs", {"tasks": CONVERT_TO_JPG})

    assert response.status_code == 500
    assert response.json()["code"] == "INTERNAL_ERROR"
    assert "fire" not in response.content.decode()
    assert "database on fire" in caplog.text


def test_a_body_that_is_not_a_json_object_is_invalid_data(api: Client) -> None:
    response = api.post("/engine/v2/jobs", data="[1, 2", content_type="application/json")
    assert response.status_code == 422
    assert response.json()["errors"]["body"]
