"""import/url connects to the address it checked: a name that answers a public address to the
check and a local one to the next lookup (DNS rebinding) never reaches the local machine."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.converters import ConversionFailed
from engine import fetch

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
