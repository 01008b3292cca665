"""Signed webhook ingest (ccweb's /webhooks/cloudconvert/) against a bare view of the same server.

    .venv/bin/python bench/webhooks.py [--jobs 300] [--clients 8] [--rounds 9] [--database-url ...]

ccweb is served as bin/run serves it (gunicorn gthread, `manage.py ccweb_serve`, no task worker:
ingest only queues the copy of outputs) with the benchmarks' URLconf (bench/urls.py), which adds
/bench/bare/: a view that reads the body and answers a small JSON, through the same middleware.

Each round takes --jobs fresh jobs (ConversionJob rows) and posts, for each, what an API sends as
a job runs: job.created (waiting), job.finished with one output file, and that same job.finished
again (a retry whose answer the sender missed), each body signed with CloudConvert-Signature as the
engine signs it, from --clients keep-alive connections at once. The three of a job go out over
three connections at about the same time, so they race for the job as reordered deliveries and
retries do. The same bodies are posted to the bare view over the same connections: which gunicorn
process serves which connection is the kernel's choice, often uneven, and a round with all of them
on one process runs both sides at half speed, so only the ratio within a round is fair. The two
sides alternate in order from round to round. Prints each side's requests per second, the ratio of
each round and their median (target ≥ 0.5× the bare view), the CPU time the gunicorn processes
spent per request on each side, the CPU time the whole machine spent per request (this machine's
two cores also run the clients and, on PostgreSQL, the database: its share is the difference),
and the lost updates: a delivery answered 2xx whose effect is missing (job not finished, output
row missing, a distinct body not recorded), or any answer but 2xx (target 0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import served  # noqa: E402

TARGET = 0.5


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs per round, three deliveries each (default 300)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument(
        "--rounds", type=int, default=9,
        help="rounds, each both sides (default 9: a round's ratio moves with how the kernel spreads the connections)",
    )
    parser.add_argument("--database-url", default="", help="default: SQLite in the scratch folder")
    return parser.parse_args()


def job_object(job_id: str, status: str) -> dict:
    """A job as the API shows it (PROTOCOL.md §2.1): upload, convert, export, at `status`."""
    done = status == "finished"
    stamp = "2026-01-01T10:00:00+00:00"

    def task(name: str, operation: str, state: str, result: dict | None) -> dict:
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job_id}/{name}")), "name": name, "job_id": job_id,
            "operation": operation, "status": state, "message": None, "code": None, "percent": 100 if state ==
            "finished" else 50, "credits": 1 if operation == "convert" else 0, "created_at": stamp,
            "started_at": stamp if state != "waiting" else None, "ended_at": stamp if state == "finished" else None,
            "depends_on_task_ids": [], "engine": "pillow", "engine_version": "11", "payload": {},
            "result": result,
        }

    uploaded = {"files": [{"filename": "photo.png", "size": 48213}]}
    exported = {"files": [{"filename": "photo.jpg", "size": 20480,
                           "url": f"https://storage.example/{job_id}/photo.jpg?signature=abc"}]}
    return {
        "id": job_id, "tag": None, "status": status, "created_at": stamp, "started_at": stamp,
        "ended_at": stamp if done else None,
        "tasks": [
            task("upload", "import/upload", "finished" if status != "waiting" else "waiting",
                 uploaded if status != "waiting" else None),
            task("convert", "convert", "finished" if done else ("processing" if status != "waiting" else "waiting"),
                 {"files": [{"filename": "photo.jpg", "size": 20480}]} if done else None),
            task("export", "export/url", "finished" if done else "waiting", exported if done else None),
        ],
    }


def connect(url: str, clients: int) -> list[http.client.HTTPConnection]:
    """`clients` keep-alive connections, each made now: which gunicorn process takes which is the
    kernel's choice and often uneven (8 of 8 on one process as often as 4 and 4), so both sides of
    a round are posted over the same connections, in the same share between the processes."""
    parts = urlsplit(url)
    connections = [http.client.HTTPConnection(parts.hostname, parts.port, timeout=60) for _ in range(clients)]
    for connection in connections:
        connection.connect()
    return connections


class Client(threading.Thread):
    """Posts its share of bodies over its keep-alive connection; records every answer's status."""

    def __init__(self, connection: http.client.HTTPConnection, path: str, bodies: list[tuple[bytes, str]],
                 start: threading.Event) -> None:
        super().__init__(daemon=True)
        self.connection = connection
        self.path = path
        self.bodies = bodies
        self.start_signal = start
        self.statuses: list[int] = []

    def run(self) -> None:
        self.start_signal.wait()
        for body, signature in self.bodies:
            headers = {"Content-Type": "application/json", "CloudConvert-Signature": signature}
            self.connection.request("POST", self.path, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read()
            self.statuses.append(response.status)


def post_all(connections: list[http.client.HTTPConnection], url: str,
             bodies: list[tuple[bytes, str]]) -> tuple[float, list[int]]:
    """Bodies dealt round-robin to the connections (a job's three go to three of them); seconds,
    statuses."""
    start = threading.Event()
    path = urlsplit(url).path
    count = len(connections)
    threads = [Client(connection, path, bodies[n::count], start) for n, connection in enumerate(connections)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every thread waiting before the clock starts
    started = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, [status for thread in threads for status in thread.statuses]


def main() -> None:
    args = parse()
    data_dir, port = served.configure("webhooks", database_url=args.database_url)

    import django

    django.setup()
    served.migrate()

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.urls import reverse

    from conversions.cloudconvert.webhooks import sign
    from conversions.models import ConversionJob, OutputFile, WebhookDelivery

    owner, _ = User.objects.get_or_create(username="bench")
    webhook_url = settings.PUBLIC_URL + reverse("conversions:webhook")
    bare_url = f"{settings.PUBLIC_URL}/bench/bare/"

    def deliveries(job_ids: list[str]) -> list[tuple[bytes, str]]:
        bodies = []
        for job_id in job_ids:
            created, finished = (
                json.dumps({"event": event, "job": job_object(job_id, status)}, separators=(",", ":")).encode()
                for event, status in (("job.created", "waiting"), ("job.finished", "finished"))
            )
            for body in (created, finished, finished):
                bodies.append((body, sign(settings.ENGINE_WEBHOOK_SECRET, body)))
        return bodies

    def fresh_jobs() -> list[str]:
        job_ids = [str(uuid.uuid4()) for _ in range(args.jobs)]
        ConversionJob.objects.bulk_create(
            [ConversionJob(user=owner, output_format="jpg", remote_job_id=job_id) for job_id in job_ids]
        )
        return job_ids

    def lost(job_ids: list[str], bodies: list[tuple[bytes, str]], statuses: list[int]) -> int:
        """Deliveries refused, or accepted without their effect."""
        refused = sum(1 for status in statuses if not 200 <= status < 300)
        unfinished = ConversionJob.objects.filter(remote_job_id__in=job_ids).exclude(status="finished").count()
        outputs = OutputFile.objects.filter(job__remote_job_id__in=job_ids).count()
        recorded = WebhookDelivery.objects.filter(remote_job_id__in=job_ids).count()
        distinct = len({body for body, _ in bodies})
        return refused + unfinished + (len(job_ids) - outputs) + (distinct - recorded)

    print(f"database: {served.describe_database()}; {served.load_note()}")
    webhook_rates, bare_rates, ratios, losses = [], [], [], 0
    cpu = {"webhook": 0.0, "bare": 0.0}
    machine = {"webhook": 0.0, "bare": 0.0}
    with served.serving(served.ccweb_serve(port=port, workers=0), port=port, log=data_dir / "server.log") as server:
        warm = fresh_jobs()
        connections = connect(webhook_url, args.clients)
        post_all(connections, webhook_url, deliveries(warm))
        post_all(connections, bare_url, deliveries(warm))
        for connection in connections:
            connection.close()
        # Listed once they have all booted and served: the web processes (not the supervisor's).
        web = [p for p in served.descendants(server.pid) if "gunicorn" in served.command_line(p)]

        def server_cpu() -> float:
            return sum(served.cpu_seconds(p) for p in web)

        for n in range(args.rounds):
            job_ids = fresh_jobs()
            bodies = deliveries(job_ids)
            connections = connect(webhook_url, args.clients)
            rate = {}
            for side in (("webhook", "bare") if n % 2 else ("bare", "webhook")):
                before, machine_before = server_cpu(), served.machine_cpu_seconds()
                seconds, statuses = post_all(connections, webhook_url if side == "webhook" else bare_url, bodies)
                cpu[side] += server_cpu() - before
                machine[side] += served.machine_cpu_seconds() - machine_before
                rate[side] = len(bodies) / seconds
                if side == "webhook":
                    losses += lost(job_ids, bodies, statuses)
                else:
                    losses += sum(1 for status in statuses if status != 200)
            for connection in connections:
                connection.close()
            webhook_rates.append(rate["webhook"])
            bare_rates.append(rate["bare"])
            ratios.append(rate["webhook"] / rate["bare"])

    ratio = statistics.median(ratios)
    sent = args.rounds * args.jobs * 3
    print(f"{args.jobs} jobs × 3 signed deliveries per round, {args.clients} clients, {args.rounds} rounds:")
    print(f"  webhook ingest: {statistics.median(webhook_rates):7.0f} requests/s median "
          f"(all: {', '.join(f'{r:.0f}' for r in webhook_rates)})")
    print(f"  bare view:      {statistics.median(bare_rates):7.0f} requests/s median "
          f"(all: {', '.join(f'{r:.0f}' for r in bare_rates)})")
    print(f"  ratio ingest/bare, per round over the same connections: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"  ratio ingest/bare, median: {ratio:.2f}x   target ≥ {TARGET}x: {'met' if ratio >= TARGET else 'NOT met'}")
    per_request = {side: used / sent * 1000 for side, used in cpu.items()}
    print(f"  server CPU per request: ingest {per_request['webhook']:.2f} ms, bare {per_request['bare']:.2f} ms")
    per_request = {side: used / sent * 1000 for side, used in machine.items()}
    print(f"  machine CPU per request (server, clients, database): ingest {per_request['webhook']:.2f} ms, "
          f"bare {per_request['bare']:.2f} ms")
    print(f"  lost updates: {losses} of {sent} deliveries   target 0: {'met' if losses == 0 else 'NOT met'}")
    served.remove(data_dir)


if __name__ == "__main__":
    main()
