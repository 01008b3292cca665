"""The daily quota holds when a user starts many conversions at once (files dropped together)."""

import threading

import pytest
import requests
from django.urls import reverse

from conversions.models import ConversionJob, DailyJobCount

pytestmark = pytest.mark.django_db(transaction=True)
URL = reverse("conversions:convert")
JSON = {"HTTP_ACCEPT": "application/json"}
REFUSAL = "You have reached today's limit of 3 conversions. You can convert more files tomorrow."


def logged_in_session(client, live_server, user) -> requests.Session:
    """A real HTTP client with the user's session and CSRF cookie, as the browser's convert.js has."""
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    page = session.get(live_server.url + URL, timeout=30)
    assert page.status_code == 200
    session.headers.update({"Accept": "application/json", "X-CSRFToken": session.cookies["csrftoken"]})
    return session


def post_at_once(session: requests.Session, url: str, count: int) -> list[requests.Response]:
    """`count` threads post a new conversion at the same moment, as convert.js does for dropped files."""
    barrier = threading.Barrier(count)
    responses: list[requests.Response] = [None] * count  # type: ignore[list-item]

    def post(index: int) -> None:
        barrier.wait()
        data = {"output_format": "jpg", "filename": f"photo-{index}.png"}
        responses[index] = session.post(url, data=data, timeout=60)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return responses


@pytest.mark.parametrize("attempts", [5, 8])
def test_parallel_starts_never_pass_the_quota(client, live_server, live_engine, alice, settings, attempts):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 3
    session = logged_in_session(client, live_server, alice)
    responses = post_at_once(session, live_server.url + URL, attempts)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [429] * (attempts - 3)
    assert {r.json()["error"] for r in responses if r.status_code == 429} == {REFUSAL}
    assert ConversionJob.objects.filter(user=alice).count() == 3
    assert DailyJobCount.objects.get(user=alice).started == 3
    assert "You have started 3 of your 3 conversions today." in session.get(live_server.url + URL).text


def test_a_job_the_api_refuses_to_create_does_not_use_the_quota(client, alice, live_engine, settings):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 1
    client.force_login(alice)
    refused = client.post(URL, {"output_format": "png", "filename": "a.pdf", "option_pixel_density": "5000"}, **JSON)
    assert refused.status_code == 400  # the settings were refused: the form says why
    assert not ConversionJob.objects.exists()
    assert "You have started 0 of your 1 conversions today." in client.get(URL).content.decode()
    assert client.post(URL, {"output_format": "jpg", "filename": "a.png"}, **JSON).status_code == 201


def test_deleting_a_job_does_not_give_its_start_back(client, alice, live_engine, settings):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 1
    client.force_login(alice)
    job = client.post(URL, {"output_format": "jpg", "filename": "a.png"}, **JSON).json()["job"]
    assert client.post(reverse("conversions:job_delete", args=[job])).status_code == 302
    assert not ConversionJob.objects.exists()
    assert client.post(URL, {"output_format": "jpg", "filename": "b.png"}, **JSON).status_code == 429


def test_each_user_has_their_own_quota(client, alice, bob, live_engine, settings):
    settings.CONVERSIONS_DAILY_JOB_QUOTA = 1
    for user in (alice, bob):
        client.force_login(user)
        assert client.post(URL, {"output_format": "jpg", "filename": "a.png"}, **JSON).status_code == 201
    assert client.post(URL, {"output_format": "jpg", "filename": "b.png"}, **JSON).status_code == 429
