"""import/url and capture-website connect to the address they checked: a name that answers a public
address to the check and a local one to the next lookup (DNS rebinding) never reaches the local
machine. And which addresses count as local: IPv6 forms that lead to an IPv4 address (NAT64,
IPv4-compatible, IPv4-mapped, 6to4, Teredo) are judged by where they lead.

Figures for README's RELIABILITY section: 12 inside addresses refused (7 of them let through
before: NAT64 ×3, IPv4-compatible ×2, 6to4 ×2), 4 public forms still fetched; capture-website
reached the rebound local server before, not any more.
"""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine import fetch
from engine.converters import ConversionFailed, web
from tests.test_engine_helpers import Api

PUBLIC = "93.184.215.14"  # a public address: the check accepts it (nothing answers there from here)


@pytest.fixture
def local_site():
    """A web server on this machine, recording the Host header of every request it gets."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers["Host"])
            body = b"secret from localhost"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_a_name_rebound_to_localhost_after_the_check_is_not_followed(local_site, monkeypatch, settings, tmp_path: Path):
    port, seen = local_site
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    settings.ENGINE_IMPORT_TIMEOUT = 2
    real_getaddrinfo = socket.getaddrinfo
    answers = iter([PUBLIC])

    def rebinding(host, *args, **kwargs):
        if host != "files.rebind.test":
            return real_getaddrinfo(host, *args, **kwargs)
        address = next(answers, "127.0.0.1")  # public for the check, local for anyone asking again
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)

    with pytest.raises(ConversionFailed) as failure:
        fetch.fetch_url(f"http://files.rebind.test:{port}/report.pdf", tmp_path / "download", headers={})

    assert failure.value.code == "IMPORT_FAILED"
    assert seen == []  # the local server was never reached
    assert not (tmp_path / "download").exists() or (tmp_path / "download").read_bytes() == b""


def test_the_checked_address_is_used_with_the_urls_own_host_name(local_site, monkeypatch, settings, tmp_path: Path):
    port, seen = local_site
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    # The check vouches for 127.0.0.1; the name itself resolves nowhere (.invalid), so only a
    # connection to the checked address can fetch the file.
    monkeypatch.setattr(fetch, "check_host", lambda url: "127.0.0.1")

    name = fetch.fetch_url(f"http://files.example.invalid:{port}/report.txt", tmp_path / "download", headers={})

    assert name == "report.txt"
    assert (tmp_path / "download").read_bytes() == b"secret from localhost"
    assert seen == [f"files.example.invalid:{port}"]


# --- Which addresses count as private --------------------------------------------------------

REFUSED = {
    "64:ff9b::7f00:1": "NAT64 of 127.0.0.1",
    "64:ff9b::5db8:d70e": "NAT64 of a public address (the gateway itself may sit on the LAN)",
    "64:ff9b:1::a00:1": "local-use NAT64 of 10.0.0.1",
    "::7f00:1": "IPv4-compatible 127.0.0.1",
    "::a9fe:a9fe": "IPv4-compatible 169.254.169.254 (cloud metadata)",
    "::ffff:169.254.169.254": "IPv4-mapped cloud metadata",
    "::ffff:10.0.0.1": "IPv4-mapped private address",
    "2002:7f00:1::1": "6to4 of 127.0.0.1",
    "2002:a9fe:a9fe::1": "6to4 of cloud metadata",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo of client 127.0.0.1",
    "fe80::1": "link-local",
    "::1": "loopback",
}
ALLOWED = {
    "93.184.215.14": "public IPv4",
    "2606:4700:4700::1111": "public IPv6",
    "::ffff:93.184.215.14": "IPv4-mapped public address",
    "2002:5db8:d70e::1": "6to4 of a public address",
}


def resolving_to(monkeypatch, *addresses: str) -> None:
    """files.example.test resolves to `addresses` (the resolver, not any remote service, is replaced)."""
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host != "files.example.test":
            return real_getaddrinfo(host, *args, **kwargs)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, 80, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 80))
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.mark.parametrize("address", REFUSED)
def test_it_refuses_a_host_resolving_to_an_address_that_leads_inside(monkeypatch, settings, address: str) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    resolving_to(monkeypatch, address)

    with pytest.raises(ConversionFailed) as failure:
        fetch.check_host("http://files.example.test/report.pdf")

    assert failure.value.code == "IMPORT_FAILED", REFUSED[address]
    assert "private or local address (files.example.test)" in failure.value.message


@pytest.mark.parametrize("address", ALLOWED)
def test_it_connects_to_a_public_address_whatever_its_form(monkeypatch, settings, address: str) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    resolving_to(monkeypatch, address)

    assert fetch.check_host("http://files.example.test/report.pdf") == address, ALLOWED[address]


def test_one_inside_address_among_public_ones_is_enough_to_refuse(monkeypatch, settings) -> None:
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    resolving_to(monkeypatch, PUBLIC, "2606:4700:4700::1111", "64:ff9b::a9fe:a9fe")

    with pytest.raises(ConversionFailed):
        fetch.check_host("http://files.example.test/report.pdf")


# --- capture-website connects to the address it checked, as import/url does ------------------


@pytest.mark.django_db(transaction=True)
def test_capture_website_does_not_follow_a_name_rebound_to_localhost(
    local_site, live_engine: str, worker, monkeypatch, settings
) -> None:
    port, seen = local_site
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, service, *args, **kwargs):
        if host != "site.rebind.test":
            return real_getaddrinfo(host, service, *args, **kwargs)
        # check_host asks without a port and is told a public address; whoever connects asks with
        # a port and would be sent to this machine.
        address = PUBLIC if service is None else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, service or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    api = Api(live_engine)
    created = api.post(
        "v2/capture-website", {"url": f"http://site.rebind.test:{port}/", "output_format": "png", "timeout": 60}
    )

    task = api.get(f"sync/v2/tasks/{created.json()['data']['id']}").json()["data"]

    assert task["status"] == "error", task  # whatever answers at the public address, it is not this page
    assert seen == []  # the local server was never reached


@pytest.mark.django_db(transaction=True)
def test_capture_website_fetches_from_the_checked_address_with_the_urls_host_name(
    local_site, live_engine: str, worker, monkeypatch, settings
) -> None:
    port, seen = local_site
    settings.ENGINE_IMPORT_ALLOW_PRIVATE = False
    # The check vouches for 127.0.0.1; the name resolves nowhere (.invalid), so only a connection
    # to the checked address can load the page.
    monkeypatch.setattr(web, "check_host", lambda url: "127.0.0.1")
    api = Api(live_engine)
    created = api.post(
        "v2/capture-website",
        {"url": f"http://files.example.invalid:{port}/", "output_format": "png", "timeout": 60},
    )

    task = api.get(f"sync/v2/tasks/{created.json()['data']['id']}").json()["data"]

    assert task["status"] == "finished", task
    assert seen and set(seen) == {f"files.example.invalid:{port}"}
