"""ccweb's own calls to its engine go to ENGINE_INTERNAL_URL (ccweb_serve's loopback engine server);
what the engine hands to browsers (upload forms, downloads) and what the page's policy allows stay
at ENGINE_URL, the public address."""

import pytest
from django.urls import reverse

from conversions.models import ConversionJob

pytestmark = pytest.mark.django_db(transaction=True)


def test_ccweb_calls_its_engine_at_the_internal_url_and_hands_out_public_links(
    client, alice, live_engine, live_server, settings
) -> None:
    # One live server under two names: http://localhost:port is public, http://127.0.0.1:port internal.
    assert "//localhost:" in live_server.url
    internal = live_server.url.replace("//localhost:", "//127.0.0.1:") + "/engine"
    settings.ENGINE_INTERNAL_URL = internal
    client.force_login(alice)

    response = client.post(reverse("conversions:convert"), {"output_format": "jpg", "filename": "a.png"},
                           HTTP_ACCEPT="application/json")

    assert response.status_code == 201, response.content
    assert response.json()["upload"]["url"].startswith(f"{live_engine}/storage/upload/")
    job = ConversionJob.objects.get()
    assert job.payload["links"]["self"].startswith(f"{live_engine}/v2/jobs/")
    policy = client.get(reverse("conversions:convert"))["Content-Security-Policy"]
    connect_src = next(part for part in policy.split(";") if part.strip().startswith("connect-src"))
    assert live_server.url in connect_src, "browsers post files to the public address"
    assert "127.0.0.1" not in connect_src, "the internal address is no browser's business"


def test_ccweb_does_not_call_the_public_address_when_an_internal_one_is_set(
    client, alice, live_engine, settings, caplog
) -> None:
    settings.ENGINE_INTERNAL_URL = "http://127.0.0.1:9/engine"  # nothing listens there
    settings.CLOUDCONVERT_MAX_RETRIES = 0
    client.force_login(alice)

    response = client.post(reverse("conversions:convert"), {"output_format": "jpg", "filename": "a.png"},
                           HTTP_ACCEPT="application/json")

    assert response.status_code == 400  # without the engine's catalogue no format can be chosen
    assert "GET http://127.0.0.1:9/engine/v2/convert/formats failed" in caplog.text
    assert not ConversionJob.objects.exists()
