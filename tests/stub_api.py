"""A scripted stand-in for CloudConvert: a real HTTP server on 127.0.0.1 answering each request
with the next scripted reply (shapes from PROTOCOL.md) and remembering what it received."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (to trip the client's read timeout)
    drop: bool = False  # close the connection without answering
    length: int | None = None  # a Content-Length that lies about the body


@dataclass
class Seen:
    method: str
    path: str
    raw_query: str
    headers: dict
    body: bytes

    @property
    def query(self) -> dict:
        return {key: values[0] for key, values in parse_qs(self.raw_query).items()}

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def reply_json(status: int, payload: object, headers: dict | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        api: ScriptedApi = self.server.api
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        api.seen.append(Seen(self.command, url.path, url.query, dict(self.headers.items()), body))
        reply = api.replies.pop(0) if api.replies else reply_json(500, {"message": "Nothing scripted."})
        time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(reply.length or len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on a delayed reply: expected in the timeout tests


class ScriptedApi:
    """Answers each request with the next scripted Reply and remembers what it received."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.api = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)


@pytest.fixture
def api():
    scripted = ScriptedApi()
    thread = threading.Thread(target=scripted.server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield scripted
    scripted.server.shutdown()
    scripted.server.server_close()
