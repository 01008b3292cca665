"""import/url: download a file from the internet, refusing the engine's own network.

An engine that fetches any URL it is given can be turned against the machines around it
(metadata services, databases on localhost). Each hop of a redirect chain is checked: its host
must resolve only to public addresses, unless ENGINE_IMPORT_ALLOW_PRIVATE is set (tests, LANs).
The connection then goes to the address that was checked, not to a second lookup's answer, so a
name that resolves differently the next time (DNS rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection

from engine.converters import ConversionFailed
from engine.uploads import max_upload_size

MAX_REDIRECTS = 5
DEFAULT_TIMEOUT = 30.0
FILENAME_IN_DISPOSITION = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


# IPv6 prefixes whose packets end up at an IPv4 address the prefix alone does not tell: NAT64
# gateways translate to whatever the last 32 bits say (a local gateway reaches the LAN), and
# IPv4-compatible addresses (deprecated) are handed to IPv4 by some stacks.
TRANSLATED_NETWORKS = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::/96"),
)


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether the engine may connect to ip: a global unicast address, and for IPv6 addresses that
    carry an IPv4 address (IPv4-mapped, 6to4, Teredo) that IPv4 address is public too."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if any(ip in network for network in TRANSLATED_NETWORKS):
        return False
    embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    return all(is_public(inner) for inner in embedded if inner is not None)


def check_host(url: str) -> str | None:
    """Refuse (ConversionFailed) a URL whose host resolves to a private or local address; the
    checked address to connect to, or None when private addresses are allowed."""
    if getattr(settings, "ENGINE_IMPORT_ALLOW_PRIVATE", False):
        return None
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        raise ConversionFailed(
            "IMPORT_FAILED", f"The host {host} could not be resolved; check the URL."
        ) from None
    for address in addresses:
        if not is_public(ipaddress.ip_address(address.split("%")[0])):
            raise ConversionFailed(
                "IMPORT_FAILED",
                f"The URL points to a private or local address ({host}); the engine only imports public URLs.",
            )
    return min(addresses, key=lambda address: (":" in address, address))  # IPv4 first, as most hosts reach it


class _PinnedConnection:
    """A urllib3 connection whose socket goes to `address`; the URL's host still names the
    server in the Host header, TLS SNI and certificate check."""

    address: str

    def _new_conn(self):  # noqa: ANN202 (urllib3's signature)
        return urllib3_connection.create_connection(
            (self.address, self.port), self.timeout, source_address=self.source_address,
            socket_options=self.socket_options,
        )


class PinnedAdapter(HTTPAdapter):
    """Requests' adapter connecting every request to one already-checked address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)
        pinned = {"address": self.address}
        http = type("PinnedHTTPConnection", (_PinnedConnection, HTTPConnection), pinned)
        https = type("PinnedHTTPSConnection", (_PinnedConnection, HTTPSConnection), pinned)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


def _filename(response: requests.Response, url: str) -> str:
    match = FILENAME_IN_DISPOSITION.search(response.headers.get("Content-Disposition", ""))
    if match:
        return unquote(match.group(1)).strip()
    return PurePosixPath(unquote(urlsplit(url).path)).name or "file"


def fetch_url(url: str, target: Path, *, headers: dict[str, str]) -> str:
    """Download url into target (bounded by ENGINE_MAX_UPLOAD_SIZE); returns the remote file name."""
    timeout = float(getattr(settings, "ENGINE_IMPORT_TIMEOUT", DEFAULT_TIMEOUT))
    limit = max_upload_size()
    with requests.Session() as session:
        for _ in range(MAX_REDIRECTS + 1):
            if (address := check_host(url)) is not None:
                adapter = PinnedAdapter(address)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
            try:
                response = session.get(
                    url, headers=headers, stream=True, timeout=timeout, allow_redirects=False
                )
            except requests.RequestException as error:
                raise ConversionFailed("IMPORT_FAILED", f"The URL could not be fetched: {error}.") from None
            with response:
                if response.is_redirect and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status_code >= 400:
                    raise ConversionFailed(
                        "IMPORT_FAILED",
                        f"The URL answered HTTP {response.status_code}; check that it is public.",
                    )
                received = 0
                with target.open("wb") as sink:
                    for chunk in response.iter_content(chunk_size=1024 * 1024):
                        received += len(chunk)
                        if received > limit:
                            raise ConversionFailed(
                                "FILE_TOO_LARGE",
                                f"The file at the URL is larger than the engine accepts ({limit} bytes).",
                            )
                        sink.write(chunk)
                return _filename(response, url)
    raise ConversionFailed("IMPORT_FAILED", f"The URL redirected more than {MAX_REDIRECTS} times.")
