"""A 1 GiB upload through the engine's upload URL against `cp` of the same file, and the server's memory.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--rounds 3]

ccweb is served as bin/run serves it (gunicorn gthread, `manage.py ccweb_serve`) on a scratch data
folder under var/bench/, where the file, its `cp` copy and the engine's storage all are: one disk.
Each round uploads the file to a fresh import/upload task exactly as the SDKs post the form
(multipart, the form's fields then `file`), streamed from disk with a Content-Length, and copies
it with `cp`; the two alternate in order from round to round, each round's copies are deleted
before the next, the page cache holds the source for both, and each starts after a `sync` (no
dirty pages of the other side left to write back). The best round of each counts.
Prints MiB/s of both and their ratio (target ≥ 0.3× cp) twice: until the upload's answer and
`cp`'s return (both leave the bytes in the page cache), and until the file is on disk (an fsync
of the stored file and of the copy: what "stored" means after a power cut). Then the peak resident
memory of the gunicorn processes (flat: it must not grow with the file). For reference, the same body is also posted to
a bare view of the same server that only reads it (bench/urls.py): the ceiling of the HTTP server
itself, whatever ccweb does with the bytes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import served  # noqa: E402

TARGET = 0.3
CHUNK = 1024 * 1024


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024 MiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="", help="default: SQLite in the scratch folder")
    return parser.parse_args()


def make_file(path: Path, size: int) -> None:
    """Incompressible bytes, so nothing on the way can shortcut them."""
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        for _ in range(size // CHUNK):
            out.write(block)


def post_form(url: str, fields: dict[str, str], path: Path) -> tuple[int, bytes]:
    """The SDKs' multipart form (fields, then `file` last), the file streamed from disk."""
    boundary = uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    connection.putrequest("POST", parts.path + (f"?{parts.query}" if parts.query else ""))
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + path.stat().st_size + len(tail)))
    connection.endheaders()
    connection.send(head)
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def main() -> None:
    args = parse()
    size = args.size_mib * CHUNK
    data_dir, port = served.configure(
        "upload", database_url=args.database_url, extra={"ENGINE_MAX_UPLOAD_SIZE": str(2 * size)}
    )

    import django

    django.setup()
    served.migrate()

    import requests
    from django.conf import settings

    from engine.models import File

    source = data_dir / "source.bin"
    make_file(source, size)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {settings.ENGINE_API_KEY}"
    storage_root = Path(settings.MEDIA_ROOT) / "engine"

    def flushed(path: Path) -> None:
        with path.open("rb") as handle:
            os.fsync(handle.fileno())

    def upload() -> tuple[float, float]:
        """Seconds until the upload's answer, and until the stored file is on disk too."""
        os.sync()  # both sides start with no dirty pages from the other waiting to be written back
        job = session.post(f"{settings.ENGINE_URL}/v2/jobs", json={"tasks": {"upload": {"operation": "import/upload"}}},
                           timeout=60)
        job.raise_for_status()
        task = job.json()["data"]["tasks"][0]
        form = task["result"]["form"]
        started = time.perf_counter()
        status, body = post_form(form["url"], form["parameters"], source)
        answered = time.perf_counter() - started
        if status != 201:
            raise SystemExit(f"The upload failed with HTTP {status}: {body[:300]!r}")
        stored = storage_root / File.objects.get(task_id=task["id"]).path
        flushed(stored)
        on_disk = time.perf_counter() - started
        if File.objects.get(task_id=task["id"]).size != size or stored.stat().st_size != size:
            raise SystemExit("The stored file does not have the size of the one sent.")
        stored.unlink()
        return answered, on_disk

    def drain() -> float:
        """The same body posted to a view that only reads it (bench/urls.py): this server's ceiling."""
        os.sync()
        started = time.perf_counter()
        status, body = post_form(f"{settings.PUBLIC_URL}/bench/drain/", {}, source)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"The bare upload failed with HTTP {status}: {body[:300]!r}")
        return elapsed

    def copy() -> tuple[float, float]:
        """Seconds until `cp` returns, and until the copy is on disk too."""
        target = data_dir / "copy.bin"
        os.sync()
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(target)], check=True)
        returned = time.perf_counter() - started
        flushed(target)
        on_disk = time.perf_counter() - started
        target.unlink()
        return returned, on_disk

    print(f"database: {served.describe_database()}; {served.load_note()}; file {args.size_mib} MiB in {data_dir}")
    with served.serving(served.ccweb_serve(port=port, workers=0), port=port, log=data_dir / "server.log") as server:
        for _ in range(2 * settings.WEB_PROCESSES):  # every web process has booted and loaded Django
            requests.get(f"{settings.ENGINE_URL}/v2/users/me", headers=session.headers, timeout=60).raise_for_status()
        web = [p for p in served.descendants(server.pid) if "gunicorn" in served.command_line(p)]
        rss_before = max(served.peak_rss(p) for p in web)
        copies, uploads, drains = [], [], []
        for n in range(args.rounds):
            if n % 2:
                uploads.append(upload())
                drains.append(drain())
                copies.append(copy())
            else:
                copies.append(copy())
                drains.append(drain())
                uploads.append(upload())
        rss_after = max(served.peak_rss(p) for p in web)
    leftovers = [p for p in Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir() if p.is_file()]
    source.unlink()

    mib = size / CHUNK
    for label, index in (("returned", 0), ("on disk (fsync)", 1)):
        best_upload, best_copy = min(u[index] for u in uploads), min(c[index] for c in copies)
        ratio = best_copy / best_upload
        print(f"until {label}:")
        print(f"  upload: {mib / best_upload:6.0f} MiB/s (best of {args.rounds}: {best_upload:.2f} s; "
              f"all: {', '.join(f'{u[index]:.2f}' for u in uploads)} s)")
        print(f"  cp:     {mib / best_copy:6.0f} MiB/s (best of {args.rounds}: {best_copy:.2f} s; "
              f"all: {', '.join(f'{c[index]:.2f}' for c in copies)} s)")
        print(f"  ratio upload/cp: {ratio:.2f}x   target ≥ {TARGET}x: {'met' if ratio >= TARGET else 'NOT met'}")
    best_drain = min(drains)
    best_upload = min(u[0] for u in uploads)
    print(f"for reference, the same body read and thrown away by a bare view of the same server: "
          f"{mib / best_drain:.0f} MiB/s; the upload runs at {best_drain / best_upload:.2f}x that")
    print(f"peak RSS of the web server processes: {rss_before / CHUNK:.0f} MiB before, {rss_after / CHUNK:.0f} MiB "
          f"after {args.rounds} uploads of {mib:.0f} MiB")
    print(f"temporary files left in FILE_UPLOAD_TEMP_DIR: {len(leftovers)}")
    served.remove(data_dir)


if __name__ == "__main__":
    main()
